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

// Runs `work` with the flash interface unlocked and locks it again however `work` ends. A
// failure to lock after an error is dropped: the original error is what the user needs.
template <typename Work>
void unlocked(Stm32Flash& driver, Work&& work) {
  driver.unlock();
  try {
    work();
  } catch (...) {
    try {
      driver.lock();
    } catch (...) {
    }
    throw;
  }
  driver.lock();
}

// Lets the on-target CRCs of one operation run at a raised SYSCLK
// (LoaderSession::set_fast_crc) and puts the clock back however the operation ends. After
// an error the restore is best effort: the original error is what the user needs.
class FastClock {
 public:
  // The wait states LoaderSession::raise_clock sets are those for 2.7-3.6 V (RM0090 3.5.1
  // Table 10 and its equivalents); below, the clock is not touched.
  explicit FastClock(LoaderSession& session, unsigned supply_mv = 3300) : session_(session) {
    if (supply_mv >= 2700) session_.set_fast_crc(true);
  }
  ~FastClock() {
    if (restored_) return;
    try {
      session_.set_fast_crc(false);
    } catch (...) {
    }
  }
  FastClock(const FastClock&) = delete;
  FastClock& operator=(const FastClock&) = delete;
  void restore() {
    restored_ = true;
    session_.set_fast_crc(false);
  }

 private:
  LoaderSession& session_;
  bool restored_ = false;
};

// Runs one step; a probe or target failure in it says which step it interrupted ("probe X
// was unplugged (during ...) during erase of sector 5"), keeping its category and hint.
template <typename F>
void in_phase(const std::string& phase, F&& step) {
  try {
    step();
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::probe_io &&
        e.category() != ErrorCategory::target_not_responding &&
        e.category() != ErrorCategory::timeout)
      throw;
    throw Error(e.category(), std::string(e.message()) + " during " + phase, e.hint());
  }
}

}  // namespace

Programmer::Programmer(Target& target, ProgressFn progress)
    : target_(target), progress_(std::move(progress)) {}

Programmer::~Programmer() = default;

void Programmer::report(std::string_view phase, std::uint64_t done, std::uint64_t total) {
  if (progress_) progress_(Progress{phase, done, total});
}

// The loader from an earlier operation of this Programmer is reused when it is still in
// RAM and intact (LoaderSession::reusable: the core has not run since, and the image's
// CRC-32 matches); otherwise, e.g. after firmware ran and may have used the RAM, it is
// loaded again.
LoaderSession& Programmer::load() {
  if (loader_ && loader_->reusable()) return *loader_;
  loader_.reset();
  loader_ = std::make_unique<LoaderSession>(target_);
  return *loader_;
}

namespace {

// Requests for the CRC of `ranges` chained in order (one result: the last request's).
void add_chained(std::vector<CrcRequest>& requests, const std::vector<Range>& ranges) {
  for (std::size_t i = 0; i < ranges.size(); ++i)
    requests.push_back({ranges[i].address, ranges[i].size, i > 0, 0});
}

}  // namespace

std::vector<SectorCrc> Programmer::measure(const Image& image, const FlashOptions& options,
                                           std::vector<MeasuredCrc>* image_crcs) {
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

  // Runs of touched sectors, and of untouched ones.
  struct Run {
    std::size_t first = 0, last = 0;  // sector indexes [first, last)
    bool touched = false;
    std::uint64_t size = 0;
  };
  std::vector<Run> runs;
  for (std::size_t i = 0; i < chip.sectors.size();) {
    Run run{i, i, touched[i]};
    while (run.last < chip.sectors.size() && touched[run.last] == run.touched)
      run.size += chip.sectors[run.last++].size;
    i = run.last;
    runs.push_back(run);
  }

  // First loader run: one CRC per run of touched sectors. It settles the common cases —
  // the image is already there, the flash is blank — without a CRC per sector.
  std::vector<CrcRequest> requests;
  std::vector<std::size_t> touched_runs;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    if (!runs[r].touched) continue;
    touched_runs.push_back(r);
    requests.push_back(
        {chip.sectors[runs[r].first].address, static_cast<std::uint32_t>(runs[r].size)});
  }
  // The image's CRCs ride along: when nothing is written after all (the image is already
  // there), they are the verification, taken after the last write. A run of sectors the
  // image covers whole needs nothing more (its CRC is the image's), other sectors one CRC
  // per covered range, at the cost of a few more table entries instead of another run.
  const std::size_t runs_requested = requests.size();
  std::vector<bool> whole_run(touched_runs.size(), true);
  std::vector<std::pair<std::size_t, Range>> range_requests;  // (touched run, range)
  for (std::size_t t = 0; t < touched_runs.size(); ++t) {
    const Run& run = runs[touched_runs[t]];
    for (std::size_t k = run.first; k < run.last; ++k)
      whole_run[t] = whole_run[t] && uncovered_ranges(image, chip.sectors[k]).empty();
    if (!image_crcs || whole_run[t]) continue;
    for (std::size_t k = run.first; k < run.last; ++k) {
      for (const Range& r : covered_ranges(image, chip.sectors[k])) {
        range_requests.push_back({t, r});
        requests.push_back({r.address, r.size});
      }
    }
  }
  std::vector<std::uint32_t> run_crcs = session.crc32_many(requests);
  if (image_crcs) {
    image_crcs->clear();
    std::size_t next = runs_requested;
    for (std::size_t t = 0; t < touched_runs.size(); ++t) {
      const Run& run = runs[touched_runs[t]];
      if (whole_run[t]) {
        image_crcs->push_back(
            {{chip.sectors[run.first].address, static_cast<std::uint32_t>(run.size)}, run_crcs[t]});
        continue;
      }
      for (; next < requests.size() && range_requests[next - runs_requested].first == t; ++next)
        image_crcs->push_back({range_requests[next - runs_requested].second, run_crcs[next]});
    }
  }

  // Second loader run, for what the first did not settle: the covered and uncovered bytes
  // of each sector of a mixed run, and the untouched runs when the mass-erase choice needs
  // them. It does only when some sector is to be erased (plan.cpp: a mass erase must
  // replace at least one sector erase): not when every touched run is blank, or already
  // holds the image and is to be skipped.
  struct Pending {
    std::size_t sector;
    int covered = -1, uncovered = -1, whole = -1;  // request indexes
  };
  std::vector<Pending> pending;
  bool erase_possible = false;
  requests.clear();
  for (std::size_t t = 0; t < touched_runs.size(); ++t) {
    const Run& run = runs[touched_runs[t]];
    const std::uint32_t crc = run_crcs[t];
    std::uint32_t programmed = 0;
    for (std::size_t k = run.first; k < run.last; ++k)
      programmed = programmed_crc(image, chip.sectors[k], programmed);
    const bool already = crc == programmed;
    const bool blank = !already && crc == blank_crc(run.size);
    erase_possible = erase_possible || !(blank || (already && options.skip_unchanged));
    for (std::size_t k = run.first; k < run.last; ++k) {
      const FlashSector& s = chip.sectors[k];
      if (already) {
        out[k].whole = programmed_crc(image, s);
      } else if (blank) {
        out[k].whole = blank_crc(s.size);
      } else {
        Pending p{k};
        add_chained(requests, covered_ranges(image, s));
        p.covered = static_cast<int>(requests.size()) - 1;
        const auto uncovered = uncovered_ranges(image, s);
        if (!uncovered.empty()) {
          add_chained(requests, uncovered);
          p.uncovered = static_cast<int>(requests.size()) - 1;
        }
        pending.push_back(p);
        continue;
      }
      done += s.size;
    }
  }
  report("plan", done, total);
  std::vector<std::size_t> untouched_runs;
  if (need_untouched && erase_possible) {
    for (std::size_t r = 0; r < runs.size(); ++r) {
      if (runs[r].touched) continue;
      untouched_runs.push_back(r);
      requests.push_back(
          {chip.sectors[runs[r].first].address, static_cast<std::uint32_t>(runs[r].size)});
    }
  }
  if (requests.empty()) {
    report("plan", total, total);
    return out;
  }
  const std::size_t first_untouched = requests.size() - untouched_runs.size();
  std::vector<std::uint32_t> crcs = session.crc32_many(requests);

  // Untouched runs that are not blank: each sector whole (a third run, rarely needed).
  std::vector<CrcRequest> more;
  std::vector<std::size_t> more_sectors;
  for (std::size_t u = 0; u < untouched_runs.size(); ++u) {
    const Run& run = runs[untouched_runs[u]];
    const bool blank = crcs[first_untouched + u] == blank_crc(run.size);
    for (std::size_t k = run.first; k < run.last; ++k) {
      const FlashSector& s = chip.sectors[k];
      if (blank) {
        out[k].whole = blank_crc(s.size);
      } else {
        more.push_back({s.address, s.size});
        more_sectors.push_back(k);
      }
    }
  }
  if (!more.empty()) {
    const std::vector<std::uint32_t> wholes = session.crc32_many(more);
    for (std::size_t m = 0; m < more.size(); ++m)
      out[more_sectors[m]].whole = wholes[m];
  }
  for (const Pending& p : pending) {
    SectorCrc& c = out[p.sector];
    if (p.whole >= 0) {
      c.whole = crcs[static_cast<std::size_t>(p.whole)];
    } else {
      c.covered = crcs[static_cast<std::size_t>(p.covered)];
      if (p.uncovered >= 0) {
        c.uncovered = crcs[static_cast<std::size_t>(p.uncovered)];
      } else {
        c.whole = c.covered;
      }
    }
    done += chip.sectors[p.sector].size;
  }
  report("plan", total, total);
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
  FastClock fast(session, options.supply_mv);
  FlashReport rep;
  // CRCs of the skipped sectors' image bytes, when the measurement or the programmed runs'
  // verification computed them in its loader run.
  std::vector<MeasuredCrc> skipped_crcs;
  bool skipped_measured = false;
  const bool crc_verify = options.verify && !options.readback_verify;
  std::vector<MeasuredCrc> image_crcs;
  rep.plan =
      make_plan(chip, image, measure(image, options, crc_verify ? &image_crcs : nullptr), options);
  const Plan& plan = rep.plan;
  if (crc_verify && !plan.mass_erase &&
      std::all_of(plan.sectors.begin(), plan.sectors.end(),
                  [](const SectorPlan& sp) { return sp.action == SectorAction::skip; })) {
    // Nothing will be written: the measured CRCs of the image bytes are the verification.
    skipped_crcs = std::move(image_crcs);
    skipped_measured = true;
  }

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

    unlocked(driver, [&] {
      if (plan.mass_erase) {
        report("erase", 0, chip.flash_size);
        in_phase("mass erase", [&] { driver.mass_erase(psize); });
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
          const auto index = static_cast<std::size_t>(chip.sector_index(sp.sector.address));
          in_phase("erase of sector " + std::to_string(index),
                   [&] { driver.erase_sector(index, psize); });
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
        in_phase("programming at " + hex(run.address), [&] {
          session.program(
              run.address, run.data, psize,
              [&](std::uint64_t n) { report("program", before + n, total); },
              options.verify || options.readback_verify);
        });
        before += run.data.size();
      }
      rep.bytes_programmed = total;
    });

    // What was programmed (image and kept bytes) is checked run by run; the image bytes
    // of skipped sectors below. Read-back verification reads the image bytes instead.
    if (options.verify || options.readback_verify) {
      std::vector<CrcRequest> requests;
      std::uint64_t total = 0, done = 0;
      for (const Piece& run : runs) {
        requests.push_back({run.address, static_cast<std::uint32_t>(run.data.size())});
        total += run.data.size();
      }
      // The skipped sectors' CRCs ride along in the same loader run.
      if (options.verify && !options.readback_verify) {
        for (const SectorPlan& sp : plan.sectors) {
          if (sp.action != SectorAction::skip) continue;
          for (const Range& r : covered_ranges(image, sp.sector))
            requests.push_back({r.address, r.size});
        }
      }
      report("verify", 0, total);
      std::vector<std::uint32_t> crcs;
      in_phase("verify", [&] { crcs = session.crc32_many(requests); });
      for (std::size_t i = 0; i < runs.size(); ++i) {
        const Piece& run = runs[i];
        const auto n = static_cast<std::uint32_t>(run.data.size());
        if (crcs[i] != crc32(run.data)) {
          verify_ranges(image, true);  // names the first bad image byte, if it is one
          throw Error(ErrorCategory::verify,
                      "kept bytes in " + hex(run.address) + ".." + hex(run.address + n - 1) +
                          " differ after programming",
                      "flash again; if it persists the flash may be worn out");
        }
        done += n;
        report("verify", done, total);
      }
      for (std::size_t i = runs.size(); i < requests.size(); ++i)
        skipped_crcs.push_back({{requests[i].address, requests[i].length}, crcs[i]});
      skipped_measured = options.verify && !options.readback_verify;
    }
  }

  if (options.readback_verify) {
    in_phase("verify", [&] { verify_ranges(image, true); });
    rep.verified = true;
  } else if (options.verify) {
    if (!skipped_measured) {
      std::vector<CrcRequest> requests;
      for (const SectorPlan& sp : plan.sectors) {
        if (sp.action != SectorAction::skip) continue;
        for (const Range& r : covered_ranges(image, sp.sector))
          requests.push_back({r.address, r.size});
      }
      std::vector<std::uint32_t> crcs;
      in_phase("verify", [&] { crcs = session.crc32_many(requests); });
      for (std::size_t i = 0; i < requests.size(); ++i)
        skipped_crcs.push_back({{requests[i].address, requests[i].length}, crcs[i]});
    }
    for (const MeasuredCrc& m : skipped_crcs) {
      const Range& r = m.range;
      if (m.crc != crc32(image_bytes(image, r))) {
        verify_ranges(image, false);
        throw Error(ErrorCategory::verify,
                    "CRC-32 of " + hex(r.address) + ".." + hex(r.address + r.size - 1) +
                        " on the target differs from the image",
                    "flash the image again");
      }
    }
    rep.verified = true;
  }
  fast.restore();
  return rep;
}

void Programmer::verify(const Image& image, bool readback) {
  // Under read protection the loader's CRCs would not be of the flash (the chip blocks its
  // reads once a debugger is attached): refuse, naming the protection.
  Stm32Flash(target_.memory(), target_.chip())
      .check_readable(target_.chip().flash_base, target_.chip().flash_size);
  FastClock fast(load());
  in_phase("verify", [&] { verify_ranges(image, readback); });
  fast.restore();
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

  if (readback) {
    for (const Range& part : parts) {
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
    }
    return;
  }

  // Pieces of the parts, one per sector: a part spans sectors.
  auto by_sector = [&](const Range& part) {
    std::vector<Range> pieces;
    for (std::uint32_t at = part.address; at < part.end();) {
      const FlashSector& s = chip.sectors[chip.sector_index(at)];
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(s.end(), part.end()) - at);
      pieces.push_back({at, n});
      at += n;
    }
    return pieces;
  };

  // Every part in one loader run; a mismatch is narrowed to its sectors (one more run),
  // then to the byte.
  std::vector<CrcRequest> requests;
  for (const Range& part : parts)
    requests.push_back({part.address, part.size});
  const std::vector<std::uint32_t> crcs = session.crc32_many(requests);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Range& part = parts[i];
    if (crcs[i] != crc32(image_bytes(image, part))) {
      const std::vector<Range> pieces = by_sector(part);
      std::vector<CrcRequest> piece_requests;
      for (const Range& piece : pieces)
        piece_requests.push_back({piece.address, piece.size});
      const std::vector<std::uint32_t> piece_crcs = session.crc32_many(piece_requests);
      for (std::size_t k = 0; k < pieces.size(); ++k) {
        if (piece_crcs[k] != crc32(image_bytes(image, pieces[k]))) fail_in(pieces[k]);
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
  Stm32Flash(target_.memory(), target_.chip())
      .check_readable(address, static_cast<std::uint32_t>(out.size()));
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
  FastClock fast(load());
  std::vector<std::size_t> sectors;
  for (int i = first; i <= last; ++i)
    sectors.push_back(static_cast<std::size_t>(i));
  Stm32Flash driver(target_.memory(), chip);
  driver.check_writable(sectors);
  unlocked(driver, [&] {
    std::uint64_t done = 0;
    report("erase", 0, size);
    for (std::size_t i : sectors) {
      in_phase("erase of sector " + std::to_string(i), [&] { driver.erase_sector(i, psize); });
      done += chip.sectors[i].size;
      report("erase", done, size);
    }
  });
  check_blank(address, size);
  fast.restore();
}

void Programmer::mass_erase() {
  const ChipInfo& chip = target_.chip();
  const unsigned psize = psize_for_supply(chip, 3300);
  FastClock fast(load());
  std::vector<std::size_t> all(chip.sectors.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  Stm32Flash driver(target_.memory(), chip);
  driver.check_writable(all);
  unlocked(driver, [&] {
    report("erase", 0, chip.flash_size);
    in_phase("mass erase", [&] { driver.mass_erase(psize); });
    report("erase", chip.flash_size, chip.flash_size);
  });
  check_blank(chip.flash_base, chip.flash_size);
  fast.restore();
}

}  // namespace probefarm::flash
