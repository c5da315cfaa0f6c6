#include "centernet/images.hpp"

#include <glob.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include <opencv2/imgcodecs.hpp>

namespace centernet {

namespace fs = std::filesystem;

namespace {

const char* const kSuffixes[] = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"};
const char* const kSuffixList = ".jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp";

bool has_image_suffix(const fs::path& path) {
    std::string suffix = path.extension().string();
    std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return std::any_of(std::begin(kSuffixes), std::end(kSuffixes),
                       [&](const char* s) { return suffix == s; });
}

// As Python's str(pathlib.Path(text)): no "." parts, no repeated or trailing slashes, so
// that folder entries are named exactly as the Python tool names them.
std::string pathlib_text(const std::string& text) {
    const bool absolute = !text.empty() && text[0] == '/';
    std::string out, part;
    auto flush = [&] {
        if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
        part.clear();
    };
    for (char c : text) {
        if (c == '/') flush(); else part += c;
    }
    flush();
    if (absolute) out = "/" + out;
    return out.empty() ? "." : out;
}

bool has_glob_magic(const std::string& text) {
    return text.find_first_of("*?[") != std::string::npos;
}

std::vector<std::string> glob_files(const std::string& pattern) {
    std::vector<std::string> matches;
    glob_t found{};
    if (::glob(pattern.c_str(), 0, nullptr, &found) == 0) {
        for (std::size_t i = 0; i < found.gl_pathc; ++i) {
            std::error_code ignored;
            if (fs::is_regular_file(found.gl_pathv[i], ignored)) matches.emplace_back(found.gl_pathv[i]);
        }
    }
    globfree(&found);
    std::sort(matches.begin(), matches.end());
    return matches;
}

// "OpenCV cannot decode it (Assertion failed: pixels <= ...)": the part of OpenCV's long
// message that says why, as images.py _opencv_reason.
std::string opencv_reason(const cv::Exception& exc) {
    static const std::regex pattern(R"(error: \(-?\d+:([^)]*)\) (.*?) in function)");
    const std::string text = exc.what();
    std::smatch found;
    if (std::regex_search(text, found, pattern)) return found[1].str() + ": " + found[2].str();
    return exc.msg.empty() ? "cv::Exception" : exc.msg;
}

ReadResult failure(std::string reason) { return {cv::Mat(), std::move(reason)}; }

}  // namespace

ImageList collect_image_paths(const std::vector<std::string>& items) {
    ImageList found;
    for (const auto& name : items) {
        std::error_code ignored;
        if (fs::is_directory(name, ignored)) {
            std::vector<std::string> images;
            const std::string folder = pathlib_text(name);
            for (const auto& entry : fs::directory_iterator(name, ignored)) {
                std::error_code also_ignored;
                if (has_image_suffix(entry.path()) && entry.is_regular_file(also_ignored)) {
                    images.push_back(folder + "/" + entry.path().filename().string());
                }
            }
            std::sort(images.begin(), images.end());
            if (images.empty()) {
                found.unmatched.emplace_back(name, std::string("folder holds no images (") +
                                                       kSuffixList + ")");
            }
            found.paths.insert(found.paths.end(), images.begin(), images.end());
        } else if (has_glob_magic(name)) {
            const auto matches = glob_files(name);
            if (matches.empty()) found.unmatched.emplace_back(name, "no files match");
            found.paths.insert(found.paths.end(), matches.begin(), matches.end());
        } else {
            found.paths.push_back(name);
        }
    }
    return found;
}

ReadResult read_image(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        if (error == ENOENT) return failure("no such file");
        if (error == EISDIR) return failure("is a directory");
        return failure(std::strerror(error));
    }
    std::vector<unsigned char> data;
    struct stat info {};
    if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
        ::close(fd);
        return failure("is a directory");
    }
    if (info.st_size > 0) data.reserve(static_cast<std::size_t>(info.st_size));
    unsigned char buffer[1 << 16];
    while (true) {
        const ssize_t count = ::read(fd, buffer, sizeof buffer);
        if (count < 0) {
            if (errno == EINTR) continue;
            const int error = errno;
            ::close(fd);
            return failure(error == EISDIR ? "is a directory" : std::strerror(error));
        }
        if (count == 0) break;
        data.insert(data.end(), buffer, buffer + count);
    }
    ::close(fd);
    return decode_image(data);
}

ReadResult decode_image(const std::vector<unsigned char>& data) {
    if (data.empty()) return failure("empty file");
    if (data.size() >= 2 && data[0] == 0xFF && data[1] == 0xD8) {
        // the last start-of-scan marker, else (as Python's data[-1:]) only the last byte
        std::size_t start = data.size() - 1;
        for (std::size_t i = data.size() - 1; i-- > 0;) {
            if (data[i] == 0xFF && data[i + 1] == 0xDA) {
                start = i;
                break;
            }
        }
        bool has_end = false;
        for (std::size_t i = start; i + 1 < data.size(); ++i) {
            if (data[i] == 0xFF && data[i + 1] == 0xD9) {
                has_end = true;
                break;
            }
        }
        if (!has_end) return failure("truncated JPEG (no end-of-image marker after its last scan)");
    }
    cv::Mat image;
    try {
        image = cv::imdecode(data, cv::IMREAD_COLOR);
    } catch (const cv::Exception& exc) {
        return failure("OpenCV cannot decode it (" + opencv_reason(exc) + ")");
    }
    if (image.empty()) return failure("not a decodable image");
    return {image, ""};
}

}  // namespace centernet
