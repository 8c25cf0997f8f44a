// Format selection, raw binaries, and the assembly every format shares: sorting, merging
// touching data, rejecting conflicting overlaps, and the fit check against a target.
#include "flash/image.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "flash/image_detail.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {

namespace detail {

std::string hex(std::uint64_t value, int width) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%0*llx", width, static_cast<unsigned long long>(value));
  return buf;
}

LineReader::LineReader(std::span<const std::uint8_t> bytes)
    : text_(reinterpret_cast<const char*>(bytes.data()), bytes.size()) {}

bool LineReader::next(std::string_view& line, std::size_t& column) {
  while (pos_ < text_.size()) {
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line = text_.substr(pos_, end - pos_);
    pos_ = end + 1;
    ++line_number_;
    // CR of CR LF, and trailing blanks some editors leave, are not part of a record.
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    column = line.find_first_not_of(" \t");
    if (column == std::string_view::npos) continue;  // blank lines carry nothing
    line.remove_prefix(column);
    return true;
  }
  return false;
}

std::string LineReader::where(std::string_view name) const {
  return std::string(name) + ":" + std::to_string(line_number_);
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::vector<std::uint8_t> decode_hex(std::string_view digits, const std::string& where,
                                     std::size_t column, const std::string& hint) {
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (hex_value(digits[i]) < 0) {
      const unsigned char c = static_cast<unsigned char>(digits[i]);
      const std::string shown =
          std::isprint(c) ? "'" + std::string(1, digits[i]) + "'" : "byte " + hex(c, 2);
      throw Error(
          ErrorCategory::image,
          where + ": " + shown + " at column " + std::to_string(column + i) + " is not a hex digit",
          hint);
    }
  }
  if (digits.size() % 2 != 0) {
    throw Error(ErrorCategory::image,
                where + ": odd number of hex digits (" + std::to_string(digits.size()) +
                    "); the record is truncated",
                hint);
  }
  std::vector<std::uint8_t> out(digits.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] =
        static_cast<std::uint8_t>(hex_value(digits[2 * i]) * 16 + hex_value(digits[2 * i + 1]));
  }
  return out;
}

namespace {

std::string describe(const Parsed& parsed, const Chunk& c) {
  return std::string(parsed.origin_unit) + " " + std::to_string(c.origin) + " (" + hex(c.address) +
         ".." + hex(c.address + c.data.size() - 1) + ")";
}

// Sorts and merges. Overlap is legal only where both sources agree byte for byte: linkers
// and hex tools do emit duplicated data, but differing bytes mean the file does not say
// what to program.
Image assemble(Parsed parsed, ImageFormat format, std::string_view name) {
  std::vector<Chunk>& chunks = parsed.chunks;
  std::erase_if(chunks, [](const Chunk& c) { return c.data.empty(); });
  std::stable_sort(chunks.begin(), chunks.end(),
                   [](const Chunk& a, const Chunk& b) { return a.address < b.address; });

  Image image;
  image.format = format;
  image.name = std::string(name);
  image.entry = parsed.entry;
  std::size_t first_of_segment = 0;  // index in `chunks` of the first chunk of the segment
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& c = chunks[i];
    if (c.address + c.data.size() > (std::uint64_t{1} << 32)) {
      throw Error(
          ErrorCategory::image,
          std::string(name) + ": " + describe(parsed, c) + " runs past the 4 GiB address space",
          "the file is corrupt; regenerate it from the linker output");
    }
    if (image.segments.empty() || c.address > image.segments.back().end()) {
      image.segments.push_back(Segment{static_cast<std::uint32_t>(c.address), c.data});
      first_of_segment = i;
      continue;
    }
    Segment& seg = image.segments.back();
    const std::uint64_t offset = c.address - seg.address;
    const std::uint64_t shared = std::min<std::uint64_t>(seg.data.size() - offset, c.data.size());
    for (std::uint64_t k = 0; k < shared; ++k) {
      if (seg.data[offset + k] == c.data[k]) continue;
      const std::uint64_t at = c.address + k;
      // The segment's byte came from the first earlier chunk covering it: later ones were
      // checked to agree with it.
      std::size_t j = first_of_segment;
      while (j < i &&
             !(chunks[j].address <= at && at < chunks[j].address + chunks[j].data.size())) {
        ++j;
      }
      throw Error(ErrorCategory::image,
                  std::string(name) + ": " + describe(parsed, c) + " overlaps " +
                      describe(parsed, chunks[j]) + " with different bytes at " + hex(at) + " (" +
                      hex(c.data[k], 2) + " vs " + hex(seg.data[offset + k], 2) + ")",
                  "the image says two different things about the same address; fix the linker "
                  "script or the tool that merged the files");
    }
    seg.data.insert(seg.data.end(), c.data.begin() + static_cast<std::ptrdiff_t>(shared),
                    c.data.end());
  }
  if (image.segments.empty()) {
    throw Error(ErrorCategory::image, std::string(name) + ": the image contains no data to program",
                "check that the right file was given; an ELF needs loadable sections with "
                "contents (.text, .data), a HEX or S-record file data records");
  }
  return image;
}

Parsed parse_bin(std::span<const std::uint8_t> bytes, std::string_view name,
                 std::uint32_t address) {
  if (std::uint64_t{address} + bytes.size() > (std::uint64_t{1} << 32)) {
    throw Error(ErrorCategory::image,
                std::string(name) + ": " + std::to_string(bytes.size()) + " bytes at " +
                    hex(address) + " run past the 4 GiB address space",
                "check --address; flash on STM32 starts at 0x08000000");
  }
  Parsed parsed;
  parsed.origin_unit = "file";
  parsed.chunks.push_back(Chunk{address, {bytes.begin(), bytes.end()}, 0});
  return parsed;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// True if the first line is `lead` followed only by hex digits (and `digit_after` requires a
// decimal digit right after the lead, as in "S1"). A raw binary could start with ':' or
// 'S' by chance; a whole line of hex digits it will not.
bool first_line_is_records(std::span<const std::uint8_t> bytes, char lead, bool digit_after) {
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const std::size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != lead) return false;
  std::size_t end = text.find_first_of("\r\n", start);
  if (end == std::string_view::npos) end = text.size();
  std::string_view rest = text.substr(start + 1, end - start - 1);
  if (digit_after) {
    if (rest.empty() || !std::isdigit(static_cast<unsigned char>(rest.front()))) return false;
    rest.remove_prefix(1);
  }
  if (rest.size() < 2) return false;
  return std::all_of(rest.begin(), rest.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace
}  // namespace detail

std::string_view format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::elf:
      return "ELF";
    case ImageFormat::ihex:
      return "Intel HEX";
    case ImageFormat::srec:
      return "S-record";
    case ImageFormat::bin:
      return "binary";
  }
  return "binary";
}

std::optional<ImageFormat> format_from_name(std::string_view path) {
  const std::size_t slash = path.find_last_of("/\\");
  const std::string_view file = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const std::size_t dot = file.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string ext = detail::lower(file.substr(dot + 1));
  if (ext == "elf" || ext == "axf" || ext == "out") return ImageFormat::elf;
  if (ext == "hex" || ext == "ihex" || ext == "ihx") return ImageFormat::ihex;
  if (ext == "srec" || ext == "s19" || ext == "s28" || ext == "s37" || ext == "mot") {
    return ImageFormat::srec;
  }
  if (ext == "bin") return ImageFormat::bin;
  return std::nullopt;
}

ImageFormat detect_format(std::span<const std::uint8_t> bytes, std::string_view path) {
  // ELF magic: e_ident[EI_MAG0..EI_MAG3] (ELF v1.2, "ELF Identification").
  if (bytes.size() >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' &&
      bytes[3] == 'F') {
    return ImageFormat::elf;
  }
  if (detail::first_line_is_records(bytes, ':', false)) return ImageFormat::ihex;
  if (detail::first_line_is_records(bytes, 'S', true)) return ImageFormat::srec;
  if (auto by_name = format_from_name(path)) return *by_name;
  throw Error(ErrorCategory::image,
              std::string(path) +
                  ": cannot tell the image format: not ELF, Intel HEX or "
                  "S-record, and the extension is not .bin",
              "give the format explicitly (--format elf|ihex|srec|bin), or rename the file "
              "with its extension (.elf, .hex, .srec, .bin)");
}

Image load_image(std::span<const std::uint8_t> bytes, std::string_view name,
                 std::optional<ImageFormat> format, std::optional<std::uint32_t> bin_address) {
  const ImageFormat f = format ? *format : detect_format(bytes, name);
  if (f == ImageFormat::bin && !bin_address) {
    throw Error(ErrorCategory::usage,
                std::string(name) + ": a .bin image needs --address (e.g. --address 0x08000000)",
                "a raw binary carries no addresses; say where its first byte goes");
  }
  if (f != ImageFormat::bin && bin_address) {
    throw Error(ErrorCategory::usage,
                std::string(name) + ": --address applies to raw binaries only; this is an " +
                    std::string(format_name(f)) + " image, which carries its own addresses",
                "drop --address, or pass --format bin to load the file as raw bytes");
  }
  switch (f) {
    case ImageFormat::elf:
      return detail::assemble(detail::parse_elf(bytes, name), f, name);
    case ImageFormat::ihex:
      return detail::assemble(detail::parse_ihex(bytes, name), f, name);
    case ImageFormat::srec:
      return detail::assemble(detail::parse_srec(bytes, name), f, name);
    case ImageFormat::bin:
      break;
  }
  return detail::assemble(detail::parse_bin(bytes, name, *bin_address), f, name);
}

Image load_image_file(const std::filesystem::path& path, std::optional<ImageFormat> format,
                      std::optional<std::uint32_t> bin_address) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCategory::usage, path.string() + ": cannot open the image file",
                "check the path and its permissions");
  }
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) {
    throw Error(ErrorCategory::usage, path.string() + ": reading the image file failed",
                "check the file system and the file");
  }
  return load_image(bytes, path.string(), format, bin_address);
}

void check_fits(const Image& image, std::span<const MemoryRange> allowed,
                std::uint32_t flash_size) {
  std::uint64_t total = 0;
  for (const Segment& s : image.segments)
    total += s.data.size();
  if (total > flash_size) {
    throw Error(ErrorCategory::image,
                image.name + ": image of " + std::to_string(total) + " bytes is larger than the " +
                    std::to_string(flash_size) + "-byte flash",
                "the image was built for a bigger chip, or the wrong chip is selected");
  }
  for (std::size_t i = 0; i < image.segments.size(); ++i) {
    const Segment& s = image.segments[i];
    std::uint64_t at = s.address;
    // Ranges may touch (two flash banks, flash then its option bytes), so walk across them.
    while (at < s.end()) {
      const auto it = std::find_if(allowed.begin(), allowed.end(), [at](const MemoryRange& r) {
        return r.base <= at && at < std::uint64_t{r.base} + r.size;
      });
      if (it == allowed.end()) {
        std::string ranges;
        for (const MemoryRange& r : allowed) {
          ranges += (ranges.empty() ? "" : ", ") + std::string(r.name) + " " + detail::hex(r.base) +
                    ".." + detail::hex(std::uint64_t{r.base} + r.size - 1);
        }
        throw Error(ErrorCategory::image,
                    image.name + ": byte at " + detail::hex(at) + " (segment " + std::to_string(i) +
                        ", " + detail::hex(s.address) + ".." + detail::hex(s.end() - 1) +
                        ") is outside the target's memory (" + (ranges.empty() ? "none" : ranges) +
                        ")",
                    "the image was linked for another chip or another load address; check the "
                    "chip selection and the linker script's MEMORY regions");
      }
      at = std::min<std::uint64_t>(s.end(), std::uint64_t{it->base} + it->size);
    }
  }
}

}  // namespace probefarm::flash
