// COCO results entries and the detections.json text, written exactly as the Python tool
// writes them (datasets/coco.py detections_to_coco + json.dumps).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "centernet/postprocess.hpp"

namespace centernet {

// COCO category_id per class index: COCO's 91-id space for the 80 COCO classes, else
// class index + 1 (datasets/coco.py category_ids_for without an annotation file).
std::vector<int> category_ids_for(const std::vector<std::string>& class_names);

// Python's round(value, digits): the double nearest the correctly rounded decimal.
double round_like_python(double value, int digits);

// One entry per box: {"file_name", "category_id", "class_index" (0-based), "class_name",
// "bbox": [x, y, w, h] (2 decimals), "score" (5 decimals)} (docs/output-formats.md).
void append_coco_entries(const Detections& detections, const std::vector<int>& category_ids,
                         const std::vector<std::string>& class_names,
                         const std::string& file_name, nlohmann::ordered_json& entries);

// json.dumps's layout: ", " and ": " separators, non-ASCII escaped, floats as repr().
std::string python_json_dumps(const nlohmann::ordered_json& value);

}  // namespace centernet
