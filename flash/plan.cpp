#include "flash/plan.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "flash/loader.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

// What the target's CRCs say about one sector.
struct Knowledge {
  bool covered_match = false;    // the covered bytes already hold the image
  bool uncovered_blank = false;  // the bytes the image leaves alone are erased
  bool blank = false;            // the whole sector is erased
};

// CRC-32 of the image's bytes inside `ranges` (all covered), chained onto `crc` in
// address order.
std::uint32_t image_crc(const Image& image, std::span<const Range> ranges, std::uint32_t crc = 0) {
  for (const Range& r : ranges) {
    for (const Segment& seg : image.segments) {
      if (seg.end() <= r.address || seg.address >= r.end()) continue;
      const std::uint64_t from = std::max<std::uint64_t>(seg.address, r.address);
      const std::uint64_t to = std::min<std::uint64_t>(seg.end(), r.end());
      crc = crc32(std::span(seg.data).subspan(from - seg.address, to - from), crc);
    }
  }
  return crc;
}

std::uint32_t covered_bytes(std::span<const Range> ranges) {
  std::uint32_t n = 0;
  for (const Range& r : ranges)
    n += r.size;
  return n;
}

}  // namespace

std::vector<Range> covered_ranges(const Image& image, const FlashSector& sector) {
  std::vector<Range> out;
  for (const Segment& seg : image.segments) {
    if (seg.end() <= sector.address || seg.address >= sector.end()) continue;
    const std::uint64_t from = std::max<std::uint64_t>(seg.address, sector.address);
    const std::uint64_t to = std::min<std::uint64_t>(seg.end(), sector.end());
    // Segments never touch (image.hpp), so ranges from different segments stay apart.
    out.push_back({static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(to - from)});
  }
  return out;
}

std::vector<Range> uncovered_ranges(const Image& image, const FlashSector& sector) {
  std::vector<Range> out;
  std::uint64_t at = sector.address;
  for (const Range& r : covered_ranges(image, sector)) {
    if (r.address > at) {
      out.push_back({static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(r.address - at)});
    }
    at = r.end();
  }
  if (at < sector.end()) {
    out.push_back({static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(sector.end() - at)});
  }
  return out;
}

std::uint32_t programmed_crc(const Image& image, const FlashSector& sector, std::uint32_t crc_in) {
  std::uint32_t crc = crc_in;
  std::uint64_t at = sector.address;
  for (const Range& r : covered_ranges(image, sector)) {
    crc = blank_crc(r.address - at, crc);
    crc = image_crc(image, std::span(&r, 1), crc);
    at = r.end();
  }
  return blank_crc(sector.end() - at, crc);
}

std::uint32_t blank_crc(std::uint64_t length, std::uint32_t crc_in) {
  static const std::array<std::uint8_t, 4096> kErased = [] {
    std::array<std::uint8_t, 4096> a;
    a.fill(0xFF);
    return a;
  }();
  std::uint32_t crc = crc_in;
  while (length > 0) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(length, kErased.size()));
    crc = crc32(std::span(kErased).first(n), crc);
    length -= n;
  }
  return crc;
}

Plan make_plan(const ChipInfo& chip, const Image& image, std::span<const std::uint32_t> target_crcs,
               const FlashOptions& options) {
  std::vector<SectorCrc> target(target_crcs.size());
  for (std::size_t i = 0; i < target_crcs.size(); ++i)
    target[i].whole = target_crcs[i];
  return make_plan(chip, image, std::span<const SectorCrc>(target), options);
}

Plan make_plan(const ChipInfo& chip, const Image& image, std::span<const SectorCrc> target,
               const FlashOptions& options) {
  // Before anything else: an image that does not fit is refused whatever the target holds.
  const auto memory = chip.memory();
  check_fits(image, memory, chip.flash_size);
  if (target.size() != chip.sectors.size()) {
    throw Error(ErrorCategory::internal,
                "planner got " + std::to_string(target.size()) + " sector CRCs for " +
                    std::to_string(chip.sectors.size()) + " sectors",
                "this is a bug in probefarm; please report it");
  }

  Plan plan;
  plan.psize = psize_for_supply(chip, options.supply_mv);
  std::vector<Knowledge> known(chip.sectors.size());
  std::vector<int> plan_index(chip.sectors.size(), -1);

  for (std::size_t i = 0; i < chip.sectors.size(); ++i) {
    const FlashSector& sector = chip.sectors[i];
    const SectorCrc& crc = target[i];
    const auto covered = covered_ranges(image, sector);
    const std::uint32_t cov_len = covered_bytes(covered);
    const std::uint32_t unc_len = sector.size - cov_len;
    Knowledge& k = known[i];

    const bool whole_blank = crc.whole && *crc.whole == blank_crc(sector.size);
    if (cov_len == 0) {
      k.uncovered_blank = whole_blank || (crc.uncovered && *crc.uncovered == blank_crc(unc_len));
      k.blank = k.uncovered_blank;
      continue;  // untouched: not part of the plan unless a mass erase takes it
    }

    // With the whole-sector CRC only, a match with "image, 0xFF elsewhere" says both that
    // the covered bytes hold the image and that the rest is blank.
    const bool whole_programmed = crc.whole && *crc.whole == programmed_crc(image, sector);
    k.covered_match =
        (crc.covered && *crc.covered == image_crc(image, covered)) || whole_programmed;
    k.uncovered_blank = unc_len == 0 || (crc.uncovered && *crc.uncovered == blank_crc(unc_len)) ||
                        whole_programmed || whole_blank;
    k.blank =
        whole_blank || (crc.covered && *crc.covered == blank_crc(cov_len) && k.uncovered_blank);

    SectorPlan sp;
    sp.sector = sector;
    sp.covered = cov_len;
    if (options.skip_unchanged && k.covered_match && (options.keep || k.uncovered_blank)) {
      // With keep, the uncovered bytes survive programming unchanged, so a matching
      // covered part is all that programming would change. Without keep, an erase would
      // leave them blank, so they must already be.
      sp.action = SectorAction::skip;
    } else if (k.blank) {
      sp.action = SectorAction::program;
    } else {
      sp.action = SectorAction::erase_program;
      sp.keep = options.keep && !k.uncovered_blank;
    }
    plan_index[i] = static_cast<int>(plan.sectors.size());
    plan.sectors.push_back(sp);
  }

  bool mass = options.erase == EraseMode::all;
  if (options.erase == EraseMode::automatic) {
    // A mass erase must destroy nothing the sector plan would keep: every sector the image
    // does not touch is blank, and every touched one is fully covered or blank outside
    // the image. Skipped sectors lose their content and cost a reprogram.
    bool safe = true;
    std::uint64_t sector_cost_ms = 0;
    std::uint64_t reprogram_bytes = 0;
    bool any_erase = false;
    for (std::size_t i = 0; i < chip.sectors.size() && safe; ++i) {
      if (plan_index[i] < 0) {
        safe = known[i].blank;
        continue;
      }
      const SectorPlan& sp = plan.sectors[plan_index[i]];
      safe = sp.covered == sp.sector.size || known[i].uncovered_blank;
      if (sp.action == SectorAction::erase_program) {
        any_erase = true;
        sector_cost_ms += sector_erase_time(chip, sp.sector.size, plan.psize).typical_ms;
      } else if (sp.action == SectorAction::skip) {
        reprogram_bytes += sp.covered;
      }
    }
    const std::uint64_t mass_cost_ms = mass_erase_time(chip, plan.psize).typical_ms +
                                       program_time_us(chip, reprogram_bytes, plan.psize) / 1000;
    mass = safe && any_erase && mass_cost_ms < sector_cost_ms;
  }
  if (mass) {
    plan.mass_erase = true;
    for (SectorPlan& sp : plan.sectors) {
      sp.action = SectorAction::program;
      sp.keep = false;
    }
  }

  for (const SectorPlan& sp : plan.sectors) {
    if (sp.action == SectorAction::skip) continue;
    plan.program_bytes += sp.covered;
    if (sp.keep) plan.program_bytes += sp.sector.size - sp.covered;
  }
  return plan;
}

}  // namespace probefarm::flash
