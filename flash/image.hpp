#pragma once
// Firmware images as the programmer sees them: bytes at addresses, nothing else. Every file
// format (ELF, Intel HEX, Motorola S-record, raw binary) is parsed into the same Image, so
// the planner, the skip-unchanged check and the audit log never care where it came from.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace probefarm::flash {

enum class ImageFormat { elf, ihex, srec, bin };

// "ELF", "Intel HEX", "S-record", "binary": for messages and the audit log.
std::string_view format_name(ImageFormat format);

// Contiguous bytes starting at `address`. Within an Image, segments are sorted, never
// overlap and never touch: touching data is one segment, so a segment is one write burst.
struct Segment {
  std::uint32_t address = 0;
  std::vector<std::uint8_t> data;

  // One past the last byte; 64-bit because a segment may end exactly at 4 GiB.
  std::uint64_t end() const { return std::uint64_t{address} + data.size(); }
};

struct Image {
  std::vector<Segment> segments;  // sorted by address, never empty once loaded
  ImageFormat format = ImageFormat::bin;
  std::string name;                    // the file name (or what the caller called the bytes)
  std::optional<std::uint32_t> entry;  // ELF e_entry, HEX 03/05, S7/S8/S9; absent for .bin
};

// By extension only: .elf/.axf/.out, .hex/.ihex/.ihx, .srec/.s19/.s28/.s37/.mot, .bin
// (case-insensitive). nullopt when the extension says nothing.
std::optional<ImageFormat> format_from_name(std::string_view path);

// Content first (ELF magic, a ':' record line, an 'S<digit>' record line), then the
// extension. Raw binary has no signature, so it is only ever chosen by extension.
// Throws Error(image) when neither tells.
ImageFormat detect_format(std::span<const std::uint8_t> bytes, std::string_view path);

// Parses `bytes`; `name` is used in messages and kept in Image::name. `format` overrides
// detection. `bin_address` is where a raw binary starts; it is required for .bin and
// rejected (Error(usage)) for formats that carry their own addresses.
// Throws Error(image) for a malformed or empty image, naming the line, program header or
// address.
Image load_image(std::span<const std::uint8_t> bytes, std::string_view name,
                 std::optional<ImageFormat> format = {},
                 std::optional<std::uint32_t> bin_address = {});

// Reads the file and calls load_image. Throws Error(usage) when the file cannot be read.
Image load_image_file(const std::filesystem::path& path, std::optional<ImageFormat> format = {},
                      std::optional<std::uint32_t> bin_address = {});

struct MemoryRange {
  std::uint32_t base = 0;
  std::uint32_t size = 0;
  std::string_view name;  // "flash", "sram", ... for messages
};

// Throws Error(image) if the image's data is larger than `flash_size` bytes in total
// ("image of N bytes is larger than the M-byte flash"), or if any byte lies outside every
// range in `allowed` (the target's flash and RAM), naming the first such byte.
void check_fits(const Image& image, std::span<const MemoryRange> allowed, std::uint32_t flash_size);

}  // namespace probefarm::flash
