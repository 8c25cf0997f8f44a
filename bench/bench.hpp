#pragma once
// probefarm-bench: the proof of speed (issue 5). Every figure of a run comes from the
// simulator's virtual clock and counters (`probefarm-sim ctl stats` before and after), so a
// run is deterministic; only the host CPU time is measured on the real clock.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flash/chip.hpp"

namespace probefarm::bench {

// A simulated chip: its name for probefarm-sim, the ids that select it in the chip database
// (for its geometry and datasheet timings), and OpenOCD's stock target script.
struct ChipSpec {
  std::string name;
  std::uint32_t idcode = 0;
  std::uint16_t flash_kib = 0;
  std::string openocd_target;
  // The SWD clock both tools are asked for (see README.md "SWD clock").
  unsigned swd_khz = 0;
};

// A simulated probe kind and the OpenOCD interface configuration that drives it.
struct ProbeSpec {
  std::string name;
  std::string openocd_adapter;  // usb_bulk | hid | hla (tests/openocd/lib.sh adapter_args)
};

const std::vector<ChipSpec>& all_chips();
const std::vector<ProbeSpec>& all_probes();
flash::ChipInfo chip_info(const ChipSpec& chip);

enum class Scenario { s1, s2, s3, s4 };
const char* scenario_name(Scenario s);
std::optional<Scenario> parse_scenario(const std::string& text);

// The flash content an image or a board holds: the whole flash, 0xFF where erased.
using Content = std::vector<std::uint8_t>;

// What the simulator counted during one tool run (deltas of `ctl stats`), and the run.
struct Measurement {
  bool ran = false;
  int exit_status = -1;
  std::uint64_t virtual_ps = 0;
  std::uint64_t usb_transfers = 0;
  std::uint64_t swd_transfers = 0;
  std::uint64_t bytes_programmed = 0;
  std::uint64_t erases = 0;  // pages or sectors
  std::uint64_t mass_erases = 0;
  double cpu_seconds = 0;  // user + system of the tool's process (wait4)
  std::string error;       // the tool's stderr tail when it failed

  bool ok() const { return ran && exit_status == 0; }
  double virtual_s() const { return static_cast<double>(virtual_ps) / 1e12; }
};

// The time the chip physically needs for a change of content (README.md "Efficiency").
struct Physical {
  double erase_s = 0;    // datasheet erase of the sectors that had to be erased
  double program_s = 0;  // datasheet programming of the units that changed
  double link_s = 0;     // the probe link's transfer time of those units
  std::uint64_t sectors_to_erase = 0;
  bool mass_erase = false;  // the cheaper way to erase them is a mass erase
  std::uint64_t bytes_changed = 0;
  double limit_s() const { return std::max(erase_s + program_s, link_s); }
};

Physical physical_time(const flash::ChipInfo& chip, const ProbeSpec& probe, unsigned swd_khz,
                       const Content& before, const Content& after);

struct Row {
  std::string chip, probe;
  Scenario scenario{};
  std::uint64_t image_bytes = 0;
  unsigned swd_khz = 0;
  Measurement probefarm;
  Measurement openocd;  // ran == false with --no-openocd
  Measurement attach;   // S3 only: `probefarm info` (USB open, attach, chip detection)
  Physical physical;

  double throughput_kib_s() const;
  double efficiency() const;
  double ratio() const;  // OpenOCD's virtual time / probefarm's (> 1: probefarm faster)
  double cpu_per_mib() const;
};

struct Options {
  std::vector<ChipSpec> chips;
  std::vector<ProbeSpec> probes;
  std::vector<Scenario> scenarios;
  bool openocd = true;
  unsigned jobs = 1;
  std::string out;
  std::string command_line;
};

// Runs every scenario of one chip behind one probe kind on a private probefarm-sim.
// `log` gets one line per step (thread-safe).
std::vector<Row> run_combination(const Options& options, const ChipSpec& chip,
                                 const ProbeSpec& probe);

// Sends SIGTERM to every simulator and tool the bench started (async-signal-safe), for an
// interrupted bench.
void kill_children();

// The full-flash image of `seed` (a vector table that parks the core, then pseudo-random
// bytes), S4's variant with one sector replaced, and an ELF32 file holding content.
Content make_content(const flash::ChipInfo& chip, std::uint64_t seed);
std::size_t s4_sector(const flash::ChipInfo& chip);
Content with_sector_replaced(const flash::ChipInfo& chip, const Content& base, std::uint64_t seed);
void write_elf(const std::string& path, std::uint32_t address, const Content& content);

// Output.
std::string table_text(const std::vector<Row>& rows);
// `pending`: the combinations not run yet ("chip probe"), listed as what remains.
std::string results_markdown(const Options& options, const std::vector<Row>& rows,
                             double wall_seconds, const std::vector<std::string>& pending = {});

}  // namespace probefarm::bench
