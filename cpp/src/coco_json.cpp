#include "centernet/coco_json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>

namespace centernet {

namespace {

// The 80 COCO class names in heatmap-channel order (src/centernet/assets/coco_classes.txt).
const char* const kCocoClassNames[] = {
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
};

// COCO's 91-id category space for the 80 heatmap channels (upstream _valid_ids).
const int kCocoCategoryIds[] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
};

bool is_coco_model(const std::vector<std::string>& class_names) {
    if (class_names.size() != std::size(kCocoClassNames)) return false;
    for (std::size_t i = 0; i < class_names.size(); ++i) {
        if (class_names[i] != kCocoClassNames[i]) return false;
    }
    return true;
}

// The shortest decimal that reads back as `value`, laid out as Python's repr(float):
// fixed notation for decimal exponents -4..15, else d.ddde+XX (at least two exponent
// digits), and always a ".0" on whole numbers.
std::string python_float_repr(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
    if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
    char buffer[64];
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, value);
        if (std::strtod(buffer, nullptr) == value) break;
    }
    // buffer: [-]d[.ddd]e[+-]XX -> sign, digits, decimal exponent
    std::string text(buffer);
    const bool negative = text[0] == '-';
    if (negative) text.erase(0, 1);
    const auto e = text.find('e');
    const int exponent = std::atoi(text.c_str() + e + 1);
    std::string digits;
    for (std::size_t i = 0; i < e; ++i) {
        if (text[i] != '.') digits += text[i];
    }
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    const int point = exponent + 1;  // digits before the decimal point
    std::string out;
    if (point > -4 && point <= 16) {
        if (point <= 0) {
            out = "0." + std::string(-point, '0') + digits;
        } else if (point >= static_cast<int>(digits.size())) {
            out = digits + std::string(point - digits.size(), '0') + ".0";
        } else {
            out = digits.substr(0, point) + "." + digits.substr(point);
        }
    } else {
        out = digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char exp_text[16];
        std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+',
                      std::abs(exponent));
        out += exp_text;
    }
    return negative ? "-" + out : out;
}

void dump_into(const nlohmann::ordered_json& value, std::string& out) {
    switch (value.type()) {
        case nlohmann::ordered_json::value_t::object: {
            out += '{';
            bool first = true;
            for (const auto& [key, item] : value.items()) {
                if (!first) out += ", ";
                first = false;
                out += nlohmann::ordered_json(key).dump(-1, ' ', true,
                                                        nlohmann::json::error_handler_t::replace);
                out += ": ";
                dump_into(item, out);
            }
            out += '}';
            break;
        }
        case nlohmann::ordered_json::value_t::array: {
            out += '[';
            bool first = true;
            for (const auto& item : value) {
                if (!first) out += ", ";
                first = false;
                dump_into(item, out);
            }
            out += ']';
            break;
        }
        case nlohmann::ordered_json::value_t::number_float:
            out += python_float_repr(value.get<double>());
            break;
        default:  // strings (ASCII-escaped like Python), integers, booleans, null
            out += value.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    }
}

}  // namespace

std::vector<int> category_ids_for(const std::vector<std::string>& class_names) {
    std::vector<int> ids;
    if (is_coco_model(class_names)) {
        ids.assign(std::begin(kCocoCategoryIds), std::end(kCocoCategoryIds));
    } else {
        for (std::size_t i = 0; i < class_names.size(); ++i) ids.push_back(static_cast<int>(i) + 1);
    }
    return ids;
}

double round_like_python(double value, int digits) {
    // glibc's printf rounds the exact binary value correctly, as Python's round() does
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
    return std::strtod(buffer, nullptr);
}

void append_coco_entries(const Detections& detections, const std::vector<int>& category_ids,
                         const std::vector<std::string>& class_names,
                         const std::string& file_name, nlohmann::ordered_json& entries) {
    for (const auto& detection : detections) {
        const auto& b = detection.xyxy;
        // width and height in float32, as Detections.xywh
        const float xywh[4] = {b[0], b[1], b[2] - b[0], b[3] - b[1]};
        nlohmann::ordered_json entry;
        entry["file_name"] = file_name;
        const auto index = static_cast<std::size_t>(detection.class_id);
        entry["category_id"] = category_ids.at(index);
        entry["class_index"] = detection.class_id;
        // as datasets/coco.py class_name_of: the index as text where the names run short
        entry["class_name"] =
            index < class_names.size() ? class_names[index] : std::to_string(detection.class_id);
        entry["bbox"] = nlohmann::ordered_json::array();
        for (float v : xywh) entry["bbox"].push_back(round_like_python(v, 2));
        entry["score"] = round_like_python(detection.score, 5);
        entries.push_back(std::move(entry));
    }
}

std::string python_json_dumps(const nlohmann::ordered_json& value) {
    std::string out;
    dump_into(value, out);
    return out;
}

}  // namespace centernet
