#pragma once
// The STM32 option bytes: read protection (RDP), write protection (WRP / nWRP), the user
// bits (watchdog, reset on stop/standby, BOR level ...) and the F1/F3 data bytes. Reading
// them, changing them through the family's sequence, loading them again the way the family
// requires, and checking the loaded values against what was asked for.
//
// F1: PM0075 2.3 (option byte erase and programming), 2.4 (protections), 2.5 (option
// bytes), 3.7 FLASH_OBR, 3.8 FLASH_WRPR. F3: RM0316 4.2 / 4.3 (the same FPEC with
// OBL_LAUNCH and a level 2), 4.5 option bytes and FLASH_OBR. F4: RM0090 3.7 (option bytes,
// "Modifying user option bytes", read protection), 3.9.6 FLASH_OPTCR. F7 (F74x/75x):
// RM0385 3.4 and 3.7.6 FLASH_OPTCR, 3.7.7 FLASH_OPTCR1.
//
// option_bytes.cpp: the fields per family (names, meanings, valid values), KEY=VALUE
// parsing and the write-protection groups; option_bytes_io.cpp: the register sequences.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flash/chip.hpp"

namespace probefarm::flash {

class Target;

// The option bytes of one chip, as values (not the stored value/complement pairs).
struct OptionBytes {
  std::uint32_t rdp = 0;   // raw RDP byte (F1/F3: the option byte; F4/F7: FLASH_OPTCR[15:8])
  unsigned rdp_level = 0;  // 0, 1, or 2 (permanent)
  // F1/F3: the USER byte. F4/F7: FLASH_OPTCR with only its user-field bits kept, in place
  // (BOR_LEV [3:2], WDG_SW 5, nRST_STOP 6, nRST_STDBY 7; F7 also WWDG_SW 4, IWDG_STDBY 30,
  // IWDG_STOP 31).
  std::uint32_t user = 0;
  std::uint32_t data0 = 0xFF, data1 = 0xFF;  // F1/F3 only
  // F1/F3: FLASH_WRPR (WRP0..WRP3), a 0 bit protects a group of pages. F4/F7: the nWRP
  // field (FLASH_OPTCR[27:16] shifted down), a 1 bit leaves a sector unprotected.
  std::uint32_t wrp = 0xFFFFFFFF;
  // F7: FLASH_OPTCR1 (BOOT_ADD0 [15:0], BOOT_ADD1 [31:16]); F42x/43x dual bank: the nWRP
  // field of FLASH_OPTCR1 (bank 2). 0 elsewhere.
  std::uint32_t optcr1 = 0;

  bool operator==(const OptionBytes&) const = default;
};

// One field as a person reads it: `probefarm option-bytes`.
struct OptionField {
  std::string key;      // "RDP", "nRST_STOP", "BOR_LEV", "WRP"
  std::uint32_t value;  // the field's bits
  std::string shown;    // the value as `set` takes it: "1", "0x42", "0xFFFFFFF5"
  std::string meaning;  // "level 0: no read protection", "no reset entering Stop mode"
  std::string values;   // what `option-bytes set KEY=...` accepts: "0|1"
};

// Every field of `ob` on this chip's family, in register order.
std::vector<OptionField> describe(const ChipInfo& chip, const OptionBytes& ob);

// Applies one KEY=VALUE of `probefarm option-bytes set` to `ob` (nothing is written).
// Keys are case-insensitive. Unknown key or bad value: Error(usage) listing the valid
// keys (or values) for this chip's family.
//
// RDP takes 0, 1 or "2-permanent": level 2 disables debugging for good, so the bare value
// 2 is refused with a hint naming the spelling that confirms it (never set by accident).
// RDP=0 on a protected chip is refused too: `probefarm unlock --yes` says that it erases.
void apply_assignment(const ChipInfo& chip, OptionBytes& ob, const std::string& key,
                      const std::string& value);

// The RDP byte of a level: F1 0xA5 / 0x00; F3/F4/F7 0xAA / 0x55 / 0xCC (PM0075 2.5,
// RM0316 4.3.1, RM0090 3.7.3, RM0385 3.4.3).
std::uint32_t rdp_value(const ChipInfo& chip, unsigned level);
unsigned rdp_level_of(const ChipInfo& chip, std::uint32_t rdp);

// Write protection acts per group: a group of pages per WRPR bit on F1/F3 (4 pages of
// 1 KiB on low/medium density F1, 2 pages otherwise; the last bit covers every page above
// the others: PM0075 2.5, RM0316 4.5), one sector per nWRP bit on F4/F7.
struct ProtectionGroup {
  unsigned bit = 0;  // bit in OptionBytes::wrp (F42x bank 2: 16 + bit in optcr1's nWRP)
  std::size_t first_sector = 0, last_sector = 0;  // indexes into ChipInfo::sectors
  std::uint32_t address = 0, size = 0;
};
std::vector<ProtectionGroup> protection_groups(const ChipInfo& chip);
bool group_protected(const ChipInfo& chip, const OptionBytes& ob, const ProtectionGroup& g);
void set_group_protected(const ChipInfo& chip, OptionBytes& ob, const ProtectionGroup& g, bool on);
// Per entry of chip.sectors.
std::vector<bool> write_protected_sectors(const ChipInfo& chip, const OptionBytes& ob);
// The groups that [address, address + size) covers; size 0: the whole flash. Error(usage)
// naming the aligned range to use when the range starts or ends inside a group or leaves
// the flash.
std::vector<ProtectionGroup> groups_in_range(const ChipInfo& chip, std::uint32_t address,
                                             std::uint32_t size);

// "16K", "4K", "1M", or bytes: sizes as `probefarm` parses them back.
std::string size_text(std::uint32_t bytes);

// Progress of a long option-byte operation (the mass erase of an RDP regression): wall
// milliseconds so far and the typical duration.
using OptionProgressFn = std::function<void(std::uint32_t elapsed_ms, std::uint32_t expected_ms)>;

struct OptionWriteOptions {
  // RDP level 2 is irreversible: write() refuses it unless this is set as well.
  bool allow_permanent_level2 = false;
  // RDP 1 -> 0 mass-erases the flash: write() refuses it unless this is set (unlock()).
  bool allow_regression = false;
  OptionProgressFn progress;
};

// What write() did to get the new values loaded.
struct OptionWriteReport {
  OptionBytes before, after;
  std::string reload;  // "OBL_LAUNCH (system reset)", "system reset (SYSRESETREQ)"
  bool mass_erased = false;
};

// Reads the option bytes of the attached chip: FLASH_OBR/WRPR and the RDP option byte on
// F1/F3, FLASH_OPTCR (/OPTCR1) on F4/F7. Works at any RDP level.
OptionBytes read_option_bytes(Target& target);

// Writes `wanted` (every field; unchanged ones are written back as they are), loads the
// option bytes again (F1: system reset, PM0075 2.5; F3: OBL_LAUNCH, RM0316 4.5.4 (2.4 on
// option byte loading); F4/F7: OPTSTRT then a system reset, RM0090 3.7.2 / RM0385 3.4.2),
// which leaves the core halted at the reset vector, and reads them back. Error(verify)
// when the read-back differs; Error(usage) for level 2 or a regression not allowed by
// `options`; Error(protection) when the chip refuses (level 2 in force); Error(timeout)
// when BSY outlasts the datasheet maximum plus margin. Does nothing when `wanted` equals
// what is in force (report.before == report.after, reload empty).
OptionWriteReport write_option_bytes(Target& target, const OptionBytes& wanted,
                                     const OptionWriteOptions& options = {});

struct UnlockReport {
  unsigned level_before = 0;
  bool changed = false;         // false: the chip was at level 0 already
  std::string reload;           // as OptionWriteReport::reload
  bool flash_blank = false;     // checked with the on-target CRC after the regression
  bool flash_readable = false;  // a debugger read of the flash base succeeded afterwards
};

// RDP 1 -> 0: the chip mass-erases its flash, then the option bytes are loaded again and
// the flash is checked blank. Level 0: nothing is done. Level 2: Error(protection).
UnlockReport unlock_read_protection(Target& target, const OptionProgressFn& progress = {});

}  // namespace probefarm::flash
