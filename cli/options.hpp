#pragma once
// The command line of `probefarm`: what the user asked for, parsed and checked before any
// probe is touched. Malformed input is Error(usage) naming the argument.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flash/image.hpp"
#include "flash/programmer.hpp"

namespace probefarm::cli {

enum class Command {
  list,
  info,
  flash,
  verify,
  read,
  erase,
  reset,
  option_bytes,
  protect,
  unlock,
  jobs,      // remote only
  cancel,    // remote only
  audit,     // remote only
  images,    // remote only
  counters,  // remote only
  console,   // remote only
  gdb,       // remote only: a local port tunnelled to the probe's GDB server
  help,
  version
};

struct Options {
  Command command = Command::help;

  // Global options.
  std::string probe;                       // --probe SERIAL (or unique prefix)
  std::optional<std::uint32_t> speed_khz;  // --speed kHz
  bool json = false;                       // --json
  std::string simulate;                    // --simulate CHIP:PROBE[,…]
  bool progress = true;                    // --no-progress turns the bar off
  bool connect_under_reset = false;        // --connect-under-reset
  bool yes = false;                        // --yes: confirms option-bytes set, unlock

  // Remote mode (cli/remote.cpp): run against a probefarmd instead of local probes.
  std::string server;                 // --server URL (or $PROBEFARM_SERVER)
  std::string token;                  // --token T (or $PROBEFARM_TOKEN)
  std::string chip;                   // --chip C: any idle probe with this chip
  std::string label;                  // --label L: any idle probe with this label
  bool wait = true;                   // --no-wait: print the queued job and exit
  std::uint32_t timeout_s = 0;        // --timeout S: give up waiting for the job (0: never)
  std::uint32_t queue_timeout_s = 0;  // --queue-timeout S: the job's queue_timeout_s (0: the
                                      // daemon's default)
  std::string idempotency_key;        // --idempotency-key K (default: one per invocation)
  std::string state;                  // jobs --state S
  std::uint32_t limit = 50;           // jobs / audit --limit N
  bool csv = false;                   // audit --csv
  std::int64_t job_id = 0;            // jobs <id>, cancel <id>

  // counters [list | show NAME | create NAME --start N --step N --width W --endian E].
  std::string counter_action = "list";
  std::string counter_name;
  std::uint64_t counter_start = 0, counter_step = 1;
  unsigned counter_width = 4;
  std::string counter_endian = "little";

  // gdb --probe SERIAL [--port N]: the local port GDB connects to.
  std::uint16_t gdb_port = 3333;

  // list
  bool watch = false;  // --watch: report probes arriving and leaving until interrupted

  // flash / verify
  std::string image_path;
  std::optional<flash::ImageFormat> format;                   // --format
  std::optional<std::uint32_t> address;                       // --address (raw binaries)
  bool verify = true;                                         // --verify / --no-verify
  bool readback = false;                                      // --readback: byte-by-byte verify
  bool reset_after = false;                                   // --reset
  flash::EraseMode erase_mode = flash::EraseMode::automatic;  // --erase auto|sectors|all
  bool skip_unchanged = true;                                 // --no-skip
  unsigned supply_mv = 3300;  // --vdd: F4/F7 programming parallelism

  // read / erase
  std::uint32_t region_address = 0;
  std::uint32_t region_size = 0;
  std::string out_path;  // read
  bool erase_all = false;

  // reset
  bool halt = false;                       // --halt
  std::string reset_kind = "sysresetreq";  // --kind sysresetreq|vectreset|hardware

  // option-bytes [set KEY=VALUE...]
  std::vector<std::string> option_assignments;  // empty: read them

  // protect --set|--clear [<address> <size>]: region_address/region_size, 0/0 = whole flash
  bool protect_set = false;
};

// Throws Error(usage) with a hint naming `probefarm help`.
Options parse_options(const std::vector<std::string>& args);

// 0x-prefixed hex or decimal, with an optional K/M suffix (KiB/MiB) for sizes.
std::uint32_t parse_number(const std::string& text, const char* what);

const char* usage_text();

}  // namespace probefarm::cli
