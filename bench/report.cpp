// The printed table and bench/RESULTS.md: the command, the date, the table, and each target
// with pass/miss and, for a miss, the figures that explain it.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <sstream>

#include "bench/bench.hpp"

namespace probefarm::bench {
namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string seconds(const Measurement& m) {
  if (!m.ran) return "-";
  if (!m.ok()) return "FAIL(" + std::to_string(m.exit_status) + ")";
  return fmt("%.3f", m.virtual_s());
}

std::string erases(const Measurement& m) {
  if (!m.ran) return "-";
  std::string s = std::to_string(m.erases);
  if (m.mass_erases > 0) s += "+" + std::to_string(m.mass_erases) + "M";
  return s;
}

std::string need(const Physical& p) {
  if (p.limit_s() <= 0) return "0";
  std::string s = fmt("%.3f", p.limit_s());
  s += p.link_s > p.erase_s + p.program_s ? " link" : " chip";
  return s;
}

std::vector<std::string> cells(const Row& r) {
  const bool nothing = r.physical.limit_s() <= 0;
  return {r.chip,
          r.probe,
          scenario_name(r.scenario),
          seconds(r.probefarm),
          r.probefarm.ok() ? fmt("%.1f", r.throughput_kib_s()) : "-",
          erases(r.probefarm),
          r.probefarm.ran ? std::to_string(r.probefarm.bytes_programmed) : "-",
          std::to_string(r.probefarm.usb_transfers),
          need(r.physical),
          r.probefarm.ok() && !nothing ? fmt("%.2f", r.efficiency()) : "-",
          seconds(r.openocd),
          r.ratio() > 0 ? fmt("%.2fx", r.ratio()) : "-",
          r.probefarm.ran ? fmt("%.3f", r.cpu_per_mib()) : "-"};
}

const std::vector<std::string> kHeader = {
    "chip",      "probe",   "scen", "time s",    "KiB/s",      "erases",   "bytes prog",
    "usb xfers", "needs s", "eff",  "OpenOCD s", "vs OpenOCD", "CPU s/MiB"};

bool is_f4f7(const std::string& chip) {
  return chip == "stm32f407vg" || chip == "stm32f746ng";
}

const Row* find(const std::vector<Row>& rows, const std::string& chip, const std::string& probe,
                Scenario s) {
  for (const Row& r : rows)
    if (r.chip == chip && r.probe == probe && r.scenario == s) return &r;
  return nullptr;
}

std::string breakdown(const Row& r) {
  std::ostringstream o;
  o << r.chip << " " << r.probe << " " << scenario_name(r.scenario) << ": probefarm "
    << seconds(r.probefarm) << " s (" << r.probefarm.usb_transfers << " USB transfers, "
    << r.probefarm.erases << " erases" << (r.probefarm.mass_erases ? " + mass erase" : "")
    << "), chip needs " << fmt("%.3f", r.physical.erase_s) << " s erase + "
    << fmt("%.3f", r.physical.program_s) << " s program, link " << fmt("%.3f", r.physical.link_s)
    << " s";
  if (r.openocd.ok())
    o << "; OpenOCD " << seconds(r.openocd) << " s (" << r.openocd.usb_transfers
      << " USB transfers, " << r.openocd.erases << " erases"
      << (r.openocd.mass_erases ? " + mass erase" : "") << ")";
  return o.str();
}

struct Check {
  std::string label;
  double value = 0;
  double goal = 0;
  bool measured = false;
  const Row* row = nullptr;
  std::string why;  // for a miss
};

}  // namespace

std::string table_text(const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> all = {kHeader};
  for (const Row& r : rows)
    all.push_back(cells(r));
  std::vector<std::size_t> width(kHeader.size(), 0);
  for (const auto& line : all)
    for (std::size_t i = 0; i < line.size(); ++i)
      width[i] = std::max(width[i], line[i].size());
  std::ostringstream o;
  for (std::size_t n = 0; n < all.size(); ++n) {
    for (std::size_t i = 0; i < all[n].size(); ++i) {
      o << all[n][i] << std::string(width[i] - all[n][i].size() + 2, ' ');
    }
    o << "\n";
    if (n == 0) {
      for (std::size_t i = 0; i < width.size(); ++i)
        o << std::string(width[i], '-') << "  ";
      o << "\n";
    }
  }
  return o.str();
}

std::string results_markdown(const Options& options, const std::vector<Row>& rows,
                             double wall_seconds, const std::vector<std::string>& pending) {
  std::ostringstream o;
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  o << "# probefarm-bench results\n\n";
  o << "Produced by:\n\n```sh\n" << options.command_line << "\n```\n\n";
  o << "Date: " << date << ". Wall time of the run: " << fmt("%.0f", wall_seconds) << " s (--jobs "
    << options.jobs << ").\n\n";
  o << "Every time below is virtual time of the simulated board (`probefarm-sim ctl stats` "
       "deltas around one process: the whole `probefarm flash IMAGE` or `openocd ... -c "
       "\"program IMAGE verify\"` session, USB enumeration and attach included), so it is "
       "deterministic. Images: pseudo-random full-flash ELF files (bench/images.cpp). SWD "
       "clock asked of both tools: 4000 kHz on the F103 (OpenOCD: `adapter speed 4000` after "
       "stm32f1x.cfg), 8000 kHz on F303/F407/F746 (what OpenOCD's stm32f3x/f4x/f7x.cfg "
       "reset-init sets; probefarm `--speed 8000`); the ST-Link V2/V2-1 run both at their "
       "nearest lower step, 4000 kHz. Columns: see bench/README.md.\n\n";
  o << "```\n" << table_text(rows) << "```\n\n";
  if (!pending.empty()) {
    o << "**Partial results**: the run was still going; not measured yet:";
    for (const std::string& p : pending)
      o << " " << p << ";";
    o << "\n\n";
  }

  // Targets.
  std::vector<std::pair<std::string, std::vector<Check>>> targets;
  std::vector<Check> eff, s1, s2, s3;
  for (const Row& r : rows) {
    if (r.scenario == Scenario::s2 && is_f4f7(r.chip) &&
        (r.probe == "cmsis-dap-v2" || r.probe == "stlink-v3")) {
      Check c{r.chip + " " + r.probe, r.efficiency(), 0.90, r.probefarm.ok(), &r, {}};
      if (c.measured && c.value < c.goal)
        c.why = "the run takes " + fmt("%.3f", r.probefarm.virtual_s() - r.physical.limit_s()) +
                " s more than the physical limit of " + fmt("%.3f", r.physical.limit_s()) + " s";
      eff.push_back(c);
    }
    auto vs_openocd = [&](std::vector<Check>& list, double goal) {
      Check c{r.chip + " " + r.probe, r.ratio(), goal, r.probefarm.ok() && r.openocd.ok(), &r, {}};
      if (c.measured && c.value < c.goal) {
        const double best =
            r.physical.limit_s() > 0 ? r.openocd.virtual_s() / r.physical.limit_s() : 0;
        c.why = "OpenOCD needs " + fmt("%.3f", r.openocd.virtual_s()) +
                " s; the physical limit is " + fmt("%.3f", r.physical.limit_s()) + " s, so ";
        if (best < goal) {
          c.why += "no tool can be more than " + fmt("%.2f", best) + "x faster than OpenOCD here";
        } else {
          c.why += "up to " + fmt("%.2f", best) + "x would be possible; probefarm spends " +
                   fmt("%.3f", r.probefarm.virtual_s() - r.physical.limit_s()) +
                   " s beyond the limit in " + std::to_string(r.probefarm.usb_transfers) +
                   " USB transfers (each completes on a USB frame: 1 ms on full speed, 125 us "
                   "on high speed)";
        }
      }
      list.push_back(c);
    };
    if (r.scenario == Scenario::s1 && is_f4f7(r.chip)) vs_openocd(s1, 3.0);
    if (r.scenario == Scenario::s2) vs_openocd(s2, is_f4f7(r.chip) ? 1.3 : 1.0);
    if (r.scenario == Scenario::s3) {
      const Row* r2 = find(rows, r.chip, r.probe, Scenario::s2);
      Check c{
          r.chip + " " + r.probe, 0, 20.0, r2 && r2->probefarm.ok() && r.probefarm.ok(), &r, {}};
      if (c.measured) c.value = r2->probefarm.virtual_s() / r.probefarm.virtual_s();
      if (c.measured && c.value < c.goal)
        c.why = "S2 takes " + fmt("%.3f", r2->probefarm.virtual_s()) + " s, S3 " +
                fmt("%.3f", r.probefarm.virtual_s()) + " s (" +
                std::to_string(r.probefarm.usb_transfers) + " USB transfers)" +
                (r.attach.ok() ? ", of which opening the probe and attaching (`probefarm info` "
                                 "alone) takes " +
                                     fmt("%.3f", r.attach.virtual_s()) + " s (" +
                                     std::to_string(r.attach.usb_transfers) + " USB transfers)"
                               : std::string()) +
                "; a 20x ratio needs S3 <= " + fmt("%.3f", r2->probefarm.virtual_s() / 20) + " s";
      s3.push_back(c);
    }
  }
  targets.push_back({"efficiency >= 0.90 in S2, F4/F7 through CMSIS-DAP v2 and ST-Link V3", eff});
  targets.push_back({"S1 >= 3x faster than OpenOCD on F4/F7", s1});
  targets.push_back({"S2 >= 1.3x faster than OpenOCD on F4/F7, >= 1x on F1/F3", s2});
  targets.push_back({"S3 >= 20x faster than S2", s3});

  o << "## Targets\n\n";
  for (const auto& [name, checks] : targets) {
    std::size_t pass = 0, miss = 0, unmeasured = 0;
    for (const Check& c : checks) {
      if (!c.measured) {
        ++unmeasured;
      } else if (c.value >= c.goal) {
        ++pass;
      } else {
        ++miss;
      }
    }
    const char* verdict = unmeasured == checks.size() ? "NOT MEASURED"
                          : miss > 0                  ? "MISS"
                          : unmeasured                ? "PASS so far (some rows not measured)"
                                                      : "PASS";
    o << "### " << name << ": " << verdict << "\n\n";
    if (checks.empty()) {
      o << "No row of this run covers it.\n\n";
      continue;
    }
    if (unmeasured == checks.size()) {
      o << "No row of this run measures it (the rows it needs failed or were not run).\n\n";
      continue;
    }
    for (const Check& c : checks) {
      o << "- " << c.label << ": ";
      if (!c.measured) {
        o << "not measured (a run failed or was not run)\n";
        continue;
      }
      o << fmt("%.2f", c.value) << " (goal " << fmt("%.2f", c.goal) << ") "
        << (c.value >= c.goal ? "pass" : "**miss**");
      if (!c.why.empty()) o << ": " << c.why << ". " << breakdown(*c.row);
      o << "\n";
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace probefarm::bench
