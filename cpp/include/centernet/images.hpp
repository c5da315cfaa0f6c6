// Finding image files and decoding them to BGR uint8, with the Python tool's reason for
// every failure (src/centernet/images.py), so that both name a bad file the same way.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

namespace centernet {

// What the command line's image arguments name: files to read, in order (a named file that
// does not exist stays, so the reader reports it), and (folder or glob, reason) for each
// item that names no image at all.
struct ImageList {
    std::vector<std::string> paths;
    std::vector<std::pair<std::string, std::string>> unmatched;
};

// Files as given; folders -> their image files (by suffix, sorted); globs -> sorted matches.
ImageList collect_image_paths(const std::vector<std::string>& items);

// A decoded image or the reason it could not be read ("no such file", "empty file",
// "truncated JPEG (...)", "not a decodable image", ...).
struct ReadResult {
    cv::Mat image;  // BGR uint8; empty on failure
    std::string error;
    bool ok() const { return error.empty(); }
};

ReadResult read_image(const std::string& path);

// Decodes encoded bytes (cv::IMREAD_COLOR: EXIF orientation applied, grey/BGRA/16-bit made
// BGR uint8), refusing a JPEG with no end-of-image marker after its last scan, which libjpeg
// would otherwise fill with grey and only warn about.
ReadResult decode_image(const std::vector<unsigned char>& data);

}  // namespace centernet
