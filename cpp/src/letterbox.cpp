#include "centernet/letterbox.hpp"

#include <algorithm>

#include <opencv2/imgproc.hpp>

namespace centernet {

PreprocessConfig PreprocessConfig::from_spec(const ModelSpec& spec, bool keep_res) {
    PreprocessConfig config;
    config.input_height = spec.input_height;
    config.input_width = spec.input_width;
    config.keep_res = keep_res;
    config.mean = spec.mean;
    config.std = spec.std;
    config.down_ratio = spec.down_ratio;
    config.pad = spec.keep_res_pad();
    return config;
}

namespace {

cv::Point2f third_point(cv::Point2f a, cv::Point2f b) {
    const cv::Point2f direction = a - b;
    return b + cv::Point2f(-direction.y, direction.x);
}

}  // namespace

Affine get_affine_transform(float center_x, float center_y, float scale_w, int dst_w,
                            int dst_h, bool inverse) {
    // every step in float32, as the numpy float32 arrays of preprocess.py
    cv::Point2f src[3], dst[3];
    src[0] = {center_x, center_y};
    src[1] = src[0] + cv::Point2f(0.f, static_cast<float>(scale_w * -0.5));
    dst[0] = {static_cast<float>(dst_w * 0.5), static_cast<float>(dst_h * 0.5)};
    dst[1] = dst[0] + cv::Point2f(0.f, static_cast<float>(dst_w * -0.5));
    src[2] = third_point(src[0], src[1]);
    dst[2] = third_point(dst[0], dst[1]);
    const cv::Mat m = inverse ? cv::getAffineTransform(dst, src) : cv::getAffineTransform(src, dst);
    Affine out{};
    for (int i = 0; i < 6; ++i) out[i] = m.at<double>(i / 3, i % 3);
    return out;
}

Letterbox make_letterbox(int width, int height, const PreprocessConfig& config) {
    Letterbox box;
    box.original_width = width;
    box.original_height = height;
    float center_x, center_y, scale_w;
    if (config.keep_res) {
        box.input_height = (height | config.pad) + 1;
        box.input_width = (width | config.pad) + 1;
        center_x = static_cast<float>(width / 2);  // integer halves, as upstream
        center_y = static_cast<float>(height / 2);
        scale_w = static_cast<float>(box.input_width);
    } else {
        box.input_height = config.input_height;
        box.input_width = config.input_width;
        center_x = static_cast<float>(width / 2.0);
        center_y = static_cast<float>(height / 2.0);
        scale_w = static_cast<float>(std::max(height, width));
    }
    const int out_w = box.input_width / config.down_ratio;
    const int out_h = box.input_height / config.down_ratio;
    box.to_input = get_affine_transform(center_x, center_y, scale_w, box.input_width,
                                        box.input_height, false);
    box.output_to_original = get_affine_transform(center_x, center_y, scale_w, out_w, out_h, true);
    return box;
}

}  // namespace centernet
