// Detector: image files in, Detections out, through a pipeline that keeps the engine busy
// (src/centernet/pipeline.py, same stages):
//
//   reader threads: read, decode, pre-process ahead (at most `prefetch` in flight)
//   batching thread: the next batch (padded to a static batch size) while the engine runs
//   engine thread:   only runs the engine, alternating infer requests
//   decoding thread: decodes a finished batch while the engine runs the next
//   caller:          receives results in input order (writing JSON, drawing overlaps too)
//
// A file that cannot be read becomes a failed result in its place; it never stalls the run.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "centernet/letterbox.hpp"
#include "centernet/openvino_engine.hpp"
#include "centernet/postprocess.hpp"

namespace centernet {

struct DetectorSettings {
    int batch = 0;            // images per forward pass; 0: the model's static batch, else 1
    bool keep_res = false;    // original resolution padded to 32 (each image runs alone)
    int readers = 2;          // reader threads
    int prefetch = 0;         // images read ahead; 0: 2 x batch + readers
    bool keep_images = false; // hand each decoded image on (for drawing)
    PostprocessConfig postprocess;
};

struct DetectionResult {
    std::size_t index = 0;
    std::string source;   // the path as given
    Detections detections;
    cv::Mat image;        // the decoded BGR image, with keep_images
    std::string error;    // why it could not be read; empty when read
    double latency_ms = 0;  // from starting to read it to its boxes being decoded
    bool ok() const { return error.empty(); }
};

struct RunStats {
    std::size_t images = 0, failed = 0, batches = 0;
    double wall_s = 0, engine_s = 0;
    std::vector<double> latencies_ms;  // of the images read
};

class Detector {
public:
    // Checks the settings against the model (same messages as the Python Detector).
    Detector(OpenVinoEngine& engine, DetectorSettings settings);

    const ModelSpec& spec() const { return engine_.spec(); }
    int batch_size() const { return batch_; }

    // Detects on each path, calling on_result on this thread in input order. Rethrows the
    // first error of any stage after stopping every thread.
    RunStats run(const std::vector<std::string>& paths,
                 const std::function<void(DetectionResult&)>& on_result);

private:
    OpenVinoEngine& engine_;
    DetectorSettings settings_;
    int batch_;
    PreprocessConfig preprocess_;
};

}  // namespace centernet
