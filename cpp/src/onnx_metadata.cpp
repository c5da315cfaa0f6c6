#include "centernet/onnx_metadata.hpp"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

#include "centernet/errors.hpp"

namespace centernet {

namespace {

constexpr std::uint64_t kMetadataProps = 14;  // ModelProto.metadata_props
constexpr std::uint64_t kEntryKey = 1;        // StringStringEntryProto.key
constexpr std::uint64_t kEntryValue = 2;      // StringStringEntryProto.value

// A protobuf wire-format reader over a seekable stream or an in-memory buffer.
class WireReader {
public:
    WireReader(std::istream& in, std::uint64_t end) : in_(in), end_(end) {}

    bool at_end() { return position() >= end_; }

    std::uint64_t varint() {
        std::uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            const int byte = in_.get();
            if (byte == std::char_traits<char>::eof()) throw Error("truncated varint");
            value |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
            if (!(byte & 0x80)) return value;
        }
        throw Error("varint too long");
    }

    // Calls on_field(number, payload) for each length-delimited field in `wanted`;
    // every other field is skipped unread.
    template <typename OnField>
    void each_field(std::uint64_t wanted_a, std::uint64_t wanted_b, OnField on_field) {
        while (!at_end()) {
            const std::uint64_t tag = varint();
            const std::uint64_t number = tag >> 3, wire = tag & 7;
            if (wire == 0) {
                varint();
            } else if (wire == 1 || wire == 5) {
                skip(wire == 1 ? 8 : 4);
            } else if (wire == 2) {
                const std::uint64_t length = varint();
                if (position() + length > end_) throw Error("a field runs past the end");
                if (number == wanted_a || number == wanted_b) {
                    std::string payload(length, '\0');
                    in_.read(payload.data(), static_cast<std::streamsize>(length));
                    if (!in_) throw Error("truncated field");
                    on_field(number, std::move(payload));
                } else {
                    skip(length);
                }
            } else {
                throw Error("unexpected protobuf wire type " + std::to_string(wire));
            }
        }
    }

private:
    std::uint64_t position() { return static_cast<std::uint64_t>(in_.tellg()); }
    void skip(std::uint64_t count) {
        in_.seekg(static_cast<std::streamoff>(count), std::ios::cur);
        if (!in_) throw Error("truncated field");
    }

    std::istream& in_;
    std::uint64_t end_;
};

}  // namespace

std::map<std::string, std::string> read_onnx_metadata(const std::string& path) {
    std::ifstream file(path, std::ios::binary | std::ios::ate);
    if (!file) throw Error(path + ": cannot open");
    const auto size = static_cast<std::uint64_t>(file.tellg());
    file.seekg(0);
    std::map<std::string, std::string> props;
    WireReader model(file, size);
    model.each_field(kMetadataProps, kMetadataProps, [&](std::uint64_t, std::string entry) {
        std::istringstream entry_stream(std::move(entry));
        const auto entry_size = static_cast<std::uint64_t>(entry_stream.str().size());
        std::string key, value;
        WireReader fields(entry_stream, entry_size);
        fields.each_field(kEntryKey, kEntryValue, [&](std::uint64_t number, std::string text) {
            (number == kEntryKey ? key : value) = std::move(text);  // the last one wins
        });
        props[key] = value;
    });
    return props;
}

}  // namespace centernet
