// centernet_infer: the C++ counterpart of `centernet detect`. Same model files, same
// pre/post-processing, same DIR/detections.json, same messages and exit codes.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <opencv2/imgcodecs.hpp>

#include "centernet/coco_json.hpp"
#include "centernet/detector.hpp"
#include "centernet/draw.hpp"
#include "centernet/errors.hpp"
#include "centernet/images.hpp"
#include "centernet/openvino_engine.hpp"
#include "options.hpp"

namespace fs = std::filesystem;
using namespace centernet;

namespace {

constexpr int kExitOk = 0, kExitSomeFailed = 1, kExitError = 2;

std::vector<std::string> read_file_list(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error("cannot read file list " + path + ": no such file or unreadable");
    std::vector<std::string> names;
    std::string line;
    while (std::getline(in, line)) {
        const auto first = line.find_first_not_of(" \t\r\n\f\v");
        if (first == std::string::npos) continue;
        const auto last = line.find_last_not_of(" \t\r\n\f\v");
        names.push_back(line.substr(first, last - first + 1));
    }
    return names;
}

// The file name of `path`, made unique among those already written ("a.jpg", "a_1.jpg").
std::string unique_name(const std::string& path, std::set<std::string>& taken) {
    const fs::path file = fs::path(path).filename();
    std::string name = file.string();
    const std::string stem = file.stem().string(), suffix = file.extension().string();
    for (int n = 1; taken.count(name); ++n) name = stem + "_" + std::to_string(n) + suffix;
    taken.insert(name);
    return name;
}

double percentile(std::vector<double> values, double q) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const double position = q * (values.size() - 1);  // linear, as numpy's default
    const auto low = static_cast<std::size_t>(position);
    const std::size_t high = std::min(low + 1, values.size() - 1);
    return values[low] + (values[high] - values[low]) * (position - low);
}

std::string format(const char* pattern, double a, double b = 0, double c = 0, double d = 0) {
    char buffer[256];
    std::snprintf(buffer, sizeof buffer, pattern, a, b, c, d);
    return buffer;
}

int run(const InferOptions& options) {
    std::vector<std::string> items = options.images;
    if (!options.file_list.empty()) {
        const auto listed = read_file_list(options.file_list);
        items.insert(items.end(), listed.begin(), listed.end());
    }
    if (items.empty()) throw Error("no images given (files, folders, globs or --file-list)");
    const ImageList inputs = collect_image_paths(items);

    EngineOptions engine_options;
    engine_options.threads = options.threads;
    engine_options.cache_dir = options.cache_dir;
    OpenVinoEngine engine(options.model, engine_options);
    DetectorSettings settings;
    settings.batch = options.batch;
    settings.keep_res = options.keep_res;
    settings.readers = options.readers;
    settings.keep_images = options.save_images;
    settings.postprocess.threshold = options.threshold;
    settings.postprocess.max_dets = options.max_dets;
    Detector detector(engine, settings);

    for (const auto& [item, reason] : inputs.unmatched) {  // named and skipped, as unreadable files
        std::cerr << "centernet: skipped " << item << ": " << reason << "\n";
    }
    const fs::path out = options.out;
    std::error_code failed_mkdir;
    fs::create_directories(options.save_images ? out / "images" : out, failed_mkdir);
    if (failed_mkdir) throw Error("cannot create " + out.string() + ": " + failed_mkdir.message());

    const std::vector<int> category_ids = category_ids_for(detector.spec().class_names);
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    std::size_t boxes = 0;
    std::set<std::string> taken;
    const RunStats stats = detector.run(inputs.paths, [&](DetectionResult& result) {
        if (!result.ok()) {
            std::cerr << "centernet: skipped " << result.source << ": " << result.error << "\n";
            return;
        }
        append_coco_entries(result.detections, category_ids, detector.spec().class_names,
                            fs::path(result.source).filename().string(), entries);
        boxes += result.detections.size();
        if (options.save_images) {
            const cv::Mat drawn =
                draw_detections(result.image, result.detections, detector.spec().class_names);
            cv::imwrite((out / "images" / unique_name(result.source, taken)).string(), drawn);
        }
    });
    const fs::path json_path = out / "detections.json";
    std::ofstream json_file(json_path);
    json_file << python_json_dumps(entries);
    if (!json_file.flush()) throw Error("cannot write " + json_path.string());

    const std::size_t done = stats.images - stats.failed;
    std::ostringstream summary;
    summary << "detected " << done << " of " << stats.images << " images in "
            << format("%.1f s (%.1f img/s): ", stats.wall_s, done / std::max(stats.wall_s, 1e-9))
            << boxes << " boxes >= " << options.threshold << "; " << stats.failed << " unreadable";
    if (!inputs.unmatched.empty()) {
        summary << ", " << inputs.unmatched.size() << " folders/patterns matched nothing";
    }
    summary << "; wrote " << json_path.string();
    if (options.save_images) summary << " and " << done << " images in " << (out / "images").string();
    std::cout << summary.str() << "\n";
    if (done > 0) {
        std::cout << "latency per image "
                  << format("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, mean %.1f ms; ",
                            percentile(stats.latencies_ms, 0.5), percentile(stats.latencies_ms, 0.9),
                            percentile(stats.latencies_ms, 0.99),
                            [&] {
                                double sum = 0;
                                for (double v : stats.latencies_ms) sum += v;
                                return sum / stats.latencies_ms.size();
                            }())
                  << "engine " << format("%.1f ms per batch of ", 1e3 * stats.engine_s / std::max<std::size_t>(stats.batches, 1))
                  << detector.batch_size()
                  << format(" (%.0f %% of wall time)", 100 * stats.engine_s / std::max(stats.wall_s, 1e-9))
                  << "\n";
    }
    if (!detector.spec().weights_note.empty()) {
        std::cout << "note: " << detector.spec().weights_note << "\n";
    }
    return stats.failed || !inputs.unmatched.empty() ? kExitSomeFailed : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const InferOptions options = parse_options(argc, argv);
        if (options.help) {
            std::cout << usage();
            return kExitOk;
        }
        return run(options);
    } catch (const std::exception& exc) {
        std::string message = exc.what();
        std::replace(message.begin(), message.end(), '\n', ' ');
        std::cerr << "centernet: error: " << message << "\n";
        return kExitError;
    }
}
