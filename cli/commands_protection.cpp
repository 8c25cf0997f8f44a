// option-bytes, protect, unlock: see cli/session.hpp. The option bytes themselves are
// flash/option_bytes.hpp; here they are parsed from the command line and printed.
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/progress.hpp"
#include "cli/session.hpp"
#include "flash/option_bytes.hpp"
#include "probe/bytes.hpp"
#include "probe/error.hpp"

namespace probefarm::cli {
namespace {

using nlohmann::json;

std::vector<flash::ProtectionGroup> protected_groups(const flash::ChipInfo& chip,
                                                     const flash::OptionBytes& ob) {
  std::vector<flash::ProtectionGroup> out;
  for (const auto& g : flash::protection_groups(chip))
    if (flash::group_protected(chip, ob, g)) out.push_back(g);
  return out;
}

json groups_json(const flash::ChipInfo& chip, const flash::OptionBytes& ob) {
  json out = json::array();
  for (const auto& g : protected_groups(chip, ob))
    out.push_back({{"address", g.address}, {"size", g.size}});
  return out;
}

json option_bytes_json(const flash::ChipInfo& chip, const flash::OptionBytes& ob) {
  json fields = json::array();
  json values = json::object();
  for (const auto& f : flash::describe(chip, ob)) {
    fields.push_back(
        {{"key", f.key}, {"value", f.value}, {"meaning", f.meaning}, {"values", f.values}});
    values[f.key] = f.value;
  }
  return {{"rdp_level", ob.rdp_level},
          {"values", values},
          {"fields", fields},
          {"write_protected", groups_json(chip, ob)}};
}

void print_fields(const flash::ChipInfo& chip, const flash::OptionBytes& ob) {
  for (const auto& f : flash::describe(chip, ob)) {
    std::printf("  %-13s %-11s %s\n", f.key.c_str(), f.shown.c_str(), f.meaning.c_str());
  }
}

// "0x08000000+16K, 0x08004000+16K" or "none".
std::string ranges_text(const std::vector<flash::ProtectionGroup>& groups) {
  std::string out;
  for (const auto& g : groups) {
    if (!out.empty()) out += ", ";
    out += probe::hex32(g.address) + "+" + flash::size_text(g.size);
  }
  return out.empty() ? "none" : out;
}

}  // namespace

int cmd_option_bytes(const Options& o) {
  Session s = attach(o, true);
  flash::Target& t = *s.target;
  const flash::ChipInfo& chip = t.chip();
  const flash::OptionBytes current = flash::read_option_bytes(t);
  if (o.option_assignments.empty()) {
    if (o.json) {
      print_json({{"ok", true},
                  {"chip", chip_json(s)},
                  {"option_bytes", option_bytes_json(chip, current)}});
      return 0;
    }
    std::printf("option bytes of %s (read protection level %u)\n", chip.name.c_str(),
                current.rdp_level);
    print_fields(chip, current);
    return 0;
  }

  // Every assignment is checked before anything is written.
  flash::OptionBytes wanted = current;
  flash::OptionWriteOptions options;
  for (const auto& kv : o.option_assignments) {
    const auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    flash::apply_assignment(chip, wanted, key, value);
    if (wanted.rdp_level == 2) options.allow_permanent_level2 = true;  // "2-permanent" only
  }
  const flash::OptionWriteReport rep = flash::write_option_bytes(t, wanted, options);
  const bool changed = !rep.reload.empty();
  if (o.json) {
    print_json({{"ok", true},
                {"changed", changed},
                {"reload", rep.reload},
                {"before", option_bytes_json(chip, rep.before)},
                {"option_bytes", option_bytes_json(chip, rep.after)}});
    return 0;
  }
  if (!changed) {
    std::printf("option bytes already hold these values; nothing written\n");
    return 0;
  }
  const auto before = flash::describe(chip, rep.before);
  const auto after = flash::describe(chip, rep.after);
  for (std::size_t i = 0; i < after.size(); ++i) {
    if (before[i].value == after[i].value) continue;
    std::printf("  %-13s %s -> %s  %s\n", after[i].key.c_str(), before[i].shown.c_str(),
                after[i].shown.c_str(), after[i].meaning.c_str());
  }
  std::printf("option bytes written, reloaded by %s and read back: they match\n",
              rep.reload.c_str());
  return 0;
}

int cmd_protect(const Options& o) {
  Session s = attach(o, true);
  flash::Target& t = *s.target;
  const flash::ChipInfo& chip = t.chip();
  // Checked before anything is read or written: a range must cover whole groups.
  const auto groups = flash::groups_in_range(chip, o.region_address, o.region_size);
  const flash::OptionBytes current = flash::read_option_bytes(t);
  flash::OptionBytes wanted = current;
  for (const auto& g : groups)
    flash::set_group_protected(chip, wanted, g, o.protect_set);
  const flash::OptionWriteReport rep = flash::write_option_bytes(t, wanted);
  const bool changed = !rep.reload.empty();
  const std::uint32_t address = groups.front().address;
  const std::uint32_t size = groups.back().address + groups.back().size - address;
  if (o.json) {
    print_json({{"ok", true},
                {"action", o.protect_set ? "set" : "clear"},
                {"address", address},
                {"size", size},
                {"changed", changed},
                {"reload", rep.reload},
                {"write_protected", groups_json(chip, rep.after)}});
    return 0;
  }
  const std::string range = probe::hex32(address) + "+" + flash::size_text(size);
  if (!changed) {
    std::printf("write protection of %s is already %s; nothing written\n", range.c_str(),
                o.protect_set ? "set" : "clear");
  } else {
    std::printf("write protection %s on %s (option bytes reloaded by %s and read back)\n",
                o.protect_set ? "set" : "cleared", range.c_str(), rep.reload.c_str());
  }
  std::printf("write-protected now: %s\n", ranges_text(protected_groups(chip, rep.after)).c_str());
  return 0;
}

int cmd_unlock(const Options& o) {
  Session s = attach(o, true);
  flash::Target& t = *s.target;
  const flash::ChipInfo& chip = t.chip();
  const bool draw = o.progress && !o.json && ::isatty(STDERR_FILENO);
  bool drawn = false;
  auto progress = [&](std::uint32_t elapsed_ms, std::uint32_t expected_ms) {
    if (!draw) return;
    std::fprintf(stderr, "\rmass erase (RDP 1 -> 0): %.1f s of about %.1f s ", elapsed_ms / 1000.0,
                 expected_ms / 1000.0);
    std::fflush(stderr);
    drawn = true;
  };
  note(o, "removing read protection of %s: the chip mass-erases its flash (this takes a while)",
       chip.name.c_str());
  const flash::UnlockReport rep = flash::unlock_read_protection(t, progress);
  if (drawn) std::fputc('\n', stderr);
  if (rep.changed && rep.flash_readable && !rep.flash_blank) {
    throw Error(
        ErrorCategory::verify,
        "read protection was removed but the flash of " + chip.name + " is not blank afterwards",
        "run `probefarm erase --all`, then check with `probefarm read`");
  }
  if (o.json) {
    print_json({{"ok", true},
                {"changed", rep.changed},
                {"rdp_level_before", rep.level_before},
                {"rdp_level", 0},
                {"mass_erased", rep.changed},
                {"reload", rep.reload},
                {"flash_readable", rep.flash_readable},
                {"flash_blank", rep.flash_blank}});
    return 0;
  }
  if (!rep.changed) {
    std::printf("read protection is already level 0 on %s; nothing changed\n", chip.name.c_str());
    return 0;
  }
  std::printf("read protection removed: level %u -> 0; the chip was mass-erased\n",
              rep.level_before);
  std::printf("option bytes reloaded by %s", rep.reload.c_str());
  if (rep.flash_readable) {
    std::printf("; flash checked blank on the target\n");
  } else {
    std::printf(
        "\nnote: the flash is still shut to the debugger until a power-on reset: "
        "power-cycle the board\n");
  }
  return 0;
}

}  // namespace probefarm::cli
