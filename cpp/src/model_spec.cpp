#include "centernet/model_spec.hpp"

#include <nlohmann/json.hpp>

#include "centernet/errors.hpp"

namespace centernet {

namespace {

template <typename T>
void read_if_present(const nlohmann::json& data, const char* key, T& into) {
    if (data.contains(key) && !data[key].is_null()) into = data[key].get<T>();
}

std::array<float, 3> read_triple(const nlohmann::json& data, const char* key,
                                 std::array<float, 3> fallback) {
    if (!data.contains(key)) return fallback;
    const auto values = data[key].get<std::vector<double>>();
    if (values.size() != 3) throw Error(std::string("'") + key + "' needs 3 values");
    // Python keeps them as float64 and casts to float32 where it normalises
    return {static_cast<float>(values[0]), static_cast<float>(values[1]),
            static_cast<float>(values[2])};
}

}  // namespace

ModelSpec parse_model_spec(const std::string& json_text) {
    ModelSpec spec;
    try {
        const auto data = nlohmann::json::parse(json_text);
        read_if_present(data, "arch", spec.arch);
        read_if_present(data, "num_classes", spec.num_classes);
        read_if_present(data, "class_names", spec.class_names);
        if (data.contains("input_size")) {
            const auto size = data["input_size"].get<std::vector<int>>();
            if (size.size() != 2) throw Error("'input_size' needs (height, width)");
            spec.input_height = size[0];
            spec.input_width = size[1];
        }
        spec.mean = read_triple(data, "mean", spec.mean);
        spec.std = read_triple(data, "std", spec.std);
        read_if_present(data, "down_ratio", spec.down_ratio);
        read_if_present(data, "output_mode", spec.output_mode);
        read_if_present(data, "max_objects", spec.max_objects);
        read_if_present(data, "precision", spec.precision);
        read_if_present(data, "dynamic_size", spec.dynamic_size);
        read_if_present(data, "version", spec.version);
        if (data.contains("extra") && data["extra"].is_object() &&
            data["extra"].contains("weights") && data["extra"]["weights"].is_string()) {
            spec.weights_note = data["extra"]["weights"].get<std::string>();
        }
        if (data.contains("batch")) {
            const auto& batch = data["batch"];
            if (batch.is_string() && batch.get<std::string>() == "dynamic") {
                spec.dynamic_batch = true;
                spec.batch = 0;
            } else {
                spec.batch = batch.get<int>();
            }
        }
    } catch (const nlohmann::json::exception& exc) {
        throw Error(std::string("unreadable CenterNet model metadata: ") + exc.what());
    }
    if (static_cast<int>(spec.class_names.size()) != spec.num_classes) {
        throw Error("unreadable CenterNet model metadata: " +
                    std::to_string(spec.class_names.size()) + " class names for " +
                    std::to_string(spec.num_classes) + " classes");
    }
    if (spec.output_mode != "maps" && spec.output_mode != "topk") {
        throw Error("unknown output mode '" + spec.output_mode + "' in the model metadata");
    }
    if (spec.down_ratio <= 0 || spec.input_height <= 0 || spec.input_width <= 0 ||
        (!spec.dynamic_batch && spec.batch <= 0)) {
        throw Error("unreadable CenterNet model metadata: non-positive size or batch");
    }
    return spec;
}

}  // namespace centernet
