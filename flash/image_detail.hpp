#pragma once
// Shared by the format parsers (image_*.cpp) and the assembly in image.cpp; not part of the
// public interface.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace probefarm::flash::detail {

// Data as a parser found it, before sorting and merging. `origin` is the line number or the
// program header index, so an overlap can be reported against both sources.
struct Chunk {
  std::uint64_t address = 0;
  std::vector<std::uint8_t> data;
  std::uint32_t origin = 0;
};

struct Parsed {
  std::vector<Chunk> chunks;
  std::optional<std::uint32_t> entry;
  std::string_view origin_unit;  // "line" or "program header": how `Chunk::origin` reads
};

Parsed parse_elf(std::span<const std::uint8_t> bytes, std::string_view name);
Parsed parse_ihex(std::span<const std::uint8_t> bytes, std::string_view name);
Parsed parse_srec(std::span<const std::uint8_t> bytes, std::string_view name);

// "0x08000000" (width 8) or "0x3a" (width 2).
std::string hex(std::uint64_t value, int width = 8);

// Splits text records into lines: LF or CR LF, trailing blanks dropped. Line numbers are
// 1-based, as an editor shows them.
class LineReader {
 public:
  explicit LineReader(std::span<const std::uint8_t> bytes);
  // The next line that is not blank, without its leading and trailing blanks; `column` is
  // the 0-based column where it starts. False at the end of the input.
  bool next(std::string_view& line, std::size_t& column);
  // "fw.hex:12": the file name and the current line, for messages.
  std::string where(std::string_view name) const;
  std::uint32_t line_number() const { return line_number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::uint32_t line_number_ = 0;
};

// Decodes pairs of hex digits. `where` prefixes messages ("fw.hex:12"); `column` is the
// 1-based column of digits[0], so a bad digit is reported where an editor shows it.
std::vector<std::uint8_t> decode_hex(std::string_view digits, const std::string& where,
                                     std::size_t column, const std::string& hint);

}  // namespace probefarm::flash::detail
