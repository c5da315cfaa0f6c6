// Bilinear warpAffine of a BGR uint8 image, computed exactly as OpenCV >= 4.11 does
// (its float32 warp kernels, which the Python package's opencv-python 5.x runs).
//
// Why not cv::warpAffine: OpenCV before 4.11 (Debian's 4.6 included) uses a fixed-point
// kernel whose pixels differ from the float one by up to 3 grey levels on a few percent of
// pixels, enough to move heatmap scores by 1e-2 on a small model. Doing the warp here gives
// the Python tool's input tensor bit for bit whichever OpenCV this program links.
#pragma once

#include <opencv2/core.hpp>

#include "centernet/letterbox.hpp"

namespace centernet {

// dst (height x width, CV_8UC3) = src warped by `to_input` (original -> input pixels);
// pixels outside src count as 0, as cv::warpAffine's default BORDER_CONSTANT.
void warp_affine_linear(const cv::Mat& src, const Affine& to_input, int width, int height,
                        cv::Mat& dst);

}  // namespace centernet
