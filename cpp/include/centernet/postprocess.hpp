// Network outputs of one image -> Detections in original-image pixels, as
// src/centernet/postprocess.py: peaks where hm == hm_max, the top K over all classes and
// positions (score descending, ties by position index), centre + reg, box = centre -/+ wh/2
// in output-map cells (float32), then the Letterbox's output_to_original (float64).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "centernet/letterbox.hpp"

namespace centernet {

struct Detection {
    std::array<float, 4> xyxy;  // original-image pixels
    float score;
    int class_id;  // the model's 0-based class index
};

using Detections = std::vector<Detection>;  // by descending score

struct PostprocessConfig {
    int max_dets = 100;      // K
    double threshold = 0.0;  // boxes scoring below are dropped (compared in float32)
};

// "maps" mode, one image: hm/hm_max (classes, height, width), wh/reg (2, height, width).
Detections decode_maps(const float* hm_max, const float* hm, const float* wh, const float* reg,
                       int classes, int height, int width, const Letterbox& box,
                       const PostprocessConfig& config);

// "topk" mode, one image: boxes (k, 4) xyxy in output-map cells, scores (k), classes (k).
Detections decode_topk(const float* boxes, const float* scores, const std::int64_t* classes,
                       int k, const Letterbox& box, const PostprocessConfig& config);

}  // namespace centernet
