#include "flash/programmer.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "flash/loader.hpp"
#include "flash/loader_session.hpp"
#include "flash/stm32_flash.hpp"
#include "flash/target.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

std::string hex(std::uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", value);
  return buf;
}

// Bytes to put into flash at an address.
struct Piece {
  std::uint32_t address = 0;
  std::vector<std::uint8_t> data;
  std::uint64_t end() const { return std::uint64_t{address} + data.size(); }
};

// The image's bytes inside the flash, clipped to it (segments elsewhere, in RAM, are not
// the programmer's business; check_fits has vetted them).
std::vector<Range> flash_parts(const ChipInfo& chip, const Image& image) {
  std::vector<Range> out;
  const std::uint64_t flash_end = std::uint64_t{chip.flash_base} + chip.flash_size;
  for (const Segment& seg : image.segments) {
    const std::uint64_t from = std::max<std::uint64_t>(seg.address, chip.flash_base);
    const std::uint64_t to = std::min<std::uint64_t>(seg.end(), flash_end);
    if (from < to) {
      out.push_back({static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(to - from)});
    }
  }
  return out;
}

// The image's bytes of `r` (which lies inside one segment).
std::span<const std::uint8_t> image_bytes(const Image& image, const Range& r) {
  for (const Segment& seg : image.segments) {
    if (seg.address <= r.address && r.end() <= seg.end())
      return std::span(seg.data).subspan(r.address - seg.address, r.size);
  }
  throw Error(ErrorCategory::internal, "range " + hex(r.address) + " is not in the image",
              "this is a bug in probefarm; please report it");
}

// Programming runs: the pieces widened to whole programming units and merged where they
// meet. Widening adds bytes of the same (blank or erased) sector, programmed as 0xFF,
// which the loader skips.
std::vector<Piece> make_runs(std::vector<Piece> pieces, std::uint32_t unit) {
  std::sort(pieces.begin(), pieces.end(),
            [](const Piece& a, const Piece& b) { return a.address < b.address; });
  std::vector<Piece> runs;
  for (Piece& p : pieces) {
    const std::uint32_t start = p.address & ~(unit - 1);
    const auto end = static_cast<std::uint32_t>((p.end() + unit - 1) & ~std::uint64_t{unit - 1});
    if (runs.empty() || runs.back().end() < start) {
      runs.push_back({start, std::vector<std::uint8_t>(end - start, 0xFF)});
    } else if (runs.back().end() < end) {
      runs.back().data.resize(end - runs.back().address, 0xFF);
    }
    Piece& run = runs.back();
    std::copy(p.data.begin(), p.data.end(), run.data.begin() + (p.address - run.address));
  }
  return runs;
}

}  // namespace

Programmer::Programmer(Target& target, ProgressFn progress)
    : target_(target), progress_(std::move(progress)) {}

Programmer::~Programmer() = default;

void Programmer::report(std::string_view phase, std::uint64_t done, std::uint64_t total) {
  if (progress_) progress_(Progress{phase, done, total});
}

// A fresh load per operation: firmware may have run (and used the RAM) since the last.
LoaderSession& Programmer::load() {
  loader_.reset();
  loader_ = std::make_unique<LoaderSession>(target_);
  return *loader_;
}

std::vector<SectorCrc> Programmer::measure(const Image& image, const FlashOptions& options) {
  const ChipInfo& chip = target_.chip();
  const unsigned psize = psize_for_supply(chip, options.supply_mv);
  LoaderSession& session = *loader_;
  std::vector<SectorCrc> out(chip.sectors.size());
  std::vector<bool> touched(chip.sectors.size(), false);
  std::uint64_t touched_bytes = 0;
  std::uint64_t worst_erase_ms = 0;
  for (std::size_t i = 0; i < chip.sectors.size(); ++i) {
    if (covered_ranges(image, chip.sectors[i]).empty()) continue;
    touched[i] = true;
    touched_bytes += chip.sectors[i].size;
    worst_erase_ms += sector_erase_time(chip, chip.sectors[i].size, psize).typical_ms;
  }
  // The untouched sectors matter only to the mass-erase choice, which needs them blank;
  // when even erasing every touched sector beats a mass erase, they are not looked at.
  const bool need_untouched = options.erase == EraseMode::automatic &&
                              worst_erase_ms > mass_erase_time(chip, psize).typical_ms;
  const std::uint64_t total = need_untouched ? chip.flash_size : touched_bytes;
  std::uint64_t done = 0;
  report("plan", 0, total);

  auto chained = [&](const std::vector<Range>& ranges) {
    std::uint32_t crc = 0;
    for (const Range& r : ranges)
      crc = session.crc32(r.address, r.size, crc);
    return crc;
  };
  // Runs of touched sectors: one CRC for the run first. It settles the common cases — the
  // image is already there, or the flash is blank — without a run per sector.
  for (std::size_t i = 0; i < chip.sectors.size();) {
    if (!touched[i]) {
      ++i;
      continue;
    }
    std::size_t j = i;
    std::uint64_t size = 0;
    std::uint32_t programmed = 0;
    while (j < chip.sectors.size() && touched[j]) {
      programmed = programmed_crc(image, chip.sectors[j], programmed);
      size += chip.sectors[j++].size;
    }
    const std::uint32_t crc =
        session.crc32(chip.sectors[i].address, static_cast<std::uint32_t>(size));
    const bool already = crc == programmed;
    const bool blank = !already && crc == blank_crc(size);
    for (std::size_t k = i; k < j; ++k) {
      const FlashSector& s = chip.sectors[k];
      if (already) {
        out[k].whole = programmed_crc(image, s);
      } else if (blank) {
        out[k].whole = blank_crc(s.size);
      } else {
        // Mixed: the covered and uncovered bytes of each sector separately.
        out[k].covered = chained(covered_ranges(image, s));
        const auto uncovered = uncovered_ranges(image, s);
        if (uncovered.empty()) {
          out[k].whole = out[k].covered;
        } else {
          out[k].uncovered = chained(uncovered);
        }
      }
      done += s.size;
      report("plan", done, total);
    }
    i = j;
  }
  if (!need_untouched) return out;

  // Runs of untouched sectors: one CRC for the run, and per-sector CRCs only when the run
  // is not blank.
  for (std::size_t i = 0; i < chip.sectors.size();) {
    if (touched[i]) {
      ++i;
      continue;
    }
    std::size_t j = i;
    std::uint64_t size = 0;
    while (j < chip.sectors.size() && !touched[j])
      size += chip.sectors[j++].size;
    const std::uint32_t crc =
        session.crc32(chip.sectors[i].address, static_cast<std::uint32_t>(size));
    const bool blank = crc == blank_crc(size);
    for (std::size_t k = i; k < j; ++k) {
      const FlashSector& s = chip.sectors[k];
      out[k].whole = blank ? blank_crc(s.size) : session.crc32(s.address, s.size);
    }
    done += size;
    report("plan", done, total);
    i = j;
  }
  return out;
}

FlashReport Programmer::flash(const Image& image, const FlashOptions& options) {
  const ChipInfo& chip = target_.chip();
  // Refusals that need no target come first: nothing has been touched when they throw.
  check_fits(image, chip.memory(), chip.flash_size);
  const unsigned psize = psize_for_supply(chip, options.supply_mv);

  LoaderSession& session = load();
  Stm32Flash driver(target_.memory(), chip);
  // Read protection first: with it, nothing below could succeed.
  driver.check_writable({});
  FlashReport rep;
  rep.plan = make_plan(chip, image, measure(image, options), options);
  const Plan& plan = rep.plan;

  std::vector<std::size_t> work;  // chip sector indexes to erase or program
  for (const SectorPlan& sp : plan.sectors) {
    if (sp.action == SectorAction::skip) {
      ++rep.sectors_skipped;
    } else {
      work.push_back(static_cast<std::size_t>(chip.sector_index(sp.sector.address)));
    }
  }

  if (!work.empty() || plan.mass_erase) {
    if (plan.mass_erase) {
      std::vector<std::size_t> all(chip.sectors.size());
      std::iota(all.begin(), all.end(), std::size_t{0});
      driver.check_writable(all);
    } else {
      driver.check_writable(work);
    }

    // What is to be kept is read before anything is erased.
    std::vector<Piece> pieces;
    std::uint64_t keep_total = 0, keep_done = 0;
    for (const SectorPlan& sp : plan.sectors) {
      if (sp.keep) keep_total += sp.sector.size - sp.covered;
    }
    if (keep_total > 0) report("read", 0, keep_total);
    for (const SectorPlan& sp : plan.sectors) {
      if (sp.action == SectorAction::skip) continue;
      for (const Range& r : covered_ranges(image, sp.sector)) {
        const auto bytes = image_bytes(image, r);
        pieces.push_back({r.address, {bytes.begin(), bytes.end()}});
      }
      if (!sp.keep) continue;
      for (const Range& r : uncovered_ranges(image, sp.sector)) {
        Piece kept{r.address, std::vector<std::uint8_t>(r.size)};
        target_.memory().read(r.address, kept.data);
        keep_done += r.size;
        report("read", keep_done, keep_total);
        pieces.push_back(std::move(kept));
      }
    }
    const std::uint32_t unit = chip.style == FlashStyle::f1 ? 2 : 1u << psize;
    const std::vector<Piece> runs = make_runs(std::move(pieces), unit);

    driver.unlock();
    try {
      if (plan.mass_erase) {
        report("erase", 0, chip.flash_size);
        driver.mass_erase(psize);
        rep.sectors_erased = static_cast<unsigned>(chip.sectors.size());
        report("erase", chip.flash_size, chip.flash_size);
      } else {
        std::uint64_t erase_total = 0, erase_done = 0;
        for (const SectorPlan& sp : plan.sectors) {
          if (sp.action == SectorAction::erase_program) erase_total += sp.sector.size;
        }
        if (erase_total > 0) report("erase", 0, erase_total);
        for (const SectorPlan& sp : plan.sectors) {
          if (sp.action != SectorAction::erase_program) continue;
          driver.erase_sector(static_cast<std::size_t>(chip.sector_index(sp.sector.address)),
                              psize);
          ++rep.sectors_erased;
          erase_done += sp.sector.size;
          report("erase", erase_done, erase_total);
        }
      }

      std::uint64_t total = 0;
      for (const Piece& run : runs)
        total += run.data.size();
      report("program", 0, total);
      std::uint64_t before = 0;
      for (const Piece& run : runs) {
        session.program(run.address, run.data, psize,
                        [&](std::uint64_t n) { report("program", before + n, total); });
        before += run.data.size();
      }
      rep.bytes_programmed = total;
      driver.lock();
    } catch (...) {
      // Leave the interface locked whatever happened; the original error is what matters.
      try {
        driver.lock();
      } catch (...) {
      }
      throw;
    }

    // What was programmed (image and kept bytes) is checked run by run; the image bytes
    // of skipped sectors below. Read-back verification reads the image bytes instead.
    if (options.verify || options.readback_verify) {
      std::uint64_t total = 0, done = 0;
      for (const Piece& run : runs)
        total += run.data.size();
      report("verify", 0, total);
      for (const Piece& run : runs) {
        const auto n = static_cast<std::uint32_t>(run.data.size());
        if (session.crc32(run.address, n) != crc32(run.data)) {
          verify_ranges(image, true);  // names the first bad image byte, if it is one
          throw Error(ErrorCategory::verify,
                      "kept bytes in " + hex(run.address) + ".." + hex(run.address + n - 1) +
                          " differ after programming",
                      "flash again; if it persists the flash may be worn out");
        }
        done += n;
        report("verify", done, total);
      }
    }
  }

  if (options.readback_verify) {
    verify_ranges(image, true);
    rep.verified = true;
  } else if (options.verify) {
    for (const SectorPlan& sp : plan.sectors) {
      if (sp.action != SectorAction::skip) continue;
      for (const Range& r : covered_ranges(image, sp.sector)) {
        if (session.crc32(r.address, r.size) != crc32(image_bytes(image, r))) {
          verify_ranges(image, false);
          throw Error(ErrorCategory::verify,
                      "CRC-32 of " + hex(r.address) + ".." + hex(r.address + r.size - 1) +
                          " on the target differs from the image",
                      "flash the image again");
        }
      }
    }
    rep.verified = true;
  }
  return rep;
}

void Programmer::verify(const Image& image, bool readback) {
  load();
  verify_ranges(image, readback);
}

void Programmer::verify_ranges(const Image& image, bool readback) {
  const ChipInfo& chip = target_.chip();
  LoaderSession& session = *loader_;
  const std::vector<Range> parts = flash_parts(chip, image);
  if (parts.empty()) {
    throw Error(ErrorCategory::image, "image \"" + image.name + "\" has no bytes in the flash",
                "check the image's addresses (the flash is at " + hex(chip.flash_base) + ")");
  }
  std::uint64_t total = 0, done = 0;
  for (const Range& r : parts)
    total += r.size;
  report("verify", 0, total);

  // Finds and reports the first differing byte of `r` by reading it back.
  auto fail_in = [&](const Range& r) {
    const auto expected = image_bytes(image, r);
    std::vector<std::uint8_t> actual(r.size);
    target_.memory().read(r.address, actual);
    const auto mismatch = std::mismatch(actual.begin(), actual.end(), expected.begin());
    if (mismatch.first == actual.end()) return;  // a CRC mismatch that reading back does not see
    const auto at = r.address + static_cast<std::uint32_t>(mismatch.first - actual.begin());
    const int sector = chip.sector_index(at);
    char detail[64];
    std::snprintf(detail, sizeof detail, " (flash 0x%02X, image 0x%02X)", *mismatch.first,
                  *mismatch.second);
    throw Error(ErrorCategory::verify,
                "verify failed in " +
                    std::string(chip.style == FlashStyle::f1 ? "page " : "sector ") +
                    std::to_string(sector) + " at " + hex(chip.sectors[sector].address) +
                    ": first difference at " + hex(at) + detail,
                "flash the image again; if it persists the sector may be worn out or "
                "write-protected");
  };

  for (const Range& part : parts) {
    if (readback) {
      // Sector by sector, so that progress moves and a mismatch names its sector.
      for (std::uint32_t at = part.address; at < part.end();) {
        const FlashSector& s = chip.sectors[chip.sector_index(at)];
        const auto n =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(s.end(), part.end()) - at);
        fail_in({at, n});
        at += n;
        done += n;
        report("verify", done, total);
      }
      continue;
    }
    if (session.crc32(part.address, part.size) != crc32(image_bytes(image, part))) {
      // Narrow it down to the first bad sector, then to the byte.
      for (std::uint32_t at = part.address; at < part.end();) {
        const FlashSector& s = chip.sectors[chip.sector_index(at)];
        const auto n =
            static_cast<std::uint32_t>(std::min<std::uint64_t>(s.end(), part.end()) - at);
        if (session.crc32(at, n) != crc32(image_bytes(image, {at, n}))) fail_in({at, n});
        at += n;
      }
      throw Error(ErrorCategory::verify,
                  "CRC-32 of " + hex(part.address) + ".." + hex(part.address + part.size - 1) +
                      " on the target differs from the image",
                  "flash the image again");
    }
    done += part.size;
    report("verify", done, total);
  }
}

void Programmer::read(std::uint32_t address, std::span<std::uint8_t> out) {
  constexpr std::size_t kChunk = 16 * 1024;
  report("read", 0, out.size());
  for (std::size_t off = 0; off < out.size(); off += kChunk) {
    const std::size_t n = std::min(kChunk, out.size() - off);
    target_.memory().read(address + static_cast<std::uint32_t>(off), out.subspan(off, n));
    report("read", off + n, out.size());
  }
}

void Programmer::check_blank(std::uint32_t address, std::uint32_t size) {
  if (loader_->crc32(address, size) == blank_crc(size)) return;
  throw Error(ErrorCategory::verify,
              hex(address) + ".." + hex(address + size - 1) + " is not blank after the erase",
              "erase again; if it persists the flash may be protected or worn out");
}

void Programmer::erase(std::uint32_t address, std::uint32_t size) {
  const ChipInfo& chip = target_.chip();
  const int first = chip.sector_index(address);
  const std::uint64_t end = std::uint64_t{address} + size;
  const int last = size == 0 ? -1 : chip.sector_index(static_cast<std::uint32_t>(end - 1));
  if (first < 0 || last < 0 || chip.sectors[first].address != address ||
      chip.sectors[last].end() != end) {
    std::string hint = "erase whole sectors: ";
    if (first >= 0) {
      hint += "the sector holding " + hex(address) + " is " + hex(chip.sectors[first].address) +
              ".." + hex(static_cast<std::uint32_t>(chip.sectors[first].end() - 1));
    } else {
      hint += "the flash is " + hex(chip.flash_base) + ".." +
              hex(chip.flash_base + chip.flash_size - 1);
    }
    throw Error(ErrorCategory::usage,
                "erase of " + hex(address) + " (" + std::to_string(size) +
                    " bytes) does not cover whole sectors",
                hint);
  }
  const unsigned psize = psize_for_supply(chip, 3300);
  load();
  std::vector<std::size_t> sectors;
  for (int i = first; i <= last; ++i)
    sectors.push_back(static_cast<std::size_t>(i));
  Stm32Flash driver(target_.memory(), chip);
  driver.check_writable(sectors);
  driver.unlock();
  try {
    std::uint64_t done = 0;
    report("erase", 0, size);
    for (std::size_t i : sectors) {
      driver.erase_sector(i, psize);
      done += chip.sectors[i].size;
      report("erase", done, size);
    }
    driver.lock();
  } catch (...) {
    try {
      driver.lock();
    } catch (...) {
    }
    throw;
  }
  check_blank(address, size);
}

void Programmer::mass_erase() {
  const ChipInfo& chip = target_.chip();
  const unsigned psize = psize_for_supply(chip, 3300);
  load();
  std::vector<std::size_t> all(chip.sectors.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  Stm32Flash driver(target_.memory(), chip);
  driver.check_writable(all);
  driver.unlock();
  try {
    report("erase", 0, chip.flash_size);
    driver.mass_erase(psize);
    report("erase", chip.flash_size, chip.flash_size);
    driver.lock();
  } catch (...) {
    try {
      driver.lock();
    } catch (...) {
    }
    throw;
  }
  check_blank(chip.flash_base, chip.flash_size);
}

}  // namespace probefarm::flash
