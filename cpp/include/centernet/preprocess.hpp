// BGR uint8 image -> network input (3, H, W) float32 + its Letterbox, as
// src/centernet/preprocess.py: the affine warp, then (x/255 - mean)/std per channel.
#pragma once

#include <array>

#include <opencv2/core.hpp>

#include "centernet/letterbox.hpp"

namespace centernet {

// value v of channel c -> (v/255 - mean[c]) / std[c], computed in float64 from the float32
// mean and std and rounded once to float32, like preprocess.normalise_lut: bit-identical.
using NormaliseTable = std::array<std::array<float, 256>, 3>;
NormaliseTable make_normalise_table(const std::array<float, 3>& mean,
                                    const std::array<float, 3>& std);

// Warps and normalises `image` into `out`, which must hold 3 * input_height * input_width
// floats (the Letterbox's input size: see make_letterbox), in CHW order.
Letterbox preprocess_into(const cv::Mat& image, const PreprocessConfig& config,
                          const NormaliseTable& table, float* out);

}  // namespace centernet
