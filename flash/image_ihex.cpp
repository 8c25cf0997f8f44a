// Intel HEX, per Intel's "Hexadecimal Object File Format Specification", revision A
// (1988): records ":LLAAAATT<data>CC", where CC makes the sum of all record bytes 0 mod 256.
#include "flash/image_detail.hpp"
#include "probe/error.hpp"

namespace probefarm::flash::detail {

namespace {

enum : std::uint8_t {
  kData = 0x00,
  kEndOfFile = 0x01,
  kExtendedSegmentAddress = 0x02,
  kStartSegmentAddress = 0x03,
  kExtendedLinearAddress = 0x04,
  kStartLinearAddress = 0x05,
};

const char* const kHint =
    "the file is corrupt or not Intel HEX; regenerate it (arm-none-eabi-objcopy -O ihex "
    "firmware.elf firmware.hex)";

}  // namespace

Parsed parse_ihex(std::span<const std::uint8_t> bytes, std::string_view name) {
  Parsed parsed;
  parsed.origin_unit = "line";
  // Only one of the two address extensions is in force at a time: the last one seen.
  std::uint32_t base = 0;
  bool segment_mode = false;
  bool seen_eof = false;
  LineReader reader(bytes);
  std::string_view line;
  std::size_t first = 0;
  while (reader.next(line, first)) {
    const std::string where = reader.where(name);
    auto fail = [&](const std::string& what) -> void {
      throw Error(ErrorCategory::image, where + ": " + what, kHint);
    };
    if (seen_eof) fail("data after the end-of-file record");
    if (line.front() != ':') fail("a record must start with ':'");
    const std::vector<std::uint8_t> r = decode_hex(line.substr(1), where, first + 2, kHint);
    if (r.size() < 5) {
      fail("truncated record: " + std::to_string(r.size()) +
           " bytes, a record has at least 5 (count, address, type, checksum)");
    }
    const std::size_t count = r[0];
    if (r.size() != count + 5) {
      fail((r.size() < count + 5 ? "truncated record: " : "record too long: ") +
           std::to_string(r.size() - 5) + " data bytes, the byte count says " +
           std::to_string(count));
    }
    std::uint8_t sum = 0;
    for (std::uint8_t v : r)
      sum = static_cast<std::uint8_t>(sum + v);
    if (sum != 0) {
      const auto expected = static_cast<std::uint8_t>(r.back() - sum);
      fail("checksum " + hex(r.back(), 2) + " is wrong, the record's bytes need " +
           hex(expected, 2));
    }
    const std::uint16_t offset = static_cast<std::uint16_t>(r[1] << 8 | r[2]);
    const std::uint8_t type = r[3];
    const std::uint8_t* data = r.data() + 4;
    auto need_count = [&](std::size_t n) {
      if (count != n) {
        fail("record type " + hex(type, 2) + " needs a byte count of " + std::to_string(n) +
             ", not " + std::to_string(count));
      }
    };
    switch (type) {
      case kData: {
        if (count == 0) break;
        if (segment_mode && offset + count > 0x10000) {
          // With a segment base the offset wraps within the 64 KiB segment (spec: "MOD 64K").
          const std::size_t head = 0x10000 - offset;
          parsed.chunks.push_back(
              Chunk{std::uint64_t{base} + offset, {data, data + head}, reader.line_number()});
          parsed.chunks.push_back(Chunk{base, {data + head, data + count}, reader.line_number()});
          break;
        }
        const std::uint64_t address = std::uint64_t{base} + offset;
        if (address + count > (std::uint64_t{1} << 32)) {
          fail("data at " + hex(address) + " (" + std::to_string(count) +
               " bytes) runs past the 4 GiB address space");
        }
        parsed.chunks.push_back(Chunk{address, {data, data + count}, reader.line_number()});
        break;
      }
      case kEndOfFile:
        need_count(0);
        seen_eof = true;
        break;
      case kExtendedSegmentAddress:
        need_count(2);
        base = static_cast<std::uint32_t>(data[0] << 8 | data[1]) << 4;
        segment_mode = true;
        break;
      case kStartSegmentAddress:
        // CS:IP of an 8086; kept as the real-mode address it denotes.
        need_count(4);
        parsed.entry = (static_cast<std::uint32_t>(data[0] << 8 | data[1]) << 4) +
                       static_cast<std::uint32_t>(data[2] << 8 | data[3]);
        break;
      case kExtendedLinearAddress:
        need_count(2);
        base = static_cast<std::uint32_t>(data[0] << 8 | data[1]) << 16;
        segment_mode = false;
        break;
      case kStartLinearAddress:
        need_count(4);
        parsed.entry = std::uint32_t{data[0]} << 24 | std::uint32_t{data[1]} << 16 |
                       std::uint32_t{data[2]} << 8 | data[3];
        break;
      default:
        fail("unknown record type " + hex(type, 2) + " (Intel HEX defines 00 to 05)");
    }
  }
  if (!seen_eof) {
    throw Error(
        ErrorCategory::image,
        reader.line_number() == 0
            ? std::string(name) + ": the file is empty"
            : reader.where(name) + ": the file ends without an end-of-file record (:00000001FF)",
        "the file is truncated; copy or regenerate it completely");
  }
  return parsed;
}

}  // namespace probefarm::flash::detail
