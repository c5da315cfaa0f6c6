// Annotated copies of images: box, class name and score, as src/centernet/draw.py.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "centernet/postprocess.hpp"

namespace centernet {

// A stable, well-separated BGR colour per class (golden-ratio hue steps).
cv::Scalar class_colour(int class_id);

// A copy of `image` (BGR uint8) with the detections drawn, lowest score first.
cv::Mat draw_detections(const cv::Mat& image, const Detections& detections,
                        const std::vector<std::string>& class_names);

}  // namespace centernet
