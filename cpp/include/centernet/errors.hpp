// Errors that end a run: a bad model file, bad options. The program prints them as one
// line ("centernet: error: ...") and exits 2, like the Python CLI.
#pragma once

#include <stdexcept>
#include <string>

namespace centernet {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace centernet
