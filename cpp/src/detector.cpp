#include "centernet/detector.hpp"

#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "centernet/bounded_queue.hpp"
#include "centernet/errors.hpp"
#include "centernet/images.hpp"
#include "centernet/preprocess.hpp"
#include "centernet/read_ahead.hpp"

namespace centernet {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// A read and pre-processed image waiting for the engine (or its failure).
struct Prepared {
    DetectionResult result;
    std::vector<float> tensor;  // (3, H, W)
    Letterbox box;
    Clock::time_point started;
};

// What the batching thread hands the engine: a batch of `members` (none when there are only
// failures) and every input since the last unit, to hand on in order.
struct Unit {
    std::vector<float> batch;
    int rows = 0, height = 0, width = 0;
    std::vector<std::size_t> members;  // positions in `items` of the batch rows
    std::vector<Prepared> items;
};

// A unit that has run: its outputs live in infer request `slot` until the slot is freed.
struct RanUnit {
    Unit unit;
    int slot = -1;
    BatchOutputs outputs;
};

// The first failure of any stage, to stop everyone and rethrow to the caller.
class FirstError {
public:
    void set(std::exception_ptr error) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = error;
    }
    void rethrow() {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::mutex mutex_;
    std::exception_ptr error_;
};

}  // namespace

Detector::Detector(OpenVinoEngine& engine, DetectorSettings settings)
    : engine_(engine), settings_(std::move(settings)) {
    const ModelSpec& spec = engine_.spec();
    if (settings_.keep_res && !spec.dynamic_size) {
        throw Error("--keep-res needs a model with a free input size; export it with --dynamic-size");
    }
    const int fixed = engine_.fixed_batch();
    if (fixed && settings_.batch && settings_.batch != fixed) {
        throw Error("this model was built for batch " + std::to_string(fixed) + "; got batch " +
                    std::to_string(settings_.batch));
    }
    if (spec.output_mode == "topk" && settings_.postprocess.max_dets > spec.max_objects) {
        throw Error("this model's graph keeps the top " + std::to_string(spec.max_objects) +
                    " boxes; max_dets " + std::to_string(settings_.postprocess.max_dets) +
                    " needs a re-export");
    }
    batch_ = fixed ? fixed : (settings_.batch ? settings_.batch : 1);
    settings_.readers = std::max(1, settings_.readers);
    if (settings_.prefetch <= 0) settings_.prefetch = 2 * batch_ + settings_.readers;
    preprocess_ = PreprocessConfig::from_spec(spec, settings_.keep_res);
}

RunStats Detector::run(const std::vector<std::string>& paths,
                       const std::function<void(DetectionResult&)>& on_result) {
    RunStats stats;
    const auto run_started = Clock::now();
    const NormaliseTable table = make_normalise_table(preprocess_.mean, preprocess_.std);
    const bool keep_images = settings_.keep_images;
    const PreprocessConfig preprocess = preprocess_;

    auto prepare = [&](std::size_t index) {
        Prepared item;
        item.started = Clock::now();
        item.result.index = index;
        item.result.source = paths[index];
        try {
            ReadResult read = read_image(paths[index]);
            if (!read.ok()) {
                item.result.error = read.error;
                return item;
            }
            const Letterbox box = make_letterbox(read.image.cols, read.image.rows, preprocess);
            item.tensor.resize(static_cast<std::size_t>(3) * box.input_width * box.input_height);
            item.box = preprocess_into(read.image, preprocess, table, item.tensor.data());
            if (keep_images) item.result.image = std::move(read.image);
        } catch (const std::exception& exc) {  // e.g. out of memory on a huge image
            item.result.error = exc.what();
            item.tensor.clear();
        }
        return item;
    };

    FirstError first_error;
    BoundedQueue<Unit> units(1);  // one batch ready ahead of the engine
    BoundedQueue<RanUnit> ran(static_cast<std::size_t>(engine_.slots()));
    BoundedQueue<int> free_slots(static_cast<std::size_t>(engine_.slots()));
    BoundedQueue<DetectionResult> results(static_cast<std::size_t>(settings_.prefetch + 2 * batch_));
    for (int slot = 0; slot < engine_.slots(); ++slot) free_slots.push(slot);
    ReadAhead<Prepared> reader(paths.size(), settings_.readers,
                               static_cast<std::size_t>(settings_.prefetch), prepare);
    const int static_rows = engine_.fixed_batch();
    const bool keep_res = settings_.keep_res;
    const int batch_size = batch_;
    double engine_seconds = 0;
    std::size_t batches = 0;

    auto stop_all = [&] {
        reader.stop();
        units.close(true);
        ran.close(true);
        free_slots.close(true);
        results.close(true);
    };

    // batching: inputs in order -> units of up to batch_size readable images
    std::thread batcher([&] {
        try {
            Unit unit;
            auto emit = [&] {
                if (!unit.members.empty()) {
                    const Prepared& first = unit.items[unit.members.front()];
                    unit.height = first.box.input_height;
                    unit.width = first.box.input_width;
                    unit.rows = static_rows ? static_rows : static_cast<int>(unit.members.size());
                    if (unit.rows == 1) {
                        unit.batch = std::move(unit.items[unit.members.front()].tensor);
                    } else {  // stacked; the padding rows of a static batch are zeros
                        const std::size_t row = first.tensor.size();
                        unit.batch.assign(row * unit.rows, 0.f);
                        for (std::size_t r = 0; r < unit.members.size(); ++r) {
                            auto& tensor = unit.items[unit.members[r]].tensor;
                            std::copy(tensor.begin(), tensor.end(), unit.batch.begin() + r * row);
                            std::vector<float>().swap(tensor);
                        }
                    }
                }
                const bool handed = units.push(std::move(unit));
                unit = Unit();
                return handed;
            };
            while (auto item = reader.next()) {
                const bool readable = item->result.ok();
                unit.items.push_back(std::move(*item));
                if (readable) unit.members.push_back(unit.items.size() - 1);
                const int members = static_cast<int>(unit.members.size());
                const bool full = members == batch_size || (members > 0 && keep_res);
                if ((full || members == 0) && !emit()) return;
            }
            if (!unit.items.empty() && !emit()) return;
            units.close();
        } catch (...) {
            first_error.set(std::current_exception());
            stop_all();
        }
    });

    // engine: only runs the engine
    std::thread engine_thread([&] {
        try {
            while (auto unit = units.pop()) {
                RanUnit done;
                done.unit = std::move(*unit);
                if (!done.unit.members.empty()) {
                    const auto slot = free_slots.pop();
                    if (!slot) return;
                    done.slot = *slot;
                    const auto started = Clock::now();
                    done.outputs = engine_.infer(done.slot, done.unit.batch.data(), done.unit.rows,
                                                 done.unit.height, done.unit.width);
                    engine_seconds += seconds_since(started);
                    ++batches;
                }
                if (!ran.push(std::move(done))) return;
            }
            ran.close();
        } catch (...) {
            first_error.set(std::current_exception());
            stop_all();
        }
    });

    // decoding: boxes of a finished batch while the engine runs the next
    std::thread decoder([&] {
        try {
            while (auto done = ran.pop()) {
                const BatchOutputs& out = done->outputs;
                for (std::size_t row = 0; row < done->unit.members.size(); ++row) {
                    Prepared& item = done->unit.items[done->unit.members[row]];
                    if (out.hm) {
                        item.result.detections = decode_maps(
                            out.hm_max + row * out.map_stride(), out.hm + row * out.map_stride(),
                            out.wh + row * out.pair_stride(), out.reg + row * out.pair_stride(),
                            out.classes, out.height, out.width, item.box, settings_.postprocess);
                    } else {
                        const std::size_t k = static_cast<std::size_t>(out.k);
                        item.result.detections = decode_topk(
                            out.boxes + row * k * 4, out.scores + row * k,
                            out.class_ids + row * k, out.k, item.box, settings_.postprocess);
                    }
                }
                if (done->slot >= 0 && !free_slots.push(done->slot)) return;
                for (auto& item : done->unit.items) {
                    item.result.latency_ms = 1e3 * seconds_since(item.started);
                    if (!results.push(std::move(item.result))) return;
                }
            }
            results.close();
        } catch (...) {
            first_error.set(std::current_exception());
            stop_all();
        }
    });

    // the caller's own work overlaps the engine
    try {
        while (auto result = results.pop()) {
            ++stats.images;
            if (result->ok()) stats.latencies_ms.push_back(result->latency_ms);
            else ++stats.failed;
            on_result(*result);
        }
    } catch (...) {
        first_error.set(std::current_exception());
        stop_all();
    }
    stop_all();  // a no-op after a clean end: every queue is drained and closed
    batcher.join();
    engine_thread.join();
    decoder.join();
    first_error.rethrow();
    stats.batches = batches;
    stats.engine_s = engine_seconds;
    stats.wall_s = seconds_since(run_started);
    return stats;
}

}  // namespace centernet
