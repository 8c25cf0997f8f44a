// The option-byte fields of each family, KEY=VALUE parsing, and write-protection groups.
// Register sequences are in option_bytes_io.cpp.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "flash/option_bytes.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

std::string hex(std::uint32_t value, int digits = 8) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*X", digits, value);
  return buf;
}

std::string upper(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Which member of OptionBytes a field lives in.
enum class Word { user, data0, data1, wrp, optcr1 };

struct FieldDef {
  const char* key;
  Word word;
  unsigned shift, width;
  // Meaning of each value for fields of 1-2 bits (index = value); nullptr: a number.
  const char* meanings[4];
};

std::uint32_t& word_of(OptionBytes& ob, Word w) {
  switch (w) {
    case Word::user:
      return ob.user;
    case Word::data0:
      return ob.data0;
    case Word::data1:
      return ob.data1;
    case Word::wrp:
      return ob.wrp;
    case Word::optcr1:
      break;
  }
  return ob.optcr1;
}

std::uint32_t mask_of(unsigned width) {
  return width >= 32 ? 0xFFFFFFFFu : (1u << width) - 1;
}

// PM0075 2.5 / RM0316 4.5 USER byte bits 0-2, the same on the F1 and F3.
constexpr FieldDef kF1WdgSw = {
    "WDG_SW", Word::user, 0, 1, {"hardware watchdog", "software watchdog"}};
constexpr FieldDef kF1RstStop = {"nRST_STOP",
                                 Word::user,
                                 1,
                                 1,
                                 {"reset when entering Stop mode", "no reset entering Stop mode"}};
constexpr FieldDef kF1RstStdby = {
    "nRST_STDBY",
    Word::user,
    2,
    1,
    {"reset when entering Standby mode", "no reset entering Standby mode"}};

// PM0075 2.5 "Option byte description" USER byte (F1).
const std::vector<FieldDef>& f1_fields() {
  static const std::vector<FieldDef> k = {
      kF1WdgSw,
      kF1RstStop,
      kF1RstStdby,
      {"DATA0", Word::data0, 0, 8, {}},
      {"DATA1", Word::data1, 0, 8, {}},
      {"WRP", Word::wrp, 0, 32, {}},
  };
  return k;
}

// RM0316 4.5 "Option byte description" USER byte (F3): the F1 bits plus nBOOT1 (bit 4),
// VDDA_MONITOR (bit 5) and SRAM_PE (bit 6).
const std::vector<FieldDef>& f3_fields() {
  static const std::vector<FieldDef> k = {
      kF1WdgSw,
      kF1RstStop,
      kF1RstStdby,
      {"nBOOT1", Word::user, 4, 1, {"BOOT0=1 boots embedded SRAM", "BOOT0=1 boots system memory"}},
      {"VDDA_MONITOR",
       Word::user,
       5,
       1,
       {"VDDA power supply supervisor off", "VDDA power supply supervisor on"}},
      {"SRAM_PE", Word::user, 6, 1, {"SRAM parity check enabled", "SRAM parity check disabled"}},
      {"DATA0", Word::data0, 0, 8, {}},
      {"DATA1", Word::data1, 0, 8, {}},
      {"WRP", Word::wrp, 0, 32, {}},
  };
  return k;
}

// RM0090 3.9.6 FLASH_OPTCR BOR_LEV [3:2] (F4; RM0385 3.7.6 on the F7 is the same).
constexpr FieldDef kBorLev = {"BOR_LEV",
                              Word::user,
                              2,
                              2,
                              {"BOR level 3 (2.70-3.60 V)", "BOR level 2 (2.40-2.70 V)",
                               "BOR level 1 (2.10-2.40 V)", "BOR off (POR/PDR only)"}};

// RM0090 3.9.6 / RM0385 3.7.6 FLASH_OPTCR bits 6 and 7, the same on the F4 and F7.
constexpr FieldDef kRstStop = {"nRST_STOP",
                               Word::user,
                               6,
                               1,
                               {"reset when entering Stop mode", "no reset entering Stop mode"}};
constexpr FieldDef kRstStdby = {
    "nRST_STDBY",
    Word::user,
    7,
    1,
    {"reset when entering Standby mode", "no reset entering Standby mode"}};

// RM0090 3.9.6 FLASH_OPTCR (F40x/41x): BOR_LEV, WDG_SW, nRST_STOP, nRST_STDBY, nWRP[11:0].
const std::vector<FieldDef>& f4_fields() {
  static const std::vector<FieldDef> k = {
      kBorLev,
      {"WDG_SW", Word::user, 5, 1, {"hardware watchdog", "software watchdog"}},
      kRstStop,
      kRstStdby,
      {"nWRP", Word::wrp, 0, 12, {}},
  };
  return k;
}

// RM0385 3.7.6 FLASH_OPTCR (F74x/75x): BOR_LEV, WWDG_SW 4, IWDG_SW 5, nRST_STOP 6,
// nRST_STDBY 7, nWRP[7:0] [23:16], IWDG_STDBY 30, IWDG_STOP 31; 3.7.7 FLASH_OPTCR1:
// BOOT_ADD0 [15:0], BOOT_ADD1 [31:16] (boot address [29:14]).
const std::vector<FieldDef>& f7_fields() {
  static const std::vector<FieldDef> k = {
      kBorLev,
      {"WWDG_SW", Word::user, 4, 1, {"hardware window watchdog", "software window watchdog"}},
      {"IWDG_SW",
       Word::user,
       5,
       1,
       {"hardware independent watchdog", "software independent watchdog"}},
      kRstStop,
      kRstStdby,
      {"IWDG_STDBY",
       Word::user,
       30,
       1,
       {"IWDG frozen in Standby mode", "IWDG running in Standby mode"}},
      {"IWDG_STOP", Word::user, 31, 1, {"IWDG frozen in Stop mode", "IWDG running in Stop mode"}},
      {"nWRP", Word::wrp, 0, 8, {}},
      {"BOOT_ADD0", Word::optcr1, 0, 16, {}},
      {"BOOT_ADD1", Word::optcr1, 16, 16, {}},
  };
  return k;
}

const std::vector<FieldDef>& fields_of(const ChipInfo& chip) {
  switch (chip.family) {
    case Family::f1:
      return f1_fields();
    case Family::f3:
      return f3_fields();
    case Family::f4:
      return f4_fields();
    case Family::f7:
      break;
  }
  return f7_fields();
}

std::string values_text(const FieldDef& f) {
  if (f.meanings[0] != nullptr) {
    std::string out;
    for (unsigned v = 0; v < (1u << f.width); ++v)
      out += (v ? "|" : "") + std::to_string(v);
    return out;
  }
  return "0.." + hex(mask_of(f.width), static_cast<int>((f.width + 3) / 4));
}

std::string field_meaning(const ChipInfo& chip, const FieldDef& f, std::uint32_t v) {
  if (f.meanings[0] != nullptr) return f.meanings[v & 3];
  const std::string key = f.key;
  if (key == "WRP" || key == "nWRP") {
    // Name the protected groups.
    OptionBytes ob;
    ob.wrp = v;
    if (chip.style == FlashStyle::f4) ob.optcr1 = 0xFFFFFFFF;
    std::string list;
    for (const auto& g : protection_groups(chip)) {
      if (g.bit >= 16 && chip.bank2_first != 0) continue;
      if (!group_protected(chip, ob, g)) continue;
      if (!list.empty()) list += ", ";
      list += hex(g.address) + "+" + size_text(g.size);
    }
    return list.empty() ? chip.style == FlashStyle::f1 ? "no page write-protected"
                                                       : "no sector write-protected"
                        : "write-protected: " + list;
  }
  if (key == "BOOT_ADD0" || key == "BOOT_ADD1") return "boot address " + hex(v << 14);
  return "user data byte";
}

std::string keys_text(const ChipInfo& chip) {
  std::string out = "RDP";
  for (const auto& f : fields_of(chip))
    out += std::string(", ") + f.key;
  return out;
}

std::uint32_t parse_value(const std::string& text, bool& ok) {
  ok = false;
  if (text.empty()) return 0;
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used, 0);
  } catch (const std::exception&) {
    return 0;
  }
  if (used != text.size() || v > 0xFFFFFFFFull) return 0;
  ok = true;
  return static_cast<std::uint32_t>(v);
}

}  // namespace

std::string size_text(std::uint32_t bytes) {
  if (bytes != 0 && bytes % (1024 * 1024) == 0) return std::to_string(bytes / (1024 * 1024)) + "M";
  if (bytes != 0 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + "K";
  return std::to_string(bytes);
}

std::uint32_t rdp_value(const ChipInfo& chip, unsigned level) {
  if (chip.family == Family::f1) return level == 0 ? 0xA5 : 0x00;  // PM0075 2.5: no level 2
  return level == 0 ? 0xAA : level == 2 ? 0xCC : 0x55;
}

unsigned rdp_level_of(const ChipInfo& chip, std::uint32_t rdp) {
  if (chip.family == Family::f1) return rdp == 0xA5 ? 0 : 1;
  return rdp == 0xAA ? 0 : rdp == 0xCC ? 2 : 1;
}

std::vector<OptionField> describe(const ChipInfo& chip, const OptionBytes& ob) {
  std::vector<OptionField> out;
  const char* level_text[] = {"level 0: no read protection",
                              "level 1: the debugger cannot read or write the flash",
                              "level 2: debugging disabled for good"};
  out.push_back({"RDP", ob.rdp, hex(ob.rdp, 2), level_text[std::min(ob.rdp_level, 2u)],
                 chip.family == Family::f1 ? "0|1" : "0|1|2-permanent"});
  OptionBytes copy = ob;
  for (const auto& f : fields_of(chip)) {
    const std::uint32_t v = (word_of(copy, f.word) >> f.shift) & mask_of(f.width);
    const std::string shown =
        f.width <= 2 ? std::to_string(v) : hex(v, static_cast<int>((f.width + 3) / 4));
    out.push_back({f.key, v, shown, field_meaning(chip, f, v), values_text(f)});
  }
  return out;
}

void apply_assignment(const ChipInfo& chip, OptionBytes& ob, const std::string& key,
                      const std::string& value) {
  const std::string k = upper(key);
  if (k == "RDP") {
    const std::string v = upper(value);
    const std::string valid = chip.family == Family::f1 ? "0 or 1" : "0, 1 or 2-permanent";
    if (v == "2" || v == "0XCC") {
      throw Error(ErrorCategory::usage,
                  "RDP=" + value +
                      " would set read protection level 2, which disables the "
                      "debug port and the option bytes for good; nothing was written",
                  chip.family == Family::f1
                      ? "the STM32F1 has no level 2 (PM0075 2.4.1); valid: RDP=0 or RDP=1"
                      : "if you really mean it, write RDP=2-permanent");
    }
    unsigned level = 0;
    if (v == "0") {
      level = 0;
    } else if (v == "1") {
      level = 1;
    } else if (v == "2-PERMANENT" && chip.family != Family::f1) {
      level = 2;
    } else {
      throw Error(ErrorCategory::usage, "RDP=" + value + ": not a read protection level",
                  "valid values for " + chip.name + ": RDP=" + valid + "; nothing was written");
    }
    if (level == 0 && ob.rdp_level != 0) {
      throw Error(ErrorCategory::usage,
                  "RDP=0 on a read-protected chip mass-erases the whole flash; nothing was "
                  "written",
                  "`probefarm unlock --yes` removes read protection and erases the chip");
    }
    if (level == rdp_level_of(chip, ob.rdp)) return;  // keep the raw value of the level
    ob.rdp = rdp_value(chip, level);
    ob.rdp_level = level;
    return;
  }
  for (const auto& f : fields_of(chip)) {
    if (upper(f.key) != k) continue;
    bool ok = false;
    const std::uint32_t v = parse_value(value, ok);
    if (!ok || v > mask_of(f.width)) {
      throw Error(
          ErrorCategory::usage,
          std::string(f.key) + "=" + value + ": not a valid value; nothing was written",
          std::string("valid values of ") + f.key + " on " + chip.name + ": " + values_text(f));
    }
    std::uint32_t& w = word_of(ob, f.word);
    const std::uint32_t m = mask_of(f.width) << f.shift;
    w = (w & ~m) | ((v << f.shift) & m);
    return;
  }
  throw Error(ErrorCategory::usage,
              "'" + key + "' is not an option byte of " + chip.name + "; nothing was written",
              "valid keys: " + keys_text(chip));
}

std::vector<ProtectionGroup> protection_groups(const ChipInfo& chip) {
  std::vector<ProtectionGroup> out;
  const auto& s = chip.sectors;
  if (s.empty()) return out;
  if (chip.style == FlashStyle::f1) {
    // PM0075 2.5 / RM0316 4.5: 4 pages per WRPR bit with 1 KiB pages, 2 otherwise; bit 31
    // takes every page above bit 30's.
    const std::size_t per_bit = s.front().size == 1024 ? 4 : 2;
    for (std::size_t first = 0; first < s.size(); first += per_bit) {
      const unsigned bit = static_cast<unsigned>(first / per_bit);
      const std::size_t last = bit == 31 ? s.size() - 1 : std::min(first + per_bit, s.size()) - 1;
      out.push_back({bit, first, last, s[first].address,
                     static_cast<std::uint32_t>(s[last].end() - s[first].address)});
      if (bit == 31) break;
    }
    return out;
  }
  // RM0090 3.7.3 / RM0385 3.4.3: one nWRP bit per sector; bank 2 of a dual-bank F42x/43x
  // in FLASH_OPTCR1 (RM0090 3.9.11), marked as bit 16 + n.
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool bank2 = chip.bank2_first != 0 && i >= chip.bank2_first;
    const unsigned n = static_cast<unsigned>(bank2 ? i - chip.bank2_first : i);
    out.push_back({bank2 ? 16 + n : n, i, i, s[i].address, s[i].size});
  }
  return out;
}

bool group_protected(const ChipInfo& chip, const OptionBytes& ob, const ProtectionGroup& g) {
  if (chip.style == FlashStyle::f1) return ((ob.wrp >> g.bit) & 1) == 0;
  if (g.bit >= 16) return ((ob.optcr1 >> (g.bit - 16)) & 1) == 0;
  return ((ob.wrp >> g.bit) & 1) == 0;
}

void set_group_protected(const ChipInfo& chip, OptionBytes& ob, const ProtectionGroup& g, bool on) {
  std::uint32_t* w = &ob.wrp;
  unsigned bit = g.bit;
  if (chip.style == FlashStyle::f4 && g.bit >= 16) {
    w = &ob.optcr1;
    bit -= 16;
  }
  // Both styles: a 0 bit protects (WRPR, nWRP).
  if (on) {
    *w &= ~(1u << bit);
  } else {
    *w |= 1u << bit;
  }
}

std::vector<bool> write_protected_sectors(const ChipInfo& chip, const OptionBytes& ob) {
  std::vector<bool> out(chip.sectors.size(), false);
  for (const auto& g : protection_groups(chip)) {
    if (!group_protected(chip, ob, g)) continue;
    for (std::size_t i = g.first_sector; i <= g.last_sector; ++i)
      out[i] = true;
  }
  return out;
}

std::vector<ProtectionGroup> groups_in_range(const ChipInfo& chip, std::uint32_t address,
                                             std::uint32_t size) {
  const auto groups = protection_groups(chip);
  if (size == 0) return groups;
  const std::uint64_t end = std::uint64_t{address} + size;
  const std::uint64_t flash_end = std::uint64_t{chip.flash_base} + chip.flash_size;
  const char* unit = chip.style == FlashStyle::f1 ? "groups of pages" : "sectors";
  if (address < chip.flash_base || end > flash_end) {
    throw Error(ErrorCategory::usage,
                hex(address) + "+" + size_text(size) + " is not inside the flash",
                "the flash of " + chip.name + " is " + hex(chip.flash_base) + "+" +
                    size_text(chip.flash_size));
  }
  std::vector<ProtectionGroup> out;
  std::uint32_t lo = address, hi_end = 0;
  bool aligned_start = false, aligned_end = false;
  for (const auto& g : groups) {
    const std::uint64_t g_end = std::uint64_t{g.address} + g.size;
    if (g_end <= address || g.address >= end) continue;
    if (out.empty()) {
      lo = g.address;
      aligned_start = g.address == address;
    }
    hi_end = static_cast<std::uint32_t>(g_end);
    aligned_end = g_end == end;
    out.push_back(g);
  }
  if (!aligned_start || !aligned_end) {
    throw Error(ErrorCategory::usage,
                hex(address) + "+" + size_text(size) + " does not cover whole write-protection " +
                    unit + " (" + std::to_string(groups.front().size) + " bytes at the start of " +
                    chip.name + "'s flash)",
                "use " + hex(lo) + " " + size_text(hi_end - lo) +
                    ", the smallest range of whole groups that contains it");
  }
  return out;
}

}  // namespace probefarm::flash
