#include "centernet/draw.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include <opencv2/imgproc.hpp>

namespace centernet {

namespace {

// Python's colorsys.hsv_to_rgb.
void hsv_to_rgb(double h, double s, double v, double& r, double& g, double& b) {
    const int i = static_cast<int>(h * 6.0);
    const double f = h * 6.0 - i;
    const double p = v * (1.0 - s), q = v * (1.0 - s * f), t = v * (1.0 - s * (1.0 - f));
    switch (i % 6) {
        case 0: r = v; g = t; b = p; break;
        case 1: r = q; g = v; b = p; break;
        case 2: r = p; g = v; b = t; break;
        case 3: r = p; g = q; b = v; break;
        case 4: r = t; g = p; b = v; break;
        default: r = v; g = p; b = q; break;
    }
}

int round_half_even(double value) { return static_cast<int>(std::nearbyint(value)); }

}  // namespace

cv::Scalar class_colour(int class_id) {
    const double hue = std::fmod(class_id * 0.618033988749895, 1.0);
    double r, g, b;
    hsv_to_rgb(hue, 0.85, 0.95, r, g, b);
    return cv::Scalar(static_cast<int>(b * 255), static_cast<int>(g * 255),
                      static_cast<int>(r * 255));
}

cv::Mat draw_detections(const cv::Mat& image, const Detections& detections,
                        const std::vector<std::string>& class_names) {
    cv::Mat canvas = image.clone();
    const double scale = std::max(0.4, std::min(canvas.rows, canvas.cols) / 1000.0);
    const int thickness = std::max(1, round_half_even(2 * scale));
    std::vector<std::size_t> order(detections.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return detections[a].score < detections[b].score;
    });
    for (const std::size_t i : order) {
        const auto& d = detections[i];
        const int x1 = round_half_even(d.xyxy[0]), y1 = round_half_even(d.xyxy[1]);
        const int x2 = round_half_even(d.xyxy[2]), y2 = round_half_even(d.xyxy[3]);
        const cv::Scalar colour = class_colour(d.class_id);
        const std::string name = d.class_id < static_cast<int>(class_names.size())
                                     ? class_names[d.class_id]
                                     : std::to_string(d.class_id);
        char score_text[32];
        std::snprintf(score_text, sizeof score_text, "%.2f", static_cast<double>(d.score));
        const std::string label = name + " " + score_text;
        cv::rectangle(canvas, {x1, y1}, {x2, y2}, colour, thickness);
        int base = 0;
        const cv::Size text = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1, &base);
        const int top = std::max(y1, text.height + base);
        cv::rectangle(canvas, {x1, top - text.height - base}, {x1 + text.width, top}, colour, -1);
        cv::putText(canvas, label, {x1, top - base}, cv::FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    }
    return canvas;
}

}  // namespace centernet
