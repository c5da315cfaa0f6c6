#include "centernet/model_file.hpp"

#include <filesystem>

#include "centernet/errors.hpp"
#include "centernet/onnx_metadata.hpp"

namespace centernet {

ModelSpec read_onnx_spec(const std::string& path) {
    std::error_code ignored;
    if (!std::filesystem::is_regular_file(path, ignored)) {
        throw Error(path + ": no such model file");
    }
    std::map<std::string, std::string> props;
    try {
        props = read_onnx_metadata(path);
    } catch (const Error& exc) {
        throw Error(path + ": cannot load as an ONNX model (" + exc.what() + ")");
    }
    const auto found = props.find(ModelSpec::kMetadataKey);
    if (found == props.end()) {
        throw Error(path + ": not a CenterNet export (no '" + ModelSpec::kMetadataKey +
                    "' metadata); make one with `centernet export`");
    }
    return parse_model_spec(found->second);
}

}  // namespace centernet
