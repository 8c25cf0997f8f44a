#pragma once
// The programming pipeline on one attached target: measure (sector CRCs on the target),
// plan (flash/plan.hpp), read what must be kept, erase, program through the on-target
// loader's ring buffer, verify. Progress is reported per phase in bytes.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "flash/image.hpp"
#include "flash/plan.hpp"

namespace probefarm::flash {

class Target;
class LoaderSession;

// phase: "plan", "read", "erase", "program", "verify".
struct Progress {
  std::string_view phase;
  std::uint64_t done = 0, total = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

struct FlashReport {
  Plan plan;
  std::uint64_t bytes_programmed = 0;  // bytes streamed to the loader
  unsigned sectors_erased = 0;         // sector (page) erases; a mass erase counts the chip's
  unsigned sectors_skipped = 0;
  bool verified = false;  // false only when verification was turned off
};

class Programmer {
 public:
  explicit Programmer(Target& target, ProgressFn progress = {});
  ~Programmer();

  // Throws Error(image) before touching the target when the image does not fit; Error
  // from any step after. Success means every image byte in flash was verified (unless
  // options.verify and options.readback_verify are both off: report.verified == false).
  FlashReport flash(const Image& image, const FlashOptions& options);
  // Error(verify) naming the first bad sector and address.
  void verify(const Image& image, bool readback = false);
  // Any target memory.
  void read(std::uint32_t address, std::span<std::uint8_t> out);
  // Whole sectors: Error(usage) when [address, address + size) does not start and end on
  // sector boundaries. The erased range is checked blank afterwards.
  void erase(std::uint32_t address, std::uint32_t size);
  void mass_erase();

 private:
  LoaderSession& load();
  // A CRC-32 of image bytes measured on the target.
  struct MeasuredCrc {
    Range range;
    std::uint32_t crc = 0;
  };
  // `image_crcs` (when not null): the CRCs of every image byte in the touched sectors, taken
  // in the first loader run of the measurement: one per run of sectors the image covers
  // whole (that run's CRC), else one per covered range of each sector.
  std::vector<SectorCrc> measure(const Image& image, const FlashOptions& options,
                                 std::vector<MeasuredCrc>* image_crcs = nullptr);
  void verify_ranges(const Image& image, bool readback);
  void check_blank(std::uint32_t address, std::uint32_t size);
  void report(std::string_view phase, std::uint64_t done, std::uint64_t total);

  Target& target_;
  ProgressFn progress_;
  std::unique_ptr<LoaderSession> loader_;
};

}  // namespace probefarm::flash
