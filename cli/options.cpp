#include "cli/options.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>

#include "probe/error.hpp"

namespace probefarm::cli {
namespace {

[[noreturn]] void usage_error(const std::string& message) {
  throw Error(ErrorCategory::usage, message, "run 'probefarm help' for the commands and options");
}

const std::map<std::string, Command> kCommands = {
    {"list", Command::list},       {"info", Command::info},
    {"flash", Command::flash},     {"verify", Command::verify},
    {"read", Command::read},       {"erase", Command::erase},
    {"reset", Command::reset},     {"help", Command::help},
    {"version", Command::version}, {"option-bytes", Command::option_bytes},
    {"protect", Command::protect}, {"unlock", Command::unlock},
    {"jobs", Command::jobs},       {"cancel", Command::cancel},
    {"audit", Command::audit},     {"images", Command::images},
    {"console", Command::console}, {"counters", Command::counters},
    {"gdb", Command::gdb},
};

// Which command accepts which command option ("" = every command).
bool allowed(Command c, const std::string& opt) {
  static const std::map<std::string, std::vector<Command>> table = {
      {"--watch", {Command::list}},
      {"--format", {Command::flash, Command::verify}},
      {"--address", {Command::flash, Command::verify}},
      {"--verify", {Command::flash}},
      {"--no-verify", {Command::flash}},
      {"--readback", {Command::flash, Command::verify}},
      {"--reset", {Command::flash, Command::erase}},
      {"--erase", {Command::flash}},
      {"--no-skip", {Command::flash}},
      {"--vdd", {Command::flash}},
      {"--all", {Command::erase}},
      {"--halt", {Command::reset}},
      {"--kind", {Command::reset}},
      {"--yes", {Command::option_bytes, Command::unlock}},
      {"--set", {Command::protect}},
      {"--clear", {Command::protect}},
      {"--state", {Command::jobs}},
      {"--limit", {Command::jobs, Command::audit}},
      {"--csv", {Command::audit}},
      {"--start", {Command::counters}},
      {"--step", {Command::counters}},
      {"--width", {Command::counters}},
      {"--endian", {Command::counters}},
      {"--port", {Command::gdb}},
  };
  auto it = table.find(opt);
  if (it == table.end()) return false;
  for (auto x : it->second)
    if (x == c) return true;
  return false;
}

std::string positional_command_name(Command c) {
  for (const auto& [name, command] : kCommands)
    if (command == c) return name;
  return "?";
}

// Counters are 64-bit: decimal or 0x-hex, no suffix.
std::uint64_t parse_u64(const std::string& text, const char* what) {
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  const char* first = text.data() + (hex ? 2 : 0);
  const char* last = text.data() + text.size();
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(first, last, v, hex ? 16 : 10);
  if (first == last || ec != std::errc() || ptr != last)
    usage_error(std::string(what) + " '" + text + "' is not a 64-bit number (decimal or 0x-hex)");
  return v;
}

}  // namespace

std::uint32_t parse_number(const std::string& text, const char* what) {
  std::string s = text;
  std::uint64_t scale = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'k')) {
    scale = 1024;
    s.pop_back();
  } else if (!s.empty() && (s.back() == 'M' || s.back() == 'm')) {
    scale = 1024 * 1024;
    s.pop_back();
  }
  int base = 10;
  std::size_t start = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    start = 2;
  }
  std::uint64_t value = 0;
  const char* first = s.data() + start;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, value, base);
  if (s.size() == start || ec != std::errc() || ptr != last || value * scale > 0xFFFFFFFFull)
    usage_error(std::string(what) + " '" + text +
                "' is not a number (decimal, 0x-hex, optional K or M suffix) below 4 GiB");
  return static_cast<std::uint32_t>(value * scale);
}

Options parse_options(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> positional;
  std::vector<std::string> command_opts;  // checked once the command is known
  bool have_command = false;

  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage_error("option " + a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      o.command = Command::help;
      return o;
    } else if (a == "--version") {
      o.command = Command::version;
      return o;
    } else if (a == "--probe") {
      o.probe = value();
    } else if (a == "--speed") {
      o.speed_khz = parse_number(value(), "--speed");
      if (*o.speed_khz == 0) usage_error("--speed must be at least 1 kHz");
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--no-progress") {
      o.progress = false;
    } else if (a == "--simulate") {
      o.simulate = value();
    } else if (a == "--server") {
      o.server = value();
    } else if (a == "--token") {
      o.token = value();
    } else if (a == "--chip") {
      o.chip = value();
    } else if (a == "--label") {
      o.label = value();
    } else if (a == "--no-wait") {
      o.wait = false;
    } else if (a == "--timeout") {
      o.timeout_s = parse_number(value(), "--timeout");
    } else if (a == "--queue-timeout") {
      o.queue_timeout_s = parse_number(value(), "--queue-timeout");
      if (o.queue_timeout_s == 0) usage_error("--queue-timeout must be at least 1 second");
    } else if (a == "--idempotency-key") {
      o.idempotency_key = value();
    } else if (a == "--state") {
      command_opts.push_back(a);
      o.state = value();
    } else if (a == "--limit") {
      command_opts.push_back(a);
      o.limit = parse_number(value(), "--limit");
    } else if (a == "--port") {
      command_opts.push_back(a);
      const std::uint32_t port = parse_number(value(), "--port");
      if (port < 1 || port > 65535) usage_error("--port must be 1 to 65535");
      o.gdb_port = static_cast<std::uint16_t>(port);
    } else if (a == "--csv") {
      command_opts.push_back(a);
      o.csv = true;
    } else if (a == "--start" || a == "--step") {
      command_opts.push_back(a);
      (a == "--start" ? o.counter_start : o.counter_step) = parse_u64(value(), a.c_str());
    } else if (a == "--width") {
      command_opts.push_back(a);
      o.counter_width = parse_number(value(), "--width");
      if (o.counter_width < 1 || o.counter_width > 8) usage_error("--width must be 1 to 8 bytes");
    } else if (a == "--endian") {
      command_opts.push_back(a);
      o.counter_endian = value();
      if (o.counter_endian != "little" && o.counter_endian != "big")
        usage_error("--endian '" + o.counter_endian + "' is not one of little, big");
    } else if (a == "--connect-under-reset") {
      o.connect_under_reset = true;
    } else if (a == "--yes") {
      command_opts.push_back(a);
      o.yes = true;
    } else if (a == "--set" || a == "--clear") {
      if (std::find(command_opts.begin(), command_opts.end(), a == "--set" ? "--clear" : "--set") !=
          command_opts.end())
        usage_error("protect takes one of --set and --clear");
      command_opts.push_back(a);
      o.protect_set = a == "--set";
    } else if (a == "--watch" || a == "--verify" || a == "--no-verify" || a == "--readback" ||
               a == "--reset" || a == "--no-skip" || a == "--all" || a == "--halt") {
      command_opts.push_back(a);
      if (a == "--watch") o.watch = true;
      if (a == "--verify") o.verify = true;
      if (a == "--no-verify") o.verify = false;
      if (a == "--readback") o.readback = true;
      if (a == "--reset") o.reset_after = true;
      if (a == "--no-skip") o.skip_unchanged = false;
      if (a == "--all") o.erase_all = true;
      if (a == "--halt") o.halt = true;
    } else if (a == "--format") {
      command_opts.push_back(a);
      const std::string& f = value();
      if (f == "elf")
        o.format = flash::ImageFormat::elf;
      else if (f == "ihex" || f == "hex")
        o.format = flash::ImageFormat::ihex;
      else if (f == "srec")
        o.format = flash::ImageFormat::srec;
      else if (f == "bin")
        o.format = flash::ImageFormat::bin;
      else
        usage_error("--format '" + f + "' is not one of elf, ihex, srec, bin");
    } else if (a == "--vdd") {
      command_opts.push_back(a);
      o.supply_mv = parse_number(value(), "--vdd");
    } else if (a == "--address") {
      command_opts.push_back(a);
      o.address = parse_number(value(), "--address");
    } else if (a == "--erase") {
      command_opts.push_back(a);
      const std::string& m = value();
      if (m == "auto")
        o.erase_mode = flash::EraseMode::automatic;
      else if (m == "sectors")
        o.erase_mode = flash::EraseMode::sectors;
      else if (m == "all")
        o.erase_mode = flash::EraseMode::all;
      else
        usage_error("--erase '" + m + "' is not one of auto, sectors, all");
    } else if (a == "--kind") {
      command_opts.push_back(a);
      o.reset_kind = value();
      if (o.reset_kind != "sysresetreq" && o.reset_kind != "vectreset" &&
          o.reset_kind != "hardware")
        usage_error("--kind '" + o.reset_kind + "' is not one of sysresetreq, vectreset, hardware");
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      usage_error("unknown option '" + a + "'");
    } else if (!have_command) {
      auto it = kCommands.find(a);
      if (it == kCommands.end()) usage_error("unknown command '" + a + "'");
      o.command = it->second;
      have_command = true;
    } else {
      positional.push_back(a);
    }
  }
  if (!have_command) usage_error("no command given");

  for (const auto& opt : command_opts)
    if (!allowed(o.command, opt)) usage_error("option " + opt + " does not apply to this command");

  auto want = [&](std::size_t n, const char* form) {
    if (positional.size() != n) usage_error(std::string("usage: probefarm ") + form);
  };
  switch (o.command) {
    case Command::list:
    case Command::info:
    case Command::reset:
    case Command::help:
    case Command::version:
      want(0, o.command == Command::reset ? "reset [--halt] [--kind K]" : "list|info");
      break;
    case Command::flash:
    case Command::verify:
      want(1, o.command == Command::flash ? "flash <image> [options]" : "verify <image> [options]");
      o.image_path = positional[0];
      break;
    case Command::read:
      want(3, "read <address> <size> <out.bin>");
      o.region_address = parse_number(positional[0], "address");
      o.region_size = parse_number(positional[1], "size");
      o.out_path = positional[2];
      if (o.region_size == 0) usage_error("read: size must not be 0");
      break;
    case Command::erase:
      if (o.erase_all) {
        want(0, "erase --all | erase <address> <size>");
      } else {
        want(2, "erase --all | erase <address> <size>");
        o.region_address = parse_number(positional[0], "address");
        o.region_size = parse_number(positional[1], "size");
        if (o.region_size == 0) usage_error("erase: size must not be 0");
      }
      break;
    case Command::option_bytes:
      if (!positional.empty()) {
        if (positional[0] != "set" || positional.size() < 2)
          usage_error("usage: probefarm option-bytes [set KEY=VALUE... --yes]");
        o.option_assignments.assign(positional.begin() + 1, positional.end());
        for (const auto& kv : o.option_assignments)
          if (kv.find('=') == std::string::npos || kv.front() == '=')
            usage_error("option-bytes set: '" + kv + "' is not KEY=VALUE (e.g. RDP=1)");
        if (!o.yes)
          usage_error("option-bytes set changes the chip's configuration; add --yes to confirm");
      } else if (o.yes) {
        usage_error("--yes applies to 'option-bytes set' only");
      }
      break;
    case Command::protect:
      if (std::find(command_opts.begin(), command_opts.end(), "--set") == command_opts.end() &&
          std::find(command_opts.begin(), command_opts.end(), "--clear") == command_opts.end())
        usage_error("usage: probefarm protect --set|--clear [<address> <size>]");
      if (!positional.empty()) {
        want(2, "protect --set|--clear [<address> <size>]");
        o.region_address = parse_number(positional[0], "address");
        o.region_size = parse_number(positional[1], "size");
        if (o.region_size == 0) usage_error("protect: size must not be 0");
      }
      break;
    case Command::jobs:
    case Command::cancel:
      if (o.command == Command::cancel) want(1, "cancel <job id>");
      if (positional.size() > 1) usage_error("usage: probefarm jobs [<job id>] [--state S]");
      if (!positional.empty()) {
        o.job_id = parse_number(positional[0], "job id");
        if (o.job_id == 0) usage_error("job ids start at 1");
      }
      break;
    case Command::audit:
      want(0, "audit [--csv] [--limit N]");
      break;
    case Command::images:
      want(0, "images");
      break;
    case Command::console:
      want(0, "console --probe SERIAL");
      break;
    case Command::gdb:
      want(0, "gdb --probe SERIAL [--port N]");
      break;
    case Command::counters: {
      const char* form =
          "counters [list | show NAME | create NAME [--start N] [--step N] "
          "[--width 1..8] [--endian little|big]]";
      if (!positional.empty()) o.counter_action = positional[0];
      if (o.counter_action == "list") {
        if (positional.size() > 1) usage_error(std::string("usage: probefarm ") + form);
      } else if (o.counter_action == "show" || o.counter_action == "create") {
        want(2, form);
        o.counter_name = positional[1];
      } else {
        usage_error(std::string("usage: probefarm ") + form);
      }
      if (o.counter_action != "create" && !command_opts.empty())
        usage_error("--start, --step, --width and --endian go with 'counters create'");
      break;
    }
    case Command::unlock:
      want(0, "unlock --yes");
      if (!o.yes)
        usage_error(
            "unlock lowers read protection to level 0, which mass-erases the whole chip; add "
            "--yes to confirm");
      break;
  }
  if (o.watch && o.json) usage_error("list --watch prints events as they happen; drop --json");
  if (o.server.empty())
    if (const char* env = std::getenv("PROBEFARM_SERVER"); env && *env) o.server = env;
  if (o.token.empty())
    if (const char* env = std::getenv("PROBEFARM_TOKEN"); env && *env) o.token = env;
  const bool remote_only = o.command == Command::jobs || o.command == Command::cancel ||
                           o.command == Command::audit || o.command == Command::images ||
                           o.command == Command::counters || o.command == Command::console ||
                           o.command == Command::gdb;
  if (remote_only && o.server.empty())
    usage_error("'" + positional_command_name(o.command) +
                "' talks to a probefarmd: add --server URL");
  if (o.server.empty() && (!o.chip.empty() || !o.label.empty() || !o.wait || o.timeout_s ||
                           o.queue_timeout_s || !o.idempotency_key.empty()))
    usage_error(
        "--chip, --label, --no-wait, --timeout, --queue-timeout and --idempotency-key need "
        "--server");
  if (!o.server.empty() && !o.simulate.empty())
    usage_error("--simulate runs local boards; it does not combine with --server");
  if (!o.probe.empty() && (!o.chip.empty() || !o.label.empty()))
    usage_error("give --probe, or --chip/--label to let the server pick a probe; not both");
  return o;
}

const char* usage_text() {
  return R"(probefarm: flash and debug STM32 boards through ST-Link and CMSIS-DAP probes.

Usage: probefarm [options] <command> [arguments]

Commands:
  list [--watch]          Attached probes: serial, kind, product, firmware.
                          --watch keeps running and reports probes arriving and leaving.
  info                    Probe, target voltage, debug port, core, chip and flash size.
  flash <image>           Program an image (ELF, Intel HEX, S-record, or .bin with --address).
      --address A         Load address of a raw binary.
      --format F          elf | ihex | srec | bin (default: from the content, then the name).
      --verify            Verify with a CRC-32 computed on the target (default).
      --no-verify         Do not verify.
      --readback          Verify by reading every byte back instead.
      --reset             Reset and run the new firmware afterwards.
      --erase MODE        auto (default): per sector, mass erase when faster and nothing
                          is lost; sectors: never mass erase; all: mass erase first.
      --no-skip           Reprogram sectors whose contents already match.
      --vdd MV            Target supply in mV (default 3300): F4/F7 program x32 at 2.7 V and
                          above, x16 from 2.1 V, x8 below (RM0090 3.5.2, RM0385 3.3.2).
  verify <image>          Compare flash with an image (--readback for byte-by-byte).
  read <addr> <size> <out.bin>
                          Save memory to a file (sizes take K and M suffixes).
  erase --all | erase <addr> <size>
                          Mass erase, or erase the sectors covering the range.
  reset [--halt] [--kind sysresetreq|vectreset|hardware]
                          Reset the target; --halt stops it at the reset vector.
  option-bytes            The option bytes: read protection (RDP), write protection (WRP),
                          user bits and BOR level.
  option-bytes set KEY=VALUE... --yes
                          Change option bytes and reload them (e.g. RDP=1, BOR_LEV=3).
  protect --set|--clear [<addr> <size>]
                          Write-protect, or unprotect, the sectors covering the range
                          (default: the whole flash).
  unlock --yes            Lower read protection from level 1 to 0. This mass-erases the
                          chip: its firmware and data are lost.

Remote mode (against a probefarmd; --server and --token, or $PROBEFARM_SERVER and
$PROBEFARM_TOKEN): list, info, flash, verify, read, erase and reset run as jobs on the
daemon's probes, with live progress; the exit code is the job's. Also:
  jobs [<id>] [--state S] [--limit N]
                          Jobs, newest first (or one job in full).
  cancel <id>             Cancel a queued or running job.
  audit [--csv] [--limit N]
                          The audit log: who flashed which image onto which chip.
  images                  The daemon's image store.
  console --probe SERIAL  The probe's OpenOCD-style console (halt, mdw, flash write_image
                          ...; 'help' lists them), one command per line of input.
  counters [list | show NAME]
                          Production serial-number counters (next value, step, width).
  counters create NAME [--start N] [--step N] [--width 1..8] [--endian little|big]
                          A new counter (admin token; default 0, 1, 4 bytes, little).
                          A flash job takes one with "serial": {"counter", "address"}.
  gdb --probe SERIAL [--port N]
                          Listen on 127.0.0.1:N (default 3333) and tunnel each GDB client
                          to the probe's GDB server (target extended-remote :N).
  --server URL            http://host:port of probefarmd.
  --token T               An API token (see DATA_DIR/admin-token, POST /api/v1/tokens).
  --chip C, --label L     Instead of --probe: the first idle probe with this chip or label.
  --no-wait               Print the queued job and exit.
  --timeout S             Give up waiting for the job after S seconds (exit 9).
  --queue-timeout S       The daemon fails the job if no probe has taken it within S
                          seconds (exit 9; default: its queue_timeout_s, 1 hour).
  --idempotency-key K     Submitting again with the same key returns the same job.

Options:
  --probe SERIAL          The probe to use (full serial or a unique prefix); required
                          when more than one probe is attached.
  --speed KHZ             SWD clock (default 4000); the probe's nearest lower speed is used.
  --connect-under-reset   Hold nRST while connecting and halting: for firmware that disables
                          the SWD pins or stops the debug clocks.
  --json                  Machine-readable output on stdout (errors too).
  --no-progress           No progress bar (it is shown only on a terminal anyway).
  --simulate CHIP:PROBE[,CHIP:PROBE...]
                          Run against simulated boards instead of attached probes, e.g.
                          --simulate stm32f407vg:cmsis-dap-v2. Chips: stm32f103c8,
                          stm32f303vc, stm32f407vg, stm32f746ng. Probes: cmsis-dap-v1,
                          cmsis-dap-v2, stlink-v2, stlink-v2-1, stlink-v3.

Exit codes: 0 ok, 2 usage, 3 bad image, 4 probe not found or ambiguous, 5 probe I/O,
6 target not responding, 7 protection, 8 verify failed, 9 timeout, 10 busy,
11 remote job cancelled or interrupted, 70 internal.
)";
}

}  // namespace probefarm::cli
