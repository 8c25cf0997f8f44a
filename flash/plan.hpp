#pragma once
// The planner: which sectors of the flash an image touches and what to do with each —
// leave it (its CRC already matches), program it without erasing (it is blank), or erase
// and program it, keeping the bytes the image does not cover — and whether one mass erase
// beats the sector erases. Pure: it sees the chip, the image and the CRCs the target
// computed, never the target itself, so every decision is unit-testable.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "flash/chip.hpp"
#include "flash/image.hpp"

namespace probefarm::flash {

enum class EraseMode {
  automatic,  // sector erases, or one mass erase when faster and nothing is lost
  sectors,    // never mass erase
  all,        // always mass erase (everything outside the image is erased too)
};

struct FlashOptions {
  bool verify = true;            // CRC-32 on target
  bool readback_verify = false;  // compare every byte read back instead
  EraseMode erase = EraseMode::automatic;
  bool skip_unchanged = true;  // --no-skip turns it off
  bool keep = true;            // restore bytes of erased sectors the image does not cover
  unsigned supply_mv = 3300;   // F4/F7 parallelism (RM0090 3.5.2 Table 7 / RM0385): x32
};

enum class SectorAction {
  skip,           // the CRC matches what programming would leave there
  program,        // blank (or mass erased): program without erasing
  erase_program,  // erase, then program
};

struct SectorPlan {
  FlashSector sector;
  SectorAction action = SectorAction::skip;
  bool keep = false;          // erase_program: read the uncovered bytes first, program them back
  std::uint32_t covered = 0;  // image bytes in this sector
};

struct Plan {
  std::vector<SectorPlan> sectors;  // the sectors the image touches, in address order
  bool mass_erase = false;
  std::uint64_t program_bytes = 0;  // image bytes plus kept bytes to program
  unsigned psize = 2;               // F4/F7 FLASH_CR.PSIZE the plan was timed for
};

// What the target says about one sector, as CRC-32s computed on the target. `whole` is
// the CRC of the sector; `covered`/`uncovered` are the CRCs of the bytes the image does
// and does not cover, each chained over its ranges in address order (only meaningful for
// a sector the image covers partly). The planner uses what it is given; with only `whole`
// it cannot tell whether a partly covered sector's uncovered bytes are blank and plays safe.
struct SectorCrc {
  std::optional<std::uint32_t> whole, covered, uncovered;
};

// A contiguous address range.
struct Range {
  std::uint32_t address = 0, size = 0;
  std::uint64_t end() const { return std::uint64_t{address} + size; }
};

// The parts of `sector` the image's segments cover / do not cover, in address order.
std::vector<Range> covered_ranges(const Image& image, const FlashSector& sector);
std::vector<Range> uncovered_ranges(const Image& image, const FlashSector& sector);

// CRC-32 of `sector` as an erase and program would leave it (the image where it covers,
// 0xFF elsewhere), chained onto `crc_in`.
std::uint32_t programmed_crc(const Image& image, const FlashSector& sector,
                             std::uint32_t crc_in = 0);

// CRC-32 of `length` bytes of 0xFF (an erased range), chained onto `crc_in`.
std::uint32_t blank_crc(std::uint64_t length, std::uint32_t crc_in = 0);

// target_crcs: CRC-32 of each sector of chip.sectors now on target. Throws Error(image)
// through check_fits when the image does not fit the chip, Error(internal) when the CRC
// count does not match the sector count.
Plan make_plan(const ChipInfo& chip, const Image& image, std::span<const std::uint32_t> target_crcs,
               const FlashOptions& options);
// The same with what the programmer measures (one entry per chip sector).
Plan make_plan(const ChipInfo& chip, const Image& image, std::span<const SectorCrc> target,
               const FlashOptions& options);

}  // namespace probefarm::flash
