// Reading, writing and reloading the option bytes through the system MEM-AP: the F1/F3
// option-byte erase + half-word programming sequence, the F4/F7 FLASH_OPTCR + OPTSTRT
// sequence, the reload each family needs, and the read-back that decides success.
#include <chrono>
#include <cstdio>
#include <vector>

#include "flash/loader.hpp"
#include "flash/loader_session.hpp"
#include "flash/option_bytes.hpp"
#include "flash/stm32_flash.hpp"
#include "flash/target.hpp"
#include "probe/error.hpp"
#include "protocol/cortex_m.hpp"
#include "protocol/dap.hpp"

namespace probefarm::flash {
namespace {

using Clock = std::chrono::steady_clock;

// PM0075 3.1 register map (RM0316 4.5.8 is the same for the F3).
constexpr std::uint32_t kOptkeyr = 0x08;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kF1Obr = 0x1C;
constexpr std::uint32_t kF1Wrpr = 0x20;
// RM0090 3.9.8 / RM0385 3.7.9 register maps.
constexpr std::uint32_t kF4Optcr = 0x14;
constexpr std::uint32_t kF4Optcr1 = 0x18;

// PM0075 2.3.1 / 3.3: FLASH_OPTKEYR takes the same two keys as FLASH_KEYR on the F1/F3.
constexpr std::uint32_t kF1OptKey1 = 0x45670123;
constexpr std::uint32_t kF1OptKey2 = 0xCDEF89AB;
// RM0090 3.7.2 / RM0385 3.4.2 (FLASH_OPTKEYR, 3.9.3 / 3.7.3): OPTKEY1, OPTKEY2.
constexpr std::uint32_t kF4OptKey1 = 0x08192A3B;
constexpr std::uint32_t kF4OptKey2 = 0x4C5D6E7F;

// PM0075 3.4 FLASH_SR, 3.5 FLASH_CR; RM0316 4.5.4 adds OBL_LAUNCH (bit 13).
constexpr std::uint32_t kF1SrBsy = 1u << 0;
constexpr std::uint32_t kF1CrOptpg = 1u << 4;
constexpr std::uint32_t kF1CrOpter = 1u << 5;
constexpr std::uint32_t kF1CrStrt = 1u << 6;
constexpr std::uint32_t kF1CrLock = 1u << 7;
constexpr std::uint32_t kF1CrOptwre = 1u << 9;
constexpr std::uint32_t kF3CrOblLaunch = 1u << 13;
// PM0075 2.5 / RM0316 4.5: the option-byte area (value, complement pairs) starts here.
constexpr std::uint32_t kF1OptionBase = 0x1FFFF800;

// RM0090 3.9.4 FLASH_SR.BSY; 3.9.6 FLASH_OPTCR OPTLOCK (bit 0), OPTSTRT (bit 1).
constexpr std::uint32_t kF4SrBsy = 1u << 16;
constexpr std::uint32_t kOptcrOptlock = 1u << 0;
constexpr std::uint32_t kOptcrOptstrt = 1u << 1;

// Wall-clock allowance on top of a datasheet maximum (USB round trips of the polls, a busy
// host), as in stm32_flash.cpp.
constexpr std::uint32_t kMarginMs = 2000;

std::string hex(std::uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", value);
  return buf;
}

// FLASH_OPTCR bits of the user fields (RM0090 3.9.6; RM0385 3.7.6 adds WWDG_SW and the
// IWDG freeze bits 30/31).
std::uint32_t f4_user_mask(const ChipInfo& chip) {
  return chip.family == Family::f7 ? 0xC00000FCu : 0x000000ECu;
}
unsigned f4_nwrp_bits(const ChipInfo& chip) {
  return chip.family == Family::f7 ? 8 : 12;
}

std::uint32_t smallest_sector(const ChipInfo& chip) {
  std::uint32_t s = chip.sectors.front().size;
  for (const auto& x : chip.sectors)
    s = std::min(s, x.size);
  return s;
}

// Polls FLASH_SR until BSY clears, at most `max_ms` (datasheet maximum) plus margin of
// wall time; `progress` gets the elapsed time against `expected_ms`.
std::uint32_t wait_idle(protocol::MemAp& mem, const ChipInfo& chip, std::uint32_t max_ms,
                        const std::string& what, const OptionProgressFn& progress = {},
                        std::uint32_t expected_ms = 0) {
  const std::uint32_t bsy = chip.style == FlashStyle::f1 ? kF1SrBsy : kF4SrBsy;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(max_ms + kMarginMs);
  auto last_report = start;
  for (;;) {
    const std::uint32_t sr = mem.read32(chip.flash_regs + kSr);
    const auto now = Clock::now();
    if ((sr & bsy) == 0) {
      if (progress) progress(expected_ms, expected_ms);
      return sr;
    }
    if (progress && now - last_report >= std::chrono::milliseconds(100)) {
      last_report = now;
      progress(static_cast<std::uint32_t>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count()),
               expected_ms);
    }
    if (now > deadline) {
      throw Error(ErrorCategory::timeout,
                  what + ": flash still busy after " + std::to_string(max_ms) +
                      " ms (the datasheet maximum) plus margin; FLASH_SR " + hex(sr),
                  "power-cycle the target, then read the option bytes again "
                  "(`probefarm option-bytes`)");
    }
  }
}

void check_sr(Stm32Flash& driver, std::uint32_t sr, const std::string& what) {
  if (sr & driver.error_mask()) driver.throw_flash_error(sr, what);
}

// ---- F1 / F3 -----------------------------------------------------------------------------

OptionBytes read_f1(protocol::MemAp& mem, const ChipInfo& chip) {
  OptionBytes ob;
  const std::uint32_t obr = mem.read32(chip.flash_regs + kF1Obr);
  ob.wrp = mem.read32(chip.flash_regs + kF1Wrpr);
  if (chip.family == Family::f3) {
    // RM0316 4.5 FLASH_OBR: RDPRT [2:1] (00 level 0, 01 level 1, 11 level 2), USER [15:8],
    // DATA0 [23:16], DATA1 [31:24].
    const std::uint32_t level = (obr >> 1) & 3;
    ob.rdp_level = level == 0 ? 0 : level == 3 ? 2 : 1;
    ob.user = (obr >> 8) & 0xFF;
    ob.data0 = (obr >> 16) & 0xFF;
    ob.data1 = (obr >> 24) & 0xFF;
  } else {
    // PM0075 3.7 FLASH_OBR: RDPRT (bit 1), USER [9:2], DATA0 [17:10], DATA1 [25:18].
    ob.rdp_level = (obr >> 1) & 1;
    ob.user = (obr >> 2) & 0xFF;
    ob.data0 = (obr >> 10) & 0xFF;
    ob.data1 = (obr >> 18) & 0xFF;
  }
  // FLASH_OBR gives the level only; the RDP byte itself is the first option byte, which a
  // debugger may read at any level (only the main flash is shut to it, PM0075 2.4.1).
  ob.rdp = mem.read16(kF1OptionBase) & 0xFF;
  return ob;
}

// PM0075 2.3 "Option byte programming" and "Erase procedure" (RM0316 4.2.7/4.2.8 for the
// F3): unlock FLASH_CR, unlock the option bytes (OPTKEYR -> OPTWRE), erase the option-byte
// area (OPTER + STRT), program every byte again as a half-word (OPTPG) - the hardware
// writes the complement - and lock. Returns true when the RDP write mass-erased the chip.
bool write_f1(Target& target, const OptionBytes& before, const OptionBytes& wanted,
              const OptionProgressFn& progress) {
  protocol::MemAp& mem = target.memory();
  const ChipInfo& chip = target.chip();
  Stm32Flash driver(mem, chip);
  const std::uint32_t page_max = sector_erase_time(chip, chip.sectors.front().size, 0).max_ms;
  const OperationTime mass = mass_erase_time(chip, 0);

  driver.unlock();
  mem.write32(chip.flash_regs + kOptkeyr, kF1OptKey1);
  mem.write32(chip.flash_regs + kOptkeyr, kF1OptKey2);
  if ((mem.read32(chip.flash_regs + kCr) & kF1CrOptwre) == 0) {
    driver.lock();
    throw Error(ErrorCategory::protection,
                "the option bytes of " + chip.name +
                    " stay write-disabled (FLASH_CR.OPTWRE "
                    "clear) after the OPTKEYR key sequence",
                "reset the target (`probefarm reset`) and try again");
  }
  bool mass_erased = false;
  try {
    wait_idle(mem, chip, page_max, "option byte erase");
    driver.clear_status();
    // OPTWRE is cleared by writing 0 to it (PM0075 3.5), so every FLASH_CR write keeps it.
    mem.write32(chip.flash_regs + kCr, kF1CrOptwre | kF1CrOpter);
    mem.write32(chip.flash_regs + kCr, kF1CrOptwre | kF1CrOpter | kF1CrStrt);
    check_sr(driver, wait_idle(mem, chip, page_max, "option byte erase"), "option byte erase");

    // RDP first: the erase left it 0xFF (level 1 at the next load), so the window in
    // which a failure leaves the chip protected is as short as it can be.
    const std::uint32_t bytes[8] = {wanted.rdp,
                                    wanted.user,
                                    wanted.data0,
                                    wanted.data1,
                                    wanted.wrp & 0xFF,
                                    (wanted.wrp >> 8) & 0xFF,
                                    (wanted.wrp >> 16) & 0xFF,
                                    wanted.wrp >> 24};
    mem.write32(chip.flash_regs + kCr, kF1CrOptwre | kF1CrOptpg);
    for (unsigned i = 0; i < 8; ++i) {
      const std::uint32_t address = kF1OptionBase + 2 * i;
      // PM0075 2.4.1 / RM0316 4.3.1: programming the level-0 value while protected
      // mass-erases the main flash first (tME on top of tPROG).
      const bool regression = i == 0 && before.rdp_level != 0 && wanted.rdp_level == 0;
      const std::string what = "option byte programming at " + hex(address);
      driver.clear_status();
      mem.write16(address, static_cast<std::uint16_t>(bytes[i] & 0xFF));
      const std::uint32_t sr =
          regression ? wait_idle(mem, chip, mass.max_ms + page_max, what, progress, mass.typical_ms)
                     : wait_idle(mem, chip, page_max, what);
      check_sr(driver, sr, what);
      mass_erased = mass_erased || regression;
    }
  } catch (...) {
    try {
      mem.write32(chip.flash_regs + kCr, 0);
      driver.lock();
    } catch (const Error&) {
    }
    throw;
  }
  mem.write32(chip.flash_regs + kCr, 0);  // OPTPG and OPTWRE off
  driver.lock();
  return mass_erased;
}

// ---- F4 / F7 -----------------------------------------------------------------------------

OptionBytes read_f4(protocol::MemAp& mem, const ChipInfo& chip) {
  OptionBytes ob;
  // RM0090 3.9.6 / RM0385 3.7.6 FLASH_OPTCR: user bits, RDP [15:8], nWRP [27:16] ([23:16]
  // on the F74x/75x).
  const std::uint32_t optcr = mem.read32(chip.flash_regs + kF4Optcr);
  ob.rdp = (optcr >> 8) & 0xFF;
  ob.rdp_level = rdp_level_of(chip, ob.rdp);
  ob.user = optcr & f4_user_mask(chip);
  ob.wrp = (optcr >> 16) & ((1u << f4_nwrp_bits(chip)) - 1);
  if (chip.family == Family::f7) {
    ob.optcr1 = mem.read32(chip.flash_regs + kF4Optcr1);  // RM0385 3.7.7 BOOT_ADD0/1
  } else if (chip.bank2_first != 0) {
    ob.optcr1 = (mem.read32(chip.flash_regs + kF4Optcr1) >> 16) & 0xFFF;  // RM0090 3.9.7
  }
  return ob;
}

// RM0090 3.7.2 "Modifying user option bytes" / RM0385 3.4.2: unlock FLASH_OPTCR (OPTKEYR),
// wait for BSY clear, write the new values into FLASH_OPTCR (and FLASH_OPTCR1), set OPTSTRT,
// wait for BSY clear, lock (OPTLOCK). Returns true for an RDP 1 -> 0 regression, which
// mass-erases the flash first (RM0090 3.7.3, RM0385 3.4.3).
bool write_f4(Target& target, const OptionBytes& before, const OptionBytes& wanted,
              const OptionProgressFn& progress) {
  protocol::MemAp& mem = target.memory();
  const ChipInfo& chip = target.chip();
  Stm32Flash driver(mem, chip);
  const std::uint32_t optcr_reg = chip.flash_regs + kF4Optcr;
  std::uint32_t optcr = mem.read32(optcr_reg);
  if (optcr & kOptcrOptlock) {
    mem.write32(chip.flash_regs + kOptkeyr, kF4OptKey1);
    mem.write32(chip.flash_regs + kOptkeyr, kF4OptKey2);
    optcr = mem.read32(optcr_reg);
    if (optcr & kOptcrOptlock) {
      throw Error(ErrorCategory::protection,
                  "FLASH_OPTCR of " + chip.name + " stays locked after the OPTKEYR sequence",
                  "a wrong key locks it until the next reset: `probefarm reset`, then retry");
    }
  }
  const bool regression = before.rdp_level != 0 && wanted.rdp_level == 0;
  // The datasheets give no OPTSTRT time; it erases and reprograms the option-byte sector,
  // so the bound is the smallest sector's erase, plus tME for a regression, both at x8
  // (the slowest parallelism: DS8626 / DS10916 "Flash memory programming").
  const std::uint32_t sector_max = sector_erase_time(chip, smallest_sector(chip), 0).max_ms;
  const unsigned psize = psize_for_supply(chip, 3300);
  std::uint32_t max_ms = sector_max;
  std::uint32_t expected_ms = sector_erase_time(chip, smallest_sector(chip), psize).typical_ms;
  if (regression) {
    max_ms += mass_erase_time(chip, 0).max_ms;
    expected_ms += mass_erase_time(chip, psize).typical_ms;
  }
  try {
    wait_idle(mem, chip, max_ms, "option byte programming");
    driver.clear_status();
    const std::uint32_t nwrp_mask = ((1u << f4_nwrp_bits(chip)) - 1) << 16;
    const std::uint32_t fields = f4_user_mask(chip) | 0xFF00u | nwrp_mask;
    // Bits outside the fields (F42x/43x SPRMOD, DB1M, BFB2) are written back as they are.
    const std::uint32_t value = (optcr & ~(fields | kOptcrOptlock | kOptcrOptstrt)) |
                                (wanted.user & f4_user_mask(chip)) | ((wanted.rdp & 0xFF) << 8) |
                                ((wanted.wrp << 16) & nwrp_mask);
    if (chip.family == Family::f7) {
      mem.write32(chip.flash_regs + kF4Optcr1, wanted.optcr1);
    } else if (chip.bank2_first != 0) {
      const std::uint32_t optcr1 = mem.read32(chip.flash_regs + kF4Optcr1);
      mem.write32(chip.flash_regs + kF4Optcr1,
                  (optcr1 & ~0x0FFF0000u) | ((wanted.optcr1 & 0xFFF) << 16));
    }
    mem.write32(optcr_reg, value);
    mem.write32(optcr_reg, value | kOptcrOptstrt);
    const std::uint32_t sr = wait_idle(mem, chip, max_ms, "option byte programming (OPTSTRT)",
                                       regression ? progress : OptionProgressFn{}, expected_ms);
    check_sr(driver, sr, "option byte programming (OPTSTRT)");
    mem.write32(optcr_reg, value | kOptcrOptlock);
  } catch (...) {
    try {
      mem.write32(optcr_reg, mem.read32(optcr_reg) | kOptcrOptlock);
    } catch (const Error&) {
    }
    throw;
  }
  return regression;
}

// Loads the new option bytes and leaves the core halted at the reset vector. Returns what
// it did, for the report.
std::string reload(Target& target) {
  protocol::MemAp& mem = target.memory();
  const ChipInfo& chip = target.chip();
  if (chip.family == Family::f3) {
    // RM0316 4.5.4 FLASH_CR.OBL_LAUNCH (writable while FLASH_CR is locked, 4.2.1): loads the
    // option bytes and generates a system reset; the F3 does not load them on an ordinary
    // system reset, only at power-on and through this bit. VC_CORERESET first, so the core
    // stops at the reset vector instead of running the firmware.
    const std::uint32_t demcr = target.core().catch_reset();
    try {
      mem.write32(chip.flash_regs + kCr, kF3CrOblLaunch | kF1CrLock);
    } catch (const Error&) {
      // The reset may cut the bus before the write is acknowledged; the read-back decides.
      target.dap().invalidate();
    }
    target.core().finish_reset_catch(demcr);
    return "OBL_LAUNCH (option byte load and system reset)";
  }
  // F1: PM0075 2.5 - the option bytes are loaded into FLASH_OBR/WRPR at system reset. F4/F7:
  // OPTSTRT has stored them; the values in force (write protection, RDP level) are those
  // loaded at reset (RM0090 3.9.6 / RM0385 3.7.6 "loaded ... after reset"), so a system
  // reset makes what FLASH_OPTCR shows and what the controller enforces the same.
  target.core().reset(protocol::ResetKind::sysresetreq, true);
  return "system reset (SYSRESETREQ)";
}

std::string difference(const ChipInfo& chip, const OptionBytes& want, const OptionBytes& got) {
  std::string out;
  const auto a = describe(chip, want);
  const auto b = describe(chip, got);
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].value == b[i].value) continue;
    if (!out.empty()) out += ", ";
    out += a[i].key + " " + hex(b[i].value) + " instead of " + hex(a[i].value);
  }
  if (want.rdp_level != got.rdp_level) {
    if (!out.empty()) out += ", ";
    out += "RDP level " + std::to_string(got.rdp_level) + " instead of " +
           std::to_string(want.rdp_level);
  }
  return out;
}

}  // namespace

OptionBytes read_option_bytes(Target& target) {
  return target.chip().style == FlashStyle::f1 ? read_f1(target.memory(), target.chip())
                                               : read_f4(target.memory(), target.chip());
}

OptionWriteReport write_option_bytes(Target& target, const OptionBytes& requested,
                                     const OptionWriteOptions& options) {
  const ChipInfo& chip = target.chip();
  OptionWriteReport report;
  report.before = read_option_bytes(target);
  OptionBytes wanted = requested;
  wanted.rdp &= 0xFF;
  wanted.rdp_level = rdp_level_of(chip, wanted.rdp);
  if (chip.style == FlashStyle::f1) {
    wanted.user &= 0xFF;
    wanted.data0 &= 0xFF;
    wanted.data1 &= 0xFF;
  }
  if (report.before.rdp_level == 2) {
    throw Error(ErrorCategory::protection,
                "read protection level 2 is in force on " + chip.name +
                    ": the option bytes can no longer be changed",
                "level 2 is permanent (RM0090 3.7.3); the chip cannot be reconfigured");
  }
  if (wanted.rdp_level == 2 && !options.allow_permanent_level2) {
    throw Error(ErrorCategory::usage,
                "refusing to set read protection level 2 without its explicit confirmation; "
                "nothing was written",
                "level 2 disables debugging for good: `probefarm option-bytes set "
                "RDP=2-permanent --yes`");
  }
  if (report.before.rdp_level != 0 && wanted.rdp_level == 0 && !options.allow_regression) {
    throw Error(ErrorCategory::usage,
                "lowering read protection to level 0 mass-erases the flash; nothing was written",
                "`probefarm unlock --yes` removes read protection and erases the whole chip");
  }
  if (wanted == report.before) {
    report.after = report.before;
    return report;
  }
  report.mass_erased = chip.style == FlashStyle::f1
                           ? write_f1(target, report.before, wanted, options.progress)
                           : write_f4(target, report.before, wanted, options.progress);
  report.reload = reload(target);
  report.after = read_option_bytes(target);
  if (!(report.after == wanted)) {
    throw Error(ErrorCategory::verify,
                "the option bytes of " + chip.name + " read back differently after " +
                    report.reload + ": " + difference(chip, wanted, report.after),
                "read them with `probefarm option-bytes`; power-cycle the board and retry");
  }
  return report;
}

UnlockReport unlock_read_protection(Target& target, const OptionProgressFn& progress) {
  const ChipInfo& chip = target.chip();
  UnlockReport report;
  const OptionBytes before = read_option_bytes(target);
  report.level_before = before.rdp_level;
  if (before.rdp_level == 0) {
    report.flash_readable = true;
    report.flash_blank = false;
    return report;
  }
  if (before.rdp_level == 2) {
    throw Error(ErrorCategory::protection,
                "read protection level 2 is in force on " + chip.name +
                    ": it cannot be removed (debugging and option bytes are disabled for good)",
                "the chip cannot be recovered over SWD; replace it");
  }
  OptionBytes wanted = before;
  wanted.rdp = rdp_value(chip, 0);
  wanted.rdp_level = 0;
  OptionWriteOptions options;
  options.allow_regression = true;
  options.progress = progress;
  const OptionWriteReport w = write_option_bytes(target, wanted, options);
  report.changed = true;
  report.reload = w.reload;
  // The regression erased the flash: check it, with one CRC on the target.
  try {
    (void)target.memory().read32(chip.flash_base);
    report.flash_readable = true;
  } catch (const Error&) {
    target.dap().invalidate();
    report.flash_readable = false;
  }
  if (report.flash_readable) {
    LoaderSession session(target);
    const std::vector<std::uint8_t> blank(chip.flash_size, 0xFF);
    report.flash_blank = session.crc32(chip.flash_base, chip.flash_size) == crc32(blank);
  }
  return report;
}

}  // namespace probefarm::flash
