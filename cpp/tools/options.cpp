#include "options.hpp"

#include <cerrno>
#include <cstdlib>

#include "centernet/errors.hpp"

namespace centernet {

namespace {

int positive_int(const std::string& option, const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end || errno) {
        throw Error("argument " + option + ": invalid int value: '" + text + "'");
    }
    if (value < 1 || value > 1000000) throw Error("argument " + option + ": must be >= 1: " + text);
    return static_cast<int>(value);
}

double float_value(const std::string& option, const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end || errno) {
        throw Error("argument " + option + ": invalid float value: '" + text + "'");
    }
    return value;
}

}  // namespace

const char* usage() {
    return "usage: centernet_infer MODEL IMAGES... --out DIR [--file-list F] [--save-images]\n"
           "                       [--threshold 0.3] [--max-dets 100] [--batch N] [--keep-res]\n"
           "                       [--threads N] [--readers 2] [--cache-dir DIR]\n"
           "\n"
           "Runs a CenterNet ONNX export/build (or an OpenVINO IR made from one) on images and\n"
           "writes DIR/detections.json as `centernet detect` does.\n"
           "\n"
           "  MODEL            .onnx from `centernet export`/`build`, or an OpenVINO .xml IR\n"
           "  IMAGES           files, folders (their images) or globs\n"
           "  --out DIR        output folder (detections.json, images/)\n"
           "  --file-list F    a file naming one image per line\n"
           "  --save-images    write annotated copies to DIR/images\n"
           "  --threshold T    drop boxes scoring below T (default 0.3)\n"
           "  --max-dets K     boxes per image (default 100)\n"
           "  --batch N        images per forward pass (a static-batch model fixes it)\n"
           "  --keep-res       original resolution padded to 32 (model needs --dynamic-size)\n"
           "  --threads N      engine threads (default: all cores)\n"
           "  --readers N      threads reading and pre-processing images (default 2)\n"
           "  --cache-dir DIR  compiled-model cache (default: as the Python engine's)\n"
           "\n"
           "Exit status: 0 all images done; 1 some images skipped (named on stderr);\n"
           "2 a fatal error (one line on stderr).\n";
}

InferOptions parse_options(int argc, char** argv) {
    InferOptions options;
    std::vector<std::string> positional;
    bool out_given = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        bool inline_value = false;
        if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
            value = arg.substr(arg.find('=') + 1);
            arg = arg.substr(0, arg.find('='));
            inline_value = true;
        }
        auto take = [&]() -> std::string {
            if (inline_value) return value;
            if (i + 1 >= argc) throw Error("argument " + arg + ": expected one argument");
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            options.help = true;
        } else if (arg == "--out") {
            options.out = take();
            out_given = true;
        } else if (arg == "--file-list") {
            options.file_list = take();
        } else if (arg == "--save-images") {
            options.save_images = true;
        } else if (arg == "--keep-res") {
            options.keep_res = true;
        } else if (arg == "--threshold") {
            options.threshold = float_value(arg, take());
        } else if (arg == "--max-dets") {
            options.max_dets = positive_int(arg, take());
        } else if (arg == "--batch") {
            options.batch = positive_int(arg, take());
        } else if (arg == "--threads") {
            options.threads = positive_int(arg, take());
        } else if (arg == "--readers") {
            options.readers = positive_int(arg, take());
        } else if (arg == "--cache-dir") {
            options.cache_dir = take();
        } else if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
            throw Error("unrecognized arguments: " + arg);
        } else {
            positional.push_back(arg);
        }
    }
    if (options.help) return options;
    if (positional.empty()) throw Error("the following arguments are required: model, --out");
    if (!out_given) throw Error("the following arguments are required: --out");
    options.model = positional.front();
    options.images.assign(positional.begin() + 1, positional.end());
    return options;
}

}  // namespace centernet
