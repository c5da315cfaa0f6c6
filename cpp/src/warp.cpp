#include "centernet/warp.hpp"

#include <algorithm>
#include <cmath>

#include "centernet/errors.hpp"

namespace centernet {

namespace {

// cv::warpAffine's inversion of a forward matrix (imgwarp.cpp), in float64.
Affine invert_like_opencv(Affine m) {
    double d = m[0] * m[4] - m[1] * m[3];
    d = d != 0 ? 1. / d : 0;
    const double a11 = m[4] * d, a22 = m[0] * d;
    m[0] = a11;
    m[1] *= -d;
    m[3] *= -d;
    m[4] = a22;
    const double b1 = -m[0] * m[2] - m[1] * m[5];
    const double b2 = -m[3] * m[2] - m[4] * m[5];
    m[2] = b1;
    m[5] = b2;
    return m;
}

inline float pixel(const cv::Mat& src, int x, int y, int c) {
    if (static_cast<unsigned>(x) >= static_cast<unsigned>(src.cols) ||
        static_cast<unsigned>(y) >= static_cast<unsigned>(src.rows)) {
        return 0.f;  // BORDER_CONSTANT, value 0
    }
    return src.ptr<uint8_t>(y)[3 * x + c];
}

}  // namespace

void warp_affine_linear(const cv::Mat& src, const Affine& to_input, int width, int height,
                        cv::Mat& dst) {
    if (src.type() != CV_8UC3) throw Error("warp_affine_linear expects a BGR uint8 image");
    dst.create(height, width, CV_8UC3);
    const Affine inverse = invert_like_opencv(to_input);
    float m[6];
    for (int i = 0; i < 6; ++i) m[i] = static_cast<float>(inverse[i]);
    for (int y = 0; y < height; ++y) {
        // per row in float32, per pixel one fused multiply-add (the vector kernel's v_fma)
        const float row_x = static_cast<float>(y) * m[1] + m[2];
        const float row_y = static_cast<float>(y) * m[4] + m[5];
        uint8_t* out = dst.ptr<uint8_t>(y);
        for (int x = 0; x < width; ++x) {
            float sx = std::fma(m[0], static_cast<float>(x), row_x);
            float sy = std::fma(m[3], static_cast<float>(x), row_y);
            const int ix = static_cast<int>(std::floor(sx));
            const int iy = static_cast<int>(std::floor(sy));
            sx -= static_cast<float>(ix);
            sy -= static_cast<float>(iy);
            const bool inside = static_cast<unsigned>(ix) < static_cast<unsigned>(src.cols - 1) &&
                                static_cast<unsigned>(iy) < static_cast<unsigned>(src.rows - 1);
            const uint8_t* top_row = inside ? src.ptr<uint8_t>(iy) + 3 * ix : nullptr;
            const uint8_t* bottom_row = inside ? top_row + src.step[0] : nullptr;
            for (int c = 0; c < 3; ++c) {
                float p00, p01, p10, p11;
                if (inside) {  // the common case: no bounds checks
                    p00 = top_row[c];
                    p01 = top_row[3 + c];
                    p10 = bottom_row[c];
                    p11 = bottom_row[3 + c];
                } else {
                    p00 = pixel(src, ix, iy, c);
                    p01 = pixel(src, ix + 1, iy, c);
                    p10 = pixel(src, ix, iy + 1, c);
                    p11 = pixel(src, ix + 1, iy + 1, c);
                }
                const float top = std::fma(sx, p01 - p00, p00);
                const float bottom = std::fma(sx, p11 - p10, p10);
                const float value = std::fma(sy, bottom - top, top);
                // round half to even, then saturate, as v_round + v_pack_u
                const float rounded = std::nearbyint(value);
                out[3 * x + c] = static_cast<uint8_t>(std::min(255.f, std::max(0.f, rounded)));
            }
        }
    }
}

}  // namespace centernet
