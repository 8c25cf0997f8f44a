// The GDB server's queries that are not about execution: qXfer documents, `monitor`
// commands (qRcmd) and flash programming (vFlashErase/vFlashWrite/vFlashDone, GDB manual
// "Packets"), which goes through the engine's flash::Programmer like a job does.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "flash/image.hpp"
#include "flash/programmer.hpp"
#include "flash/target.hpp"
#include "probe/error.hpp"
#include "server/gdb_session.hpp"
#include "server/job_runner.hpp"

namespace probefarm::server::gdb_detail {
namespace {

// "qXfer:<object>:read:<annex>:<offset>,<length>" answers with a slice: 'm' when more
// follows, 'l' for the last one ("General Query Packets", qXfer).
std::string slice(const std::string& document, std::string_view range) {
  const auto parts = rsp::split(range, ',');
  if (parts.size() != 2) return error_reply();
  auto offset = rsp::parse_number(parts[0]);
  auto length = rsp::parse_number(parts[1]);
  if (!offset || !length) return error_reply();
  if (*offset >= document.size()) return "l";
  // Escaping may double a byte: stay within the packet size.
  const std::size_t n =
      std::min<std::size_t>({*length, document.size() - *offset, kPacketSize / 2 - 8});
  const bool last = *offset + n >= document.size();
  return (last ? "l" : "m") + rsp::escape_binary(std::string_view(document).substr(*offset, n));
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
    ++i;
  return s.substr(i);
}

constexpr const char* kMonitorHelp =
    "monitor commands:\n"
    "  reset [run|halt|init]  system reset (SYSRESETREQ); halt/init stop at the reset vector\n"
    "  halt                   halt the core\n"
    "  resume                 let the core run (GDB still thinks it is stopped)\n"
    "  help                   this list\n";

}  // namespace

std::string Session::xfer(std::string_view p) {
  // qXfer:features:read:target.xml:off,len / qXfer:memory-map:read::off,len
  const auto parts = rsp::split(p, ':');
  if (parts.size() != 5 || parts[2] != "read") return "";
  if (parts[1] == "features") {
    if (parts[3] != "target.xml") return "E00";  // no such annex
    return slice(gdb_target_xml(fpu_), parts[4]);
  }
  if (parts[1] == "memory-map") return slice(gdb_memory_map_xml(chip_), parts[4]);
  return "";
}

std::string Session::monitor(std::string_view hex) {
  auto bytes = rsp::from_hex(hex);
  if (!bytes) return error_reply();
  const std::string command = trim(std::string(bytes->begin(), bytes->end()));
  std::string output;
  if (options_.monitor) {
    output = options_.monitor(command);
    if (session_.closed()) throw Error(ErrorCategory::probe_io, "the session ended");
    if (!output.empty()) send("O" + rsp::to_hex(output));
    return "OK";
  }
  try {
    run([&](ProbeConnection& c) {
      auto& core = c.target->core();
      if (command == "reset" || command == "reset run") {
        core.reset(protocol::ResetKind::sysresetreq, false);
        output = "target reset, running\n";
      } else if (command == "reset halt" || command == "reset init") {
        core.reset(protocol::ResetKind::sysresetreq, true);
        char line[64];
        std::snprintf(line, sizeof line, "target reset, halted at pc 0x%08x\n",
                      core.read_register(protocol::CoreRegister::pc));
        output = line;
      } else if (command == "halt") {
        core.halt();
        output = "target halted\n";
      } else if (command == "resume") {
        core.resume();
        output = "target running\n";
      } else if (command == "help" || command.empty()) {
        output = kMonitorHelp;
      } else {
        output = "invalid command name \"" + command + "\"\n" + kMonitorHelp;
      }
    });
  } catch (const Error& e) {
    if (session_.closed()) throw;
    output = std::string(e.message()) + (e.hint().empty() ? "" : " (" + e.hint() + ")") + "\n";
  }
  // "qRcmd": output as O packets, then OK.
  if (!output.empty()) send("O" + rsp::to_hex(output));
  return "OK";
}

std::string Session::flash_erase(std::string_view args) {
  const auto parts = rsp::split(args, ',');
  if (parts.size() != 2) return error_reply();
  auto address = rsp::parse_number(parts[0]);
  auto length = rsp::parse_number(parts[1]);
  if (!address || !length || *length == 0) return error_reply();
  // Whole sectors only: GDB rounds to the memory map's blocksize.
  const int first = chip_.sector_index(*address);
  const int last = chip_.sector_index(*address + *length - 1);
  if (first < 0 || last < 0 || chip_.sectors[first].address != *address ||
      chip_.sectors[last].end() != std::uint64_t{*address} + *length) {
    last_error_ = "vFlashErase outside the flash or not on sector boundaries";
    return error_reply();
  }
  flash_erases_.emplace_back(*address, *length);
  return "OK";
}

std::string Session::flash_write(std::string_view args) {
  const auto colon = args.find(':');
  if (colon == std::string_view::npos) return error_reply();
  auto address = rsp::parse_number(args.substr(0, colon));
  if (!address) return error_reply();
  std::vector<std::uint8_t> data = rsp::unescape_binary(args.substr(colon + 1));
  if (data.empty()) return "OK";
  if (chip_.sector_index(*address) < 0 ||
      chip_.sector_index(static_cast<std::uint32_t>(*address + data.size() - 1)) < 0) {
    last_error_ = "vFlashWrite outside the flash";
    return "E.memtype";  // "Packets", vFlashWrite: not flash memory
  }
  auto& slot = flash_writes_[*address];
  if (slot.size() < data.size()) slot.resize(data.size());
  std::copy(data.begin(), data.end(), slot.begin());
  return "OK";
}

std::string Session::flash_done() {
  // The writes as one Image: sorted, overlapping or touching writes merged.
  flash::Image image;
  image.name = "gdb load";
  for (auto& [address, data] : flash_writes_) {
    if (!image.segments.empty() && address <= image.segments.back().end()) {
      auto& seg = image.segments.back();
      const std::size_t offset = address - seg.address;
      if (seg.data.size() < offset + data.size()) seg.data.resize(offset + data.size());
      std::copy(data.begin(), data.end(), seg.data.begin() + static_cast<std::ptrdiff_t>(offset));
    } else {
      image.segments.push_back({address, std::move(data)});
    }
  }
  const auto erases = std::move(flash_erases_);
  flash_writes_.clear();
  flash_erases_.clear();
  std::uint64_t bytes = 0;
  for (const auto& s : image.segments)
    bytes += s.data.size();
  // A sector GDB erased that gets no data is erased on its own; the others are left to
  // the programmer's plan, which erases what it must and skips what already matches.
  auto touched = [&](const flash::FlashSector& sector) {
    return std::any_of(image.segments.begin(), image.segments.end(), [&](const auto& s) {
      return s.address < sector.end() && s.end() > sector.address;
    });
  };
  try {
    run(
        [&](ProbeConnection& c) {
          flash::Programmer programmer(*c.target);
          const flash::ChipInfo& chip = c.target->chip();
          if (!image.segments.empty()) {
            flash::check_fits(image, chip.memory(), chip.flash_size);
            flash::FlashOptions fo;
            // GDB's erase leaves the rest of an erased sector blank, not restored.
            fo.keep = false;
            programmer.flash(image, fo);
          }
          for (const auto& [address, length] : erases)
            for (const auto& sector : chip.sectors)
              if (sector.address >= address && sector.end() <= std::uint64_t{address} + length &&
                  !touched(sector))
                programmer.erase(sector.address, sector.size);
        },
        std::chrono::minutes(10));
  } catch (const Error& e) {
    if (session_.closed()) throw;
    last_error_ = e.what();
    return error_reply();
  }
  summary_.bytes_loaded += bytes;
  return "OK";
}

}  // namespace probefarm::server::gdb_detail
