#include "centernet/preprocess.hpp"

#include "centernet/errors.hpp"
#include "centernet/warp.hpp"

namespace centernet {

NormaliseTable make_normalise_table(const std::array<float, 3>& mean,
                                    const std::array<float, 3>& std) {
    NormaliseTable table{};
    for (int c = 0; c < 3; ++c) {
        for (int v = 0; v < 256; ++v) {
            const double x = v / 255.0;
            table[c][v] = static_cast<float>((x - static_cast<double>(mean[c])) /
                                             static_cast<double>(std[c]));
        }
    }
    return table;
}

Letterbox preprocess_into(const cv::Mat& image, const PreprocessConfig& config,
                          const NormaliseTable& table, float* out) {
    if (image.type() != CV_8UC3 || image.empty()) {
        throw Error("expected a non-empty BGR uint8 image");
    }
    const Letterbox box = make_letterbox(image.cols, image.rows, config);
    cv::Mat warped;
    warp_affine_linear(image, box.to_input, box.input_width, box.input_height, warped);
    const std::size_t plane = static_cast<std::size_t>(box.input_width) * box.input_height;
    float* blue = out;
    float* green = out + plane;
    float* red = out + 2 * plane;
    std::size_t i = 0;
    for (int y = 0; y < warped.rows; ++y) {
        const uint8_t* row = warped.ptr<uint8_t>(y);
        for (int x = 0; x < warped.cols; ++x, ++i) {
            blue[i] = table[0][row[3 * x]];
            green[i] = table[1][row[3 * x + 1]];
            red[i] = table[2][row[3 * x + 2]];
        }
    }
    return box;
}

}  // namespace centernet
