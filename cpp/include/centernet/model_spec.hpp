// What a model file says about itself: the JSON that `centernet export` stores in the ONNX
// metadata_props under key "centernet" (src/centernet/types.py ModelSpec).
#pragma once

#include <array>
#include <string>
#include <vector>

namespace centernet {

struct ModelSpec {
    std::string arch;
    int num_classes = 0;
    std::vector<std::string> class_names;
    int input_height = 512;  // fix_res input size; Python's input_size is (height, width)
    int input_width = 512;
    std::array<float, 3> mean{0.408f, 0.447f, 0.470f};  // BGR order
    std::array<float, 3> std{0.289f, 0.274f, 0.278f};
    int down_ratio = 4;
    std::string output_mode = "maps";  // "maps": hm_max/hm/wh/reg; "topk": boxes/scores/classes
    int max_objects = 100;             // K of the in-graph top-K
    std::string precision = "fp32";
    int batch = 1;                     // the static batch; 0 when dynamic_batch
    bool dynamic_batch = false;
    bool dynamic_size = false;         // free H and W: needed by keep_res
    std::string version;
    std::string weights_note;  // extra["weights"], e.g. "random initialisation: ..."

    static constexpr const char* kMetadataKey = "centernet";

    // keep_res pads each side to (side | pad) + 1: the original opt.pad, 127 for hourglass
    // (it down-samples 7 times), else 31 (preprocess.py keep_res_pad).
    int keep_res_pad() const { return arch == "hourglass" ? 127 : 31; }
};

// Parses the metadata JSON; unknown keys are ignored (as ModelSpec.from_json does).
// Throws centernet::Error naming what is wrong.
ModelSpec parse_model_spec(const std::string& json_text);

}  // namespace centernet
