// The ModelSpec of an ONNX model file, read from its metadata without the graph.
#pragma once

#include <string>

#include "centernet/model_spec.hpp"

namespace centernet {

// Throws centernet::Error with the Python tool's wording for a missing file, a file that is
// not ONNX, and an ONNX file without CenterNet metadata.
ModelSpec read_onnx_spec(const std::string& path);

}  // namespace centernet
