#include "centernet/postprocess.hpp"

#include <algorithm>
#include <numeric>

namespace centernet {

namespace {

struct Candidate {
    float score;
    std::int64_t index;  // flat: class * height * width + position
};

// score descending, then index ascending: the deterministic order of np.lexsort
bool ranks_before(const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score > b.score : a.index < b.index;
}

// Corners in output-map cells (float32) -> original pixels (float64, then float32).
std::array<float, 4> to_original(const Letterbox& box, float x1, float y1, float x2, float y2) {
    double ox1, oy1, ox2, oy2;
    Letterbox::apply(box.output_to_original, x1, y1, ox1, oy1);
    Letterbox::apply(box.output_to_original, x2, y2, ox2, oy2);
    return {static_cast<float>(ox1), static_cast<float>(oy1), static_cast<float>(ox2),
            static_cast<float>(oy2)};
}

}  // namespace

Detections decode_maps(const float* hm_max, const float* hm, const float* wh, const float* reg,
                       int classes, int height, int width, const Letterbox& box,
                       const PostprocessConfig& config) {
    const std::int64_t cells = static_cast<std::int64_t>(height) * width;
    const std::int64_t total = cells * classes;
    // numpy compares the float32 map with the threshold as a float32
    const float threshold = static_cast<float>(config.threshold);
    std::vector<Candidate> peaks;
    for (std::int64_t i = 0; i < total; ++i) {
        const float score = hm[i];
        // only positive scores survive the Python decode's final filter
        if (score == hm_max[i] && score > 0.f && score >= threshold) peaks.push_back({score, i});
    }
    const std::size_t k = std::min<std::size_t>(peaks.size(), std::max(config.max_dets, 0));
    std::partial_sort(peaks.begin(), peaks.begin() + k, peaks.end(), ranks_before);
    Detections out;
    out.reserve(k);
    for (std::size_t j = 0; j < k; ++j) {
        const auto [score, index] = peaks[j];
        const std::int64_t pos = index % cells;
        const int xs = static_cast<int>(pos % width), ys = static_cast<int>(pos / width);
        const float cx = static_cast<float>(xs) + reg[pos];
        const float cy = static_cast<float>(ys) + reg[cells + pos];
        const float half_w = wh[pos] / 2, half_h = wh[cells + pos] / 2;
        out.push_back({to_original(box, cx - half_w, cy - half_h, cx + half_w, cy + half_h),
                       score, static_cast<int>(index / cells)});
    }
    return out;
}

Detections decode_topk(const float* boxes, const float* scores, const std::int64_t* classes,
                       int k, const Letterbox& box, const PostprocessConfig& config) {
    const float threshold = static_cast<float>(config.threshold);
    std::vector<Candidate> kept;
    for (int i = 0; i < k; ++i) {
        if (scores[i] > 0.f && scores[i] >= threshold) kept.push_back({scores[i], i});
    }
    // the graph's TopK is sorted already; this keeps ties in their order
    std::stable_sort(kept.begin(), kept.end(), ranks_before);
    if (static_cast<int>(kept.size()) > config.max_dets) kept.resize(std::max(config.max_dets, 0));
    Detections out;
    out.reserve(kept.size());
    for (const auto& [score, index] : kept) {
        const float* b = boxes + 4 * index;
        out.push_back({to_original(box, b[0], b[1], b[2], b[3]), score,
                       static_cast<int>(classes[index])});
    }
    return out;
}

}  // namespace centernet
