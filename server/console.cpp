// The console's interpreter: parsing, dispatch, errors, audit rows, and the core, memory,
// register and adapter commands. Flash and the STM32 drivers: console_flash.cpp.
#include "server/console.hpp"

#include <charconv>
#include <cstdio>
#include <map>
#include <optional>

#include "probe/error.hpp"
#include "server/database.hpp"
#include "server/job_runner.hpp"
#include "server/probe_session.hpp"

namespace probefarm::server {

using protocol::CoreRegister;

namespace console_detail {

[[noreturn]] void usage(const std::string& form) {
  throw Error(ErrorCategory::usage, "usage: " + form, "'help' lists the commands");
}

std::uint32_t parse_u32(const std::string& text, const std::string& form) {
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  const char* first = text.data() + (hex ? 2 : 0);
  const char* last = text.data() + text.size();
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(first, last, v, hex ? 16 : 10);
  if (first == last || ec != std::errc() || p != last || v > 0xFFFFFFFFull) usage(form);
  return static_cast<std::uint32_t>(v);
}

std::string hex8(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace console_detail

using namespace console_detail;

namespace {

// A line split at blanks; "double quotes" keep blanks in one word (OpenOCD is Tcl: a
// quoted image name is the case that matters here).
std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false, quoted = false;
  for (char ch : line) {
    if (quoted) {
      if (ch == '"')
        quoted = false;
      else
        word += ch;
    } else if (ch == '"') {
      quoted = in_word = true;
    } else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += ch;
      in_word = true;
    }
  }
  if (quoted) throw Error(ErrorCategory::usage, "missing closing quote", "");
  if (in_word) words.push_back(std::move(word));
  return words;
}

// Exception names by number (ARMv7-M ARM B1.5.2, Table B1-4).
std::string mode_name(std::uint32_t xpsr) {
  const std::uint32_t n = xpsr & 0x1FF;  // IPSR
  static const std::map<std::uint32_t, const char*> names = {
      {2, "NMI"},  {3, "HardFault"},     {4, "MemManage"}, {5, "BusFault"}, {6, "UsageFault"},
      {11, "SVC"}, {12, "DebugMonitor"}, {14, "PendSV"},   {15, "SysTick"}};
  if (n == 0) return "Thread";
  if (auto it = names.find(n); it != names.end()) return std::string("Handler ") + it->second;
  if (n >= 16) return "Handler IRQ" + std::to_string(n - 16);
  return "Handler " + std::to_string(n);
}

// What OpenOCD's users read after a halt or a step: why it stopped and where.
std::string halt_state(protocol::CortexM& core) {
  const protocol::HaltReason r = core.halt_reason();
  const char* why = r.breakpoint     ? "breakpoint"
                    : r.watchpoint   ? "watchpoint"
                    : r.vector_catch ? "vector-catch"
                    : r.external     ? "external request"
                                     : "debug-request";
  const std::uint32_t xpsr = core.read_register(CoreRegister::xpsr);
  const std::uint32_t pc = core.read_register(CoreRegister::pc);
  const std::uint32_t msp = core.read_register(CoreRegister::msp);
  return std::string("target halted due to ") + why + ", current mode: " + mode_name(xpsr) +
         "\nxPSR: " + hex8(xpsr) + " pc: " + hex8(pc) + " msp: " + hex8(msp) + "\n";
}

void require_halted(protocol::CortexM& core) {
  if (!core.is_halted())
    throw Error(ErrorCategory::usage, "target not halted", "stop it first with 'halt'");
}

// The registers `reg` knows. The special registers share one transfer (REGSEL 0b10100,
// ARMv7-M ARM C1.6.3): CONTROL [31:24], FAULTMASK [23:16], BASEPRI [15:8], PRIMASK [7:0].
struct RegDef {
  const char* name;
  CoreRegister reg;
  unsigned shift = 0;  // within the special-register word
  unsigned bits = 32;
  bool fpu = false;  // present only with an FPU
};

const std::vector<RegDef>& reg_defs() {
  static const std::vector<RegDef> defs = {
      {"r0", CoreRegister::r0},
      {"r1", CoreRegister::r1},
      {"r2", CoreRegister::r2},
      {"r3", CoreRegister::r3},
      {"r4", CoreRegister::r4},
      {"r5", CoreRegister::r5},
      {"r6", CoreRegister::r6},
      {"r7", CoreRegister::r7},
      {"r8", CoreRegister::r8},
      {"r9", CoreRegister::r9},
      {"r10", CoreRegister::r10},
      {"r11", CoreRegister::r11},
      {"r12", CoreRegister::r12},
      {"sp", CoreRegister::sp},
      {"lr", CoreRegister::lr},
      {"pc", CoreRegister::pc},
      {"xpsr", CoreRegister::xpsr},
      {"msp", CoreRegister::msp},
      {"psp", CoreRegister::psp},
      {"primask", CoreRegister::control_faultmask_basepri_primask, 0, 1},
      {"basepri", CoreRegister::control_faultmask_basepri_primask, 8, 8},
      {"faultmask", CoreRegister::control_faultmask_basepri_primask, 16, 1},
      {"control", CoreRegister::control_faultmask_basepri_primask, 24, 3},
      {"fpscr", CoreRegister::fpscr, 0, 32, true},
  };
  return defs;
}

std::uint32_t field_mask(const RegDef& d) {
  return d.bits == 32 ? 0xFFFFFFFFu : ((1u << d.bits) - 1u);
}

std::uint32_t read_reg(protocol::CortexM& core, const RegDef& d) {
  return (core.read_register(d.reg) >> d.shift) & field_mask(d);
}

void write_reg(protocol::CortexM& core, const RegDef& d, std::uint32_t value) {
  if (d.bits == 32) return core.write_register(d.reg, value);
  const std::uint32_t mask = field_mask(d) << d.shift;
  const std::uint32_t old = core.read_register(d.reg);
  core.write_register(d.reg, (old & ~mask) | ((value << d.shift) & mask));
}

std::string reg_line(const RegDef& d, std::uint32_t value) {
  char buf[64];
  if (d.bits == 32)
    std::snprintf(buf, sizeof buf, "%s (/%u): 0x%08x\n", d.name, d.bits, value);
  else
    std::snprintf(buf, sizeof buf, "%s (/%u): 0x%02x\n", d.name, d.bits, value);
  return buf;
}

const char* kHelp =
    "halt                                 stop the core and show where\n"
    "resume [address]                     let the core run (from address)\n"
    "step [address]                       execute one instruction\n"
    "reset [run|halt|init]                system reset; halt/init stop at the reset vector\n"
    "mdw|mdh|mdb address [count]          display memory words/half-words/bytes\n"
    "mww|mwh|mwb address value [count]    write memory (count: fill that many)\n"
    "reg [name [value]]                   list, show or set core registers (core halted)\n"
    "flash banks                          the flash banks\n"
    "flash info bank                      sectors and their write protection\n"
    "flash probe bank                     identify the flash again\n"
    "flash erase_sector bank first last   erase sectors first..last ('last' for the end)\n"
    "flash erase_check bank               which sectors are blank\n"
    "flash write_image [erase] image [offset]\n"
    "                                     program an image of the image store (sha256,\n"
    "                                     prefix or name); offset moves it\n"
    "flash verify_image image [offset]    compare flash with an image\n"
    "flash read_bank bank name [offset [length]]\n"
    "                                     read flash into the image store as 'name'\n"
    "stm32f1x|stm32f2x unlock 0           remove read protection (mass-erases; admin only)\n"
    "stm32f1x|stm32f2x options_read 0     show the option bytes\n"
    "adapter speed [khz]                  show or set the SWD clock\n"
    "help                                 this list\n";

}  // namespace

Console::Console(ProbeSession& session, ConsoleEnv env) : session_(session), env_(std::move(env)) {}

std::string Console::banner() const {
  return "probefarm console on probe " + session_.serial() +
         " (OpenOCD command vocabulary; 'help' lists the commands)\n";
}

void Console::with_target(const std::function<void(ProbeConnection&)>& work) {
  session_.run([&](ProbeConnection& c) {
    if (chip_.empty()) {
      chip_ = c.target->chip().name;
      try {
        target_uid_ = read_unique_id(*c.target);
      } catch (const Error& e) {
        if (e.category() == ErrorCategory::probe_io) throw;
      }
    }
    work(c);
  });
}

ConsoleResult Console::run(const std::string& line) {
  ConsoleResult result;
  audited_ = false;
  image_sha256_.clear();
  std::string error;
  try {
    const Args args = split(line);
    if (args.empty() || args[0][0] == '#') return result;
    result.output = dispatch(args);
  } catch (const Error& e) {
    result.ok = false;
    error = e.what();
    result.category = category_name(e.category());
    result.message = error;
    result.hint = e.hint();
    // Usage errors read as OpenOCD's do: the usage line itself, no "Error:" in front.
    const bool plain = e.category() == ErrorCategory::usage &&
                       (error.rfind("usage: ", 0) == 0 || error.rfind("invalid command", 0) == 0);
    result.output += plain ? error + "\n" : "Error: " + error + "\n";
    if (!e.hint().empty()) result.output += "hint: " + e.hint() + "\n";
  } catch (const std::exception& e) {
    result.ok = false;
    error = std::string("internal error: ") + e.what();
    result.category = "internal";
    result.message = error;
    result.output += "Error: " + error + "\n";
  }
  if (audited_) audit(line, result.ok, result.output, error);
  return result;
}

void Console::audit(const std::string& line, bool ok, const std::string& output,
                    const std::string& error) {
  if (!env_.db) return;
  AuditRow row;
  row.job_id = 0;
  row.who = env_.who;
  row.probe = session_.serial();
  row.chip = chip_;
  row.target_uid = target_uid_;
  row.image_sha256 = image_sha256_;
  row.operation = "console";
  row.result = ok ? "succeeded" : "failed";
  row.error = error;
  std::string what = output;
  while (!what.empty() && what.back() == '\n')
    what.pop_back();
  row.detail = line + (what.empty() ? "" : "\n" + what);
  try {
    env_.db->add_audit(row);
  } catch (const std::exception&) {
    // The command has happened either way; the daemon's log has the database's complaint.
  }
}

std::string Console::dispatch(const Args& a) {
  const std::string& c = a[0];
  if (c == "help") return kHelp;
  if (c == "halt") return cmd_halt(a);
  if (c == "resume") return cmd_resume(a);
  if (c == "step") return cmd_step(a);
  if (c == "reset") return cmd_reset(a);
  if (c == "mdw") return cmd_md(a, 4);
  if (c == "mdh") return cmd_md(a, 2);
  if (c == "mdb") return cmd_md(a, 1);
  if (c == "mww") return cmd_mw(a, 4);
  if (c == "mwh") return cmd_mw(a, 2);
  if (c == "mwb") return cmd_mw(a, 1);
  if (c == "reg") return cmd_reg(a);
  if (c == "flash") return cmd_flash(a);
  if (c == "stm32f1x" || c == "stm32f2x") return cmd_stm32(a);
  if (c == "adapter") return cmd_adapter(a);
  throw Error(ErrorCategory::usage, "invalid command name \"" + c + "\"",
              "'help' lists the commands");
}

std::string Console::cmd_halt(const Args& a) {
  if (a.size() != 1) usage("halt");
  std::string out;
  with_target([&](ProbeConnection& c) {
    c.target->core().halt();
    out = halt_state(c.target->core());
  });
  return out;
}

std::string Console::cmd_resume(const Args& a) {
  if (a.size() > 2) usage("resume [address]");
  std::optional<std::uint32_t> address;
  if (a.size() == 2) address = parse_u32(a[1], "resume [address]");
  with_target([&](ProbeConnection& c) {
    auto& core = c.target->core();
    if (address) {
      require_halted(core);
      core.write_register(CoreRegister::pc, *address);
    }
    core.resume();
  });
  return "";
}

std::string Console::cmd_step(const Args& a) {
  if (a.size() > 2) usage("step [address]");
  std::optional<std::uint32_t> address;
  if (a.size() == 2) address = parse_u32(a[1], "step [address]");
  std::string out;
  with_target([&](ProbeConnection& c) {
    auto& core = c.target->core();
    require_halted(core);
    if (address) core.write_register(CoreRegister::pc, *address);
    core.step();
    out = halt_state(core);
  });
  return out;
}

std::string Console::cmd_reset(const Args& a) {
  const char* form = "reset [run|halt|init]";
  if (a.size() > 2) usage(form);
  const std::string mode = a.size() == 2 ? a[1] : "run";
  if (mode != "run" && mode != "halt" && mode != "init") usage(form);
  const bool halt = mode != "run";
  audited_ = true;
  std::string out;
  with_target([&](ProbeConnection& c) {
    // A system reset (AIRCR.SYSRESETREQ) resets the peripherals too, as `reset` does on a
    // board without a reset script. "init" has no board script to run here: it halts.
    c.target->core().reset(protocol::ResetKind::sysresetreq, halt);
    if (halt) out = halt_state(c.target->core());
  });
  return out;
}

std::string Console::cmd_md(const Args& a, unsigned width) {
  const std::string form = a[0] + " address [count]";
  if (a.size() < 2 || a.size() > 3) usage(form);
  const std::uint32_t address = parse_u32(a[1], form);
  const std::uint32_t count = a.size() == 3 ? parse_u32(a[2], form) : 1;
  if (count == 0) usage(form);
  // Whole lines of output only up to a screenful of sorts: larger dumps belong in
  // `flash read_bank` or a read job.
  constexpr std::uint64_t kMaxBytes = 64 * 1024;
  const std::uint64_t bytes = std::uint64_t{count} * width;
  if (bytes > kMaxBytes)
    throw Error(ErrorCategory::usage,
                a[0] + ": at most " + std::to_string(kMaxBytes / width) + " items at a time",
                "read larger ranges with 'flash read_bank' or a read job");
  if (address % width)
    throw Error(ErrorCategory::usage, a[0] + ": address " + hex8(address) + " is not aligned to " +
                                          std::to_string(width) + " bytes");
  if (std::uint64_t{address} + bytes > 0x100000000ull)
    throw Error(ErrorCategory::usage, a[0] + ": the range goes past the end of memory");
  std::vector<std::uint8_t> data(bytes);
  with_target([&](ProbeConnection& c) {
    auto& mem = c.target->memory();
    // One item: an access of exactly that size (peripheral registers care). More: a block
    // read, which the MEM-AP does in words.
    if (count == 1) {
      const std::uint32_t v = width == 4   ? mem.read32(address)
                              : width == 2 ? mem.read16(address)
                                           : mem.read8(address);
      for (unsigned i = 0; i < width; ++i)
        data[i] = static_cast<std::uint8_t>(v >> (8 * i));
    } else {
      mem.read(address, data);
    }
  });
  // 32 bytes to a line, as OpenOCD lays out its dumps; items are little-endian.
  std::string out;
  const unsigned per_line = 32 / width;
  char buf[16];
  for (std::uint32_t i = 0; i < count; ++i) {
    if (i % per_line == 0) {
      if (i) out += "\n";
      out += hex8(address + i * width) + ":";
    }
    std::uint32_t v = 0;
    for (unsigned b = 0; b < width; ++b)
      v |= std::uint32_t{data[i * width + b]} << (8 * b);
    std::snprintf(buf, sizeof buf, " %0*x", static_cast<int>(width * 2), v);
    out += buf;
  }
  return out + "\n";
}

std::string Console::cmd_mw(const Args& a, unsigned width) {
  const std::string form = a[0] + " address value [count]";
  if (a.size() < 3 || a.size() > 4) usage(form);
  const std::uint32_t address = parse_u32(a[1], form);
  const std::uint32_t value = parse_u32(a[2], form);
  const std::uint32_t count = a.size() == 4 ? parse_u32(a[3], form) : 1;
  if (count == 0 || std::uint64_t{count} * width > 1024 * 1024) usage(form);
  if (width < 4 && value >> (8 * width))
    throw Error(ErrorCategory::usage, a[0] + ": value " + a[2] + " does not fit in " +
                                          std::to_string(width * 8) + " bits");
  if (address % width)
    throw Error(ErrorCategory::usage, a[0] + ": address " + hex8(address) + " is not aligned to " +
                                          std::to_string(width) + " bytes");
  if (std::uint64_t{address} + std::uint64_t{count} * width > 0x100000000ull)
    throw Error(ErrorCategory::usage, a[0] + ": the range goes past the end of memory");
  audited_ = true;
  with_target([&](ProbeConnection& c) {
    auto& mem = c.target->memory();
    if (count == 1) {
      if (width == 4)
        mem.write32(address, value);
      else if (width == 2)
        mem.write16(address, static_cast<std::uint16_t>(value));
      else
        mem.write8(address, static_cast<std::uint8_t>(value));
      return;
    }
    std::vector<std::uint8_t> fill(std::size_t{count} * width);
    for (std::size_t i = 0; i < fill.size(); ++i)
      fill[i] = static_cast<std::uint8_t>(value >> (8 * (i % width)));
    mem.write(address, fill);
  });
  return "";
}

std::string Console::cmd_reg(const Args& a) {
  const char* form = "reg [name [value]]";
  if (a.size() > 3) usage(form);
  const RegDef* def = nullptr;
  if (a.size() >= 2) {
    for (const auto& d : reg_defs())
      if (a[1] == d.name) def = &d;
    if (!def)
      throw Error(ErrorCategory::usage, "reg: no register named \"" + a[1] + "\"",
                  "'reg' lists them");
  }
  std::optional<std::uint32_t> value;
  if (a.size() == 3) {
    value = parse_u32(a[2], form);
    audited_ = true;
  }
  std::string out;
  with_target([&](ProbeConnection& c) {
    auto& core = c.target->core();
    require_halted(core);
    const bool fpu = core.identity().has_fpu;
    if (def && def->fpu && !fpu)
      throw Error(ErrorCategory::usage, std::string("reg: this core has no ") + def->name);
    if (!def) {
      out = "===== " + core.identity().name + " core registers\n";
      unsigned i = 0;
      for (const auto& d : reg_defs()) {
        if (d.fpu && !fpu) continue;
        out += "(" + std::to_string(i++) + ") " + reg_line(d, read_reg(core, d));
      }
      return;
    }
    if (value) write_reg(core, *def, *value);
    out = reg_line(*def, read_reg(core, *def));
  });
  return out;
}

std::string Console::cmd_adapter(const Args& a) {
  const char* form = "adapter speed [khz]";
  if (a.size() < 2 || a.size() > 3 || a[1] != "speed") usage(form);
  std::optional<std::uint32_t> wanted;
  if (a.size() == 3) {
    wanted = parse_u32(a[2], form);
    if (*wanted == 0) usage(form);
    audited_ = true;
  }
  std::string out;
  with_target([&](ProbeConnection& c) {
    if (wanted) {
      // The probe picks the nearest clock it can make at or below the one asked for.
      speed_khz_ = c.probe->set_speed_khz(*wanted);
      if (speed_khz_ != *wanted)
        out = "Unable to match requested speed " + std::to_string(*wanted) + " kHz, using " +
              std::to_string(speed_khz_) + " kHz\n";
    }
    const std::uint32_t now = speed_khz_ ? speed_khz_ : c.target->speed_khz();
    out += "adapter speed: " + std::to_string(now) + " kHz\n";
  });
  return out;
}

}  // namespace probefarm::server
