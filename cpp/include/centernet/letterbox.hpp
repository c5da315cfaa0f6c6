// The affine of one image into the network input and its inverses (types.py Letterbox,
// preprocess.py make_letterbox), computed with the same float32 points and
// cv::getAffineTransform, so that boxes map back to the same pixels as in Python.
#pragma once

#include <array>

#include "centernet/model_spec.hpp"

namespace centernet {

using Affine = std::array<double, 6>;  // row-major 2x3

struct PreprocessConfig {
    int input_height = 512;  // fix_res only
    int input_width = 512;
    bool keep_res = false;
    std::array<float, 3> mean{0.408f, 0.447f, 0.470f};
    std::array<float, 3> std{0.289f, 0.274f, 0.278f};
    int down_ratio = 4;
    int pad = 31;  // keep_res input sides are (side | pad) + 1

    static PreprocessConfig from_spec(const ModelSpec& spec, bool keep_res);
};

struct Letterbox {
    int original_width = 0, original_height = 0;
    int input_width = 0, input_height = 0;
    Affine to_input{};            // original pixels -> input pixels
    Affine output_to_original{};  // output-map cells -> original pixels (transform_preds)

    // A point through one of the matrices, in float64 like Letterbox.apply.
    static void apply(const Affine& m, double x, double y, double& out_x, double& out_y) {
        out_x = x * m[0] + y * m[1] + m[2];
        out_y = x * m[3] + y * m[4] + m[5];
    }
};

// The original get_affine_transform without rotation or shift; only scale_w is used.
Affine get_affine_transform(float center_x, float center_y, float scale_w, int dst_w,
                            int dst_h, bool inverse);

Letterbox make_letterbox(int width, int height, const PreprocessConfig& config);

}  // namespace centernet
