#pragma once
// The on-target flash loader (firmware/loader/, contract in firmware/loader/loader_abi.h),
// as assembled by the build and linked into this library.
#include <cstdint>
#include <span>

namespace probefarm::flash {

struct Loader {
  std::span<const std::uint8_t> image;  // to be written at `base`
  std::uint32_t base = 0;
  std::uint32_t crc32_entry = 0;    // Thumb bit set
  std::uint32_t program_entry = 0;  // Thumb bit set
  std::uint32_t bkpt = 0;
  std::uint32_t end = 0;                 // first free RAM byte after the loader
  std::uint32_t crc32_ranges_entry = 0;  // Thumb bit set; a table of CRCs per run
};

// Parsed from the header of the built image; the same loader serves every family.
const Loader& loader();

// zlib's CRC-32 (see loader_abi.h), the host half of on-target verification.
std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t crc_in = 0);

}  // namespace probefarm::flash
