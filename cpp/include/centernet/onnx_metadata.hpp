// The metadata_props of a serialized ONNX ModelProto, read without a protobuf library and
// without reading the graph: top-level fields are walked and the large ones (the graph with
// its weights) skipped by their length, as src/centernet/modelfile.py read_file_spec does.
#pragma once

#include <map>
#include <string>

namespace centernet {

// key -> value of the file's metadata_props (ModelProto field 14). Throws centernet::Error
// when the file cannot be opened or is not a well-formed protobuf message.
std::map<std::string, std::string> read_onnx_metadata(const std::string& path);

}  // namespace centernet
