// The centernet_infer command line: parsed into typed options, errors as centernet::Error.
#pragma once

#include <string>
#include <vector>

namespace centernet {

struct InferOptions {
    std::string model;
    std::vector<std::string> images;
    std::string file_list;
    std::string out;
    bool save_images = false;
    bool keep_res = false;
    double threshold = 0.3;
    int max_dets = 100;
    int batch = 0;    // 0: the model's static batch, else 1
    int threads = 0;  // engine threads; 0: OpenVINO's default
    int readers = 2;
    std::string cache_dir;
    bool help = false;
};

InferOptions parse_options(int argc, char** argv);

const char* usage();

}  // namespace centernet
