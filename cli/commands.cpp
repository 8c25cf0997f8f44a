#include "cli/commands.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/progress.hpp"
#include "cli/remote.hpp"
#include "cli/session.hpp"
#include "flash/chip.hpp"
#include "flash/image.hpp"
#include "flash/option_bytes.hpp"
#include "flash/programmer.hpp"
#include "flash/target.hpp"
#include "probe/bytes.hpp"
#include "probe/dap_probe.hpp"
#include "probe/discovery.hpp"
#include "probe/hotplug.hpp"
#include "probe/usb_libusb.hpp"

namespace probefarm::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

flash::Image load(const Options& o) {
  return flash::load_image_file(o.image_path, o.format, o.address);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- list -------------------------------------------------------------------------------

int cmd_list(const Options& o) {
  if (o.watch) {
    probe::ProbeWatcher watcher(probe::default_usb_context());
    for (const auto& p : watcher.current())
      std::printf("present  %s  %s  %s\n", p.serial.c_str(),
                  std::string(probe::probe_kind_name(p.kind)).c_str(), p.product.c_str());
    std::fflush(stdout);
    for (;;) {
      for (const auto& e : watcher.poll(std::chrono::milliseconds(500))) {
        std::printf("%s  %s  %s  %s\n", e.arrived ? "arrived" : "left   ", e.probe.serial.c_str(),
                    std::string(probe::probe_kind_name(e.probe.kind)).c_str(),
                    e.probe.product.c_str());
        std::fflush(stdout);
      }
    }
  }
  auto list = probe::list_probes();
  // The firmware version needs a word with the probe; a probe in use elsewhere keeps a note.
  for (auto& p : list.probes) {
    try {
      auto dp = probe::open_dap_probe(*probe::default_usb_context(), p);
      p.firmware_version = dp->info().firmware_version;
    } catch (const Error& e) {
      if (p.note.empty()) p.note = std::string(e.message());
    }
  }
  if (o.json) {
    json probes = json::array();
    for (const auto& p : list.probes)
      probes.push_back(probe_json(p));
    print_json({{"ok", true}, {"probes", probes}, {"warnings", list.warnings}});
    return 0;
  }
  if (list.probes.empty()) std::printf("no probes attached\n");
  for (const auto& p : list.probes) {
    std::printf("%-26s %-13s %-28s %s%s%s\n", p.serial.c_str(),
                std::string(probe::probe_kind_name(p.kind)).c_str(),
                (p.vendor + " " + p.product).c_str(), p.firmware_version.c_str(),
                p.note.empty() ? "" : "  note: ", p.note.c_str());
  }
  for (const auto& w : list.warnings)
    std::fprintf(stderr, "warning: %s\n", w.c_str());
  return 0;
}

// ---- info -------------------------------------------------------------------------------

int cmd_info(const Options& o) {
  Session s = attach(o, false);
  const auto& c = s.target->chip();
  int mv = s.probe->target_voltage_mv();
  // Read protection from the option registers, which a debugger may read at any level.
  const flash::OptionBytes ob = flash::read_option_bytes(*s.target);
  const char* rdp_text[] = {"level 0 (none)", "level 1 (flash shut to the debugger)",
                            "level 2 (permanent)"};
  if (o.json) {
    json chip = chip_json(s);
    chip["rdp_level"] = ob.rdp_level;
    json j = {{"ok", true},
              {"rdp_level", ob.rdp_level},
              {"probe", probe_json(s.probe->info())},
              {"speed_khz", s.target->speed_khz()},
              {"target_voltage_mv", mv < 0 ? json(nullptr) : json(mv)},
              {"dpidr", s.target->dap().dpidr()},
              {"chip", chip}};
    print_json(j);
    return 0;
  }
  const auto& pi = s.probe->info();
  std::printf("probe     %s  %s  (%s %s, firmware %s)\n", pi.serial.c_str(),
              std::string(probe::probe_kind_name(pi.kind)).c_str(), pi.vendor.c_str(),
              pi.product.c_str(), pi.firmware_version.c_str());
  std::printf("clock     %u kHz\n", s.target->speed_khz());
  if (mv >= 0) std::printf("target    %.2f V\n", mv / 1000.0);
  std::printf("DPIDR     %s\n", probe::hex32(s.target->dap().dpidr()).c_str());
  std::printf("core      %s\n", c.core.c_str());
  std::printf("chip      %s (DEV_ID 0x%03X, REV_ID 0x%04X)\n", c.name.c_str(), c.dev_id, c.rev_id);
  std::printf("flash     %s at %s, %zu sectors\n", format_bytes(c.flash_size).c_str(),
              probe::hex32(c.flash_base).c_str(), c.sectors.size());
  std::printf("ram       %s at %s\n", format_bytes(c.ram_size).c_str(),
              probe::hex32(c.ram_base).c_str());
  std::printf("RDP       %s\n", rdp_text[ob.rdp_level > 2 ? 2 : ob.rdp_level]);
  if (ob.rdp_level == 1)
    std::printf("          `probefarm unlock --yes` removes it and erases the chip\n");
  return 0;
}

// ---- flash / verify ---------------------------------------------------------------------

std::uint64_t image_bytes(const flash::Image& image) {
  std::uint64_t n = 0;
  for (const auto& seg : image.segments)
    n += seg.data.size();
  return n;
}

int cmd_flash(const Options& o) {
  // A malformed image is rejected before any probe is opened.
  flash::Image image = load(o);
  Session s = attach(o, true);
  const auto& chip = s.target->chip();
  auto ranges = chip.memory();
  flash::check_fits(image, ranges, chip.flash_size);

  flash::FlashOptions fo;
  fo.verify = o.verify;
  fo.readback_verify = o.readback;
  fo.erase = o.erase_mode;
  fo.skip_unchanged = o.skip_unchanged;
  fo.supply_mv = o.supply_mv;
  ProgressBar bar(o.progress && !o.json);
  const auto start = Clock::now();
  flash::FlashReport r = flash::Programmer(*s.target, [&](const flash::Progress& p) {
                           bar.update(p);
                         }).flash(image, fo);
  bar.finish();
  const double elapsed = seconds_since(start);
  if (o.reset_after) s.target->core().reset(protocol::ResetKind::sysresetreq, false);

  const char* verified = !r.verified  ? "not verified (--no-verify)"
                         : o.readback ? "verified by read-back"
                                      : "verified (CRC-32 on target)";
  if (o.json) {
    print_json({{"ok", true},
                {"image",
                 {{"name", image.name},
                  {"format", flash::format_name(image.format)},
                  {"bytes", image_bytes(image)}}},
                {"probe", s.info.serial},
                {"chip", chip_json(s)},
                {"mass_erase", r.plan.mass_erase},
                {"sectors_erased", r.sectors_erased},
                {"sectors_skipped", r.sectors_skipped},
                {"bytes_programmed", r.bytes_programmed},
                {"verified", r.verified},
                {"readback", o.readback},
                {"reset", o.reset_after},
                {"seconds", elapsed}});
    return 0;
  }
  std::printf("flashed %s (%s, %s) to %s on %s in %.2f s\n", image.name.c_str(),
              std::string(flash::format_name(image.format)).c_str(),
              format_bytes(image_bytes(image)).c_str(), chip.name.c_str(), s.info.serial.c_str(),
              elapsed);
  std::printf("  %s%u sector(s) erased, %u unchanged and skipped, %s programmed; %s\n",
              r.plan.mass_erase ? "mass erase, " : "", r.sectors_erased, r.sectors_skipped,
              format_bytes(r.bytes_programmed).c_str(), verified);
  std::printf("  %s\n", o.reset_after ? "target reset and running"
                                      : "target halted (use --reset to run the new firmware)");
  return 0;
}

int cmd_verify(const Options& o) {
  flash::Image image = load(o);
  Session s = attach(o, true);
  flash::check_fits(image, s.target->chip().memory(), s.target->chip().flash_size);
  ProgressBar bar(o.progress && !o.json);
  flash::Programmer(*s.target, [&](const flash::Progress& p) {
    bar.update(p);
  }).verify(image, o.readback);
  bar.finish();
  if (o.json) {
    print_json({{"ok", true},
                {"image", image.name},
                {"bytes", image_bytes(image)},
                {"readback", o.readback},
                {"probe", s.info.serial}});
  } else {
    std::printf("%s matches flash on %s (%s, %s)\n", image.name.c_str(), s.info.serial.c_str(),
                format_bytes(image_bytes(image)).c_str(),
                o.readback ? "read back" : "CRC-32 on target");
  }
  return 0;
}

// ---- read / erase / reset ---------------------------------------------------------------

int cmd_read(const Options& o) {
  // Memory reads work with the core running: the firmware keeps running.
  Session s = attach(o, false);
  std::vector<std::uint8_t> data(o.region_size);
  ProgressBar bar(o.progress && !o.json);
  flash::Programmer(*s.target, [&](const flash::Progress& p) {
    bar.update(p);
  }).read(o.region_address, data);
  bar.finish();
  // Written beside the target and renamed, so an interrupted read never leaves a short file
  // under the name the user asked for.
  const std::filesystem::path out = o.out_path;
  const std::filesystem::path tmp = out.string() + ".part";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!f.flush())
      throw Error(ErrorCategory::usage, "cannot write " + tmp.string(),
                  "check the directory exists and is writable");
  }
  std::filesystem::rename(tmp, out);
  if (o.json)
    print_json({{"ok", true},
                {"address", o.region_address},
                {"size", o.region_size},
                {"file", o.out_path}});
  else
    std::printf("read %s from %s into %s\n", format_bytes(o.region_size).c_str(),
                probe::hex32(o.region_address).c_str(), o.out_path.c_str());
  return 0;
}

int cmd_erase(const Options& o) {
  Session s = attach(o, true);
  ProgressBar bar(o.progress && !o.json);
  flash::Programmer programmer(*s.target, [&](const flash::Progress& p) { bar.update(p); });
  if (o.erase_all)
    programmer.mass_erase();
  else
    programmer.erase(o.region_address, o.region_size);
  bar.finish();
  if (o.reset_after) s.target->core().reset(protocol::ResetKind::sysresetreq, false);
  if (o.json)
    print_json({{"ok", true},
                {"all", o.erase_all},
                {"address", o.region_address},
                {"size", o.region_size}});
  else if (o.erase_all)
    std::printf("mass erase of %s done\n", s.target->chip().name.c_str());
  else
    std::printf("erased %s at %s\n", format_bytes(o.region_size).c_str(),
                probe::hex32(o.region_address).c_str());
  return 0;
}

int cmd_reset(const Options& o) {
  Session s = attach(o, false);
  auto kind = o.reset_kind == "vectreset"  ? protocol::ResetKind::vectreset
              : o.reset_kind == "hardware" ? protocol::ResetKind::hardware
                                           : protocol::ResetKind::sysresetreq;
  s.target->core().reset(kind, o.halt);
  std::uint32_t pc = o.halt ? s.target->core().read_register(protocol::CoreRegister::pc) : 0;
  if (o.json)
    print_json({{"ok", true},
                {"kind", o.reset_kind},
                {"halted", o.halt},
                {"pc", o.halt ? json(pc) : json(nullptr)}});
  else if (o.halt)
    std::printf("reset (%s), halted at %s\n", o.reset_kind.c_str(), probe::hex32(pc).c_str());
  else
    std::printf("reset (%s), running\n", o.reset_kind.c_str());
  return 0;
}

}  // namespace

int run_command(const Options& o) {
  if (!o.server.empty()) return run_remote(o);
  switch (o.command) {
    case Command::list:
      return cmd_list(o);
    case Command::info:
      return cmd_info(o);
    case Command::flash:
      return cmd_flash(o);
    case Command::verify:
      return cmd_verify(o);
    case Command::read:
      return cmd_read(o);
    case Command::erase:
      return cmd_erase(o);
    case Command::reset:
      return cmd_reset(o);
    case Command::option_bytes:
      return cmd_option_bytes(o);
    case Command::protect:
      return cmd_protect(o);
    case Command::unlock:
      return cmd_unlock(o);
    case Command::version:
      std::printf("probefarm 0.1.0\n");
      return 0;
    case Command::help:
      std::fputs(usage_text(), stdout);
      return 0;
    case Command::jobs:
    case Command::cancel:
    case Command::audit:
    case Command::images:
    case Command::counters:
    case Command::console:
    case Command::gdb:
      throw Error(ErrorCategory::usage, "this command talks to a probefarmd: add --server URL");
  }
  return 0;
}

}  // namespace probefarm::cli
