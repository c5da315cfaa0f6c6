#include "centernet/openvino_engine.hpp"

#include <cstdlib>
#include <filesystem>

#include <openvino/openvino.hpp>

#include "centernet/errors.hpp"
#include "centernet/model_file.hpp"

namespace centernet {

namespace fs = std::filesystem;

namespace {

const char* const kInput = "input";
const char* const kMapOutputs[] = {"hm_max", "hm", "wh", "reg"};
const char* const kTopkOutputs[] = {"boxes", "scores", "classes"};

bool is_ir(const std::string& path) {
    std::string suffix = fs::path(path).extension().string();
    for (auto& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return suffix == ".xml";
}

// The spec an IR carries in its runtime info: "centernet/spec" (written by the Python IR
// build) or "framework/centernet" (the ONNX metadata, copied there by the converter).
ModelSpec read_ir_spec(const std::shared_ptr<ov::Model>& model, const std::string& path) {
    for (const auto& keys : {std::vector<std::string>{"centernet", "spec"},
                             std::vector<std::string>{"framework", ModelSpec::kMetadataKey}}) {
        if (model->has_rt_info(keys)) return parse_model_spec(model->get_rt_info<std::string>(keys));
    }
    throw Error(path + ": not a CenterNet model (no 'centernet/spec' in its runtime info)");
}

// The first line of OpenVINO's multi-line report.
std::string first_line(const std::string& text) {
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

}  // namespace

std::string default_cache_dir() {
    if (const char* root = std::getenv("CENTERNET_CACHE_DIR"); root && *root) {
        return (fs::path(root) / "openvino").string();
    }
    fs::path base;
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
        base = xdg;
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        base = fs::path(home) / ".cache";
    } else {
        return "";
    }
    return (base / "centernet" / "openvino").string();
}

struct OpenVinoEngine::Impl {
    ov::Core core;
    ov::CompiledModel compiled;
    std::vector<ov::InferRequest> requests;
    ov::Output<const ov::Node> input;
    std::vector<ov::Output<const ov::Node>> outputs;  // in kMapOutputs / kTopkOutputs order
};

OpenVinoEngine::OpenVinoEngine(const std::string& path, const EngineOptions& options)
    : impl_(std::make_unique<Impl>()) {
    std::error_code ignored;
    if (!fs::is_regular_file(path, ignored)) throw Error(path + ": no such model file");
    const bool ir = is_ir(path);
    if (!ir) spec_ = read_onnx_spec(path);  // before the graph: a clear message for a non-export
    std::shared_ptr<ov::Model> model;
    try {
        model = impl_->core.read_model(path);
    } catch (const std::exception& exc) {
        throw Error(path + ": OpenVINO cannot read this model (" + first_line(exc.what()) + ")");
    }
    if (ir) spec_ = read_ir_spec(model, path);

    // I/O element types as the Python engines hand them on: float32 maps, int64 classes
    ov::preprocess::PrePostProcessor ppp(model);
    ppp.input(kInput).tensor().set_element_type(ov::element::f32);
    const bool topk = spec_.output_mode == "topk";
    std::vector<std::string> names;
    if (topk) names.assign(std::begin(kTopkOutputs), std::end(kTopkOutputs));
    else names.assign(std::begin(kMapOutputs), std::end(kMapOutputs));
    try {
        for (const auto& name : names) {
            ppp.output(name).tensor().set_element_type(name == "classes" ? ov::element::i64
                                                                         : ov::element::f32);
        }
        model = ppp.build();
    } catch (const std::exception& exc) {
        throw Error(path + ": not the graph its metadata describes (" + first_line(exc.what()) + ")");
    }

    ov::AnyMap config{{ov::hint::performance_mode.name(), ov::hint::PerformanceMode::LATENCY},
                      {ov::hint::inference_precision.name(), ov::element::f32}};
    if (options.threads > 0) config[ov::inference_num_threads.name()] = options.threads;
    const std::string cache = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    if (!cache.empty() && (fs::create_directories(cache, ignored), fs::is_directory(cache, ignored))) {
        impl_->core.set_property(ov::cache_dir(cache));
    }
    try {
        impl_->compiled = impl_->core.compile_model(model, "CPU", config);
    } catch (const std::exception& exc) {
        throw Error(path + ": OpenVINO cannot compile this model (" + first_line(exc.what()) + ")");
    }
    impl_->input = impl_->compiled.input(kInput);
    for (const auto& name : names) impl_->outputs.push_back(impl_->compiled.output(name));
    for (int i = 0; i < std::max(1, options.slots); ++i) {
        impl_->requests.push_back(impl_->compiled.create_infer_request());
    }
}

OpenVinoEngine::~OpenVinoEngine() = default;

int OpenVinoEngine::slots() const { return static_cast<int>(impl_->requests.size()); }

BatchOutputs OpenVinoEngine::infer(int slot, const float* batch, int rows, int height, int width) {
    auto& request = impl_->requests.at(static_cast<std::size_t>(slot));
    const ov::Shape shape{static_cast<std::size_t>(rows), 3, static_cast<std::size_t>(height),
                          static_cast<std::size_t>(width)};
    // wraps the caller's buffer: no copy of the batch
    request.set_tensor(impl_->input, ov::Tensor(ov::element::f32, shape, const_cast<float*>(batch)));
    request.infer();
    BatchOutputs out;
    auto tensor = [&](std::size_t i) { return request.get_tensor(impl_->outputs[i]); };
    if (spec_.output_mode == "topk") {
        const ov::Tensor boxes = tensor(0), scores = tensor(1), classes = tensor(2);
        out.boxes = boxes.data<const float>();
        out.scores = scores.data<const float>();
        out.class_ids = classes.data<const std::int64_t>();
        out.k = static_cast<int>(scores.get_shape().at(1));
    } else {
        const ov::Tensor hm_max = tensor(0), hm = tensor(1), wh = tensor(2), reg = tensor(3);
        const ov::Shape map = hm.get_shape();  // (rows, classes, height, width)
        out.hm_max = hm_max.data<const float>();
        out.hm = hm.data<const float>();
        out.wh = wh.data<const float>();
        out.reg = reg.data<const float>();
        out.classes = static_cast<int>(map.at(1));
        out.height = static_cast<int>(map.at(2));
        out.width = static_cast<int>(map.at(3));
    }
    return out;
}

}  // namespace centernet
