// A CenterNet model file run by the OpenVINO C++ runtime on the CPU: the ONNX exports and
// builds of `centernet export` / `centernet build` (fp32, fp16, QDQ int8) and OpenVINO IRs
// (.xml + .bin) made from them. Outputs are taken by name, never by position.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "centernet/model_spec.hpp"

namespace centernet {

struct EngineOptions {
    int threads = 0;        // inference threads; 0: OpenVINO's default (all cores)
    std::string cache_dir;  // compiled-model cache; "" for the Python tool's default
    int slots = 2;          // infer requests: one runs while another's outputs are decoded
};

// One batch's outputs, viewed in place in an infer request's output tensors: valid until
// that slot runs again. Maps mode fills hm_max/hm/wh/reg, top-K mode boxes/scores/classes.
struct BatchOutputs {
    const float* hm_max = nullptr;
    const float* hm = nullptr;
    const float* wh = nullptr;
    const float* reg = nullptr;
    int classes = 0, height = 0, width = 0;  // map shape
    const float* boxes = nullptr;
    const float* scores = nullptr;
    const std::int64_t* class_ids = nullptr;
    int k = 0;  // top-K boxes per image

    // Per-image views into the batch.
    std::size_t map_stride() const { return static_cast<std::size_t>(classes) * height * width; }
    std::size_t pair_stride() const { return static_cast<std::size_t>(2) * height * width; }
};

class OpenVinoEngine {
public:
    // Reads the model and its ModelSpec (ONNX metadata, or an IR's runtime info) and
    // compiles it for the CPU in fp32 (never silently bf16). Throws centernet::Error.
    OpenVinoEngine(const std::string& path, const EngineOptions& options = {});
    ~OpenVinoEngine();
    OpenVinoEngine(const OpenVinoEngine&) = delete;
    OpenVinoEngine& operator=(const OpenVinoEngine&) = delete;

    const ModelSpec& spec() const { return spec_; }
    // The one batch size the model accepts, or 0 when any batch runs.
    int fixed_batch() const { return spec_.dynamic_batch ? 0 : spec_.batch; }
    int slots() const;

    // Runs `batch` (rows x 3 x height x width float32, not copied: it must outlive the call)
    // on infer request `slot`. Call from one thread; the result's views stay valid until
    // `slot` runs again.
    BatchOutputs infer(int slot, const float* batch, int rows, int height, int width);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    ModelSpec spec_;
};

// The default compiled-model cache, shared with the Python engine:
// $CENTERNET_CACHE_DIR/openvino, else $XDG_CACHE_HOME (or ~/.cache)/centernet/openvino.
std::string default_cache_dir();

}  // namespace centernet
