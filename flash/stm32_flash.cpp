#include "flash/stm32_flash.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "flash/option_bytes.hpp"
#include "probe/error.hpp"
#include "protocol/dap.hpp"

namespace probefarm::flash {
namespace {

// Register offsets: PM0075 3.1 register map (F1, and RM0316 4.5.8 for the F3); RM0090
// 3.9.11 / RM0385 3.7.9: ACR, KEYR, OPTKEYR, SR and CR sit at the same offsets on the
// F4/F7 interface, which is what lets one loader and this driver share them.
constexpr std::uint32_t kKeyr = 0x04;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kF1Ar = 0x14;
constexpr std::uint32_t kF1Obr = 0x1C;
constexpr std::uint32_t kF1Wrpr = 0x20;
constexpr std::uint32_t kF4Optcr = 0x14;
constexpr std::uint32_t kF4Optcr1 = 0x18;

// PM0075 2.3.1 / RM0090 3.5.1: FLASH_KEYR unlock keys, KEY1 then KEY2.
constexpr std::uint32_t kKey1 = 0x45670123;
constexpr std::uint32_t kKey2 = 0xCDEF89AB;

// PM0075 3.4 FLASH_SR, 3.5 FLASH_CR.
constexpr std::uint32_t kF1SrBsy = 1u << 0;
constexpr std::uint32_t kF1SrPgerr = 1u << 2;
constexpr std::uint32_t kF1SrWrprterr = 1u << 4;
constexpr std::uint32_t kF1SrEop = 1u << 5;
constexpr std::uint32_t kF1CrPer = 1u << 1;
constexpr std::uint32_t kF1CrMer = 1u << 2;
constexpr std::uint32_t kF1CrStrt = 1u << 6;
constexpr std::uint32_t kF1CrLock = 1u << 7;
// PM0075 3.7 FLASH_OBR.RDPRT (F1); RM0316 4.5.6 FLASH_OBR.RDPRT[1:0] in bits 2:1 (F3).
constexpr std::uint32_t kF1ObrRdprt = 1u << 1;

// RM0090 3.9.4 FLASH_SR (RM0385 3.7.4: bit 7 is ERSERR on the F7), 3.9.5 FLASH_CR.
constexpr std::uint32_t kF4SrEop = 1u << 0;
constexpr std::uint32_t kF4SrOperr = 1u << 1;
constexpr std::uint32_t kF4SrWrperr = 1u << 4;
constexpr std::uint32_t kF4SrPgaerr = 1u << 5;
constexpr std::uint32_t kF4SrPgperr = 1u << 6;
constexpr std::uint32_t kF4SrPgserr = 1u << 7;
constexpr std::uint32_t kF4SrRderr = 1u << 8;  // F42x/43x PCROP read error (RM0090 3.9.4)
constexpr std::uint32_t kF4SrBsy = 1u << 16;
constexpr std::uint32_t kF4CrSer = 1u << 1;
constexpr std::uint32_t kF4CrMer = 1u << 2;
constexpr unsigned kF4CrSnbShift = 3;
constexpr unsigned kF4CrPsizeShift = 8;
constexpr std::uint32_t kF4CrMer1 = 1u << 15;  // F42x/43x bank 2 (RM0090 3.9.8)
constexpr std::uint32_t kF4CrStrt = 1u << 16;
constexpr std::uint32_t kF4CrLock = 1u << 31;
// RM0090 3.9.6 / RM0385 3.7.6 FLASH_OPTCR: RDP [15:8], nWRP [27:16] (12 bits on F4 and
// F76x, 8 on F74x); RM0090 3.9.11 FLASH_OPTCR1 nWRP [27:16] for bank 2 of the F42x/43x.
constexpr unsigned kOptcrRdpShift = 8;
constexpr unsigned kOptcrNwrpShift = 16;
constexpr std::uint32_t kRdpLevel0 = 0xAA;
constexpr std::uint32_t kRdpLevel2 = 0xCC;

std::string hex(std::uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", value);
  return buf;
}

// Wall-clock allowance on top of a datasheet maximum: USB round trips of the polls and a
// busy host. The flash operation itself never takes longer than the maximum.
constexpr std::chrono::milliseconds kMargin{1000};

}  // namespace

Stm32Flash::Stm32Flash(protocol::MemAp& mem, const ChipInfo& chip) : mem_(mem), chip_(chip) {}

bool Stm32Flash::locked() {
  const std::uint32_t lock = chip_.style == FlashStyle::f1 ? kF1CrLock : kF4CrLock;
  return (mem_.read32(reg(kCr)) & lock) != 0;
}

void Stm32Flash::unlock() {
  if (!locked()) return;
  mem_.queue_write32(reg(kKeyr), kKey1);
  mem_.queue_write32(reg(kKeyr), kKey2);
  mem_.flush();
  if (locked()) {
    throw Error(
        ErrorCategory::protection,
        "flash interface at " + hex(chip_.flash_regs) + " stays locked after the key sequence",
        "a wrong key locked it until the next reset; reset the target and retry");
  }
}

void Stm32Flash::lock() {
  const std::uint32_t lock = chip_.style == FlashStyle::f1 ? kF1CrLock : kF4CrLock;
  mem_.write32(reg(kCr), lock);
}

std::uint32_t Stm32Flash::status() {
  return mem_.read32(reg(kSr));
}

std::uint32_t Stm32Flash::error_mask() const {
  if (chip_.style == FlashStyle::f1) return kF1SrPgerr | kF1SrWrprterr;
  std::uint32_t mask = kF4SrOperr | kF4SrWrperr | kF4SrPgaerr | kF4SrPgperr | kF4SrPgserr;
  if (chip_.dev_id == 0x419) mask |= kF4SrRderr;
  return mask;
}

void Stm32Flash::clear_status() {
  const std::uint32_t eop = chip_.style == FlashStyle::f1 ? kF1SrEop : kF4SrEop;
  mem_.write32(reg(kSr), error_mask() | eop);
}

std::string Stm32Flash::error_names(std::uint32_t sr) const {
  struct Flag {
    std::uint32_t bit;
    const char* name;
    const char* meaning;
  };
  // PM0075 3.4; RM0090 3.9.4; RM0385 3.7.4 (ERSERR).
  static constexpr Flag kF1[] = {
      {kF1SrPgerr, "PGERR", "programming error: the location was not erased"},
      {kF1SrWrprterr, "WRPRTERR", "write protection error"},
  };
  static constexpr Flag kF4[] = {
      {kF4SrOperr, "OPERR", "operation error"},
      {kF4SrWrperr, "WRPERR", "write protection error"},
      {kF4SrPgaerr, "PGAERR", "programming alignment error"},
      {kF4SrPgperr, "PGPERR", "programming parallelism error"},
      {kF4SrPgserr, "PGSERR", "programming sequence error"},
      {kF4SrRderr, "RDERR", "proprietary readout protection error"},
  };
  std::string out;
  auto add = [&](const Flag& f) {
    if ((sr & f.bit) == 0) return;
    if (!out.empty()) out += ", ";
    const bool erserr = chip_.family == Family::f7 && f.bit == kF4SrPgserr;
    out += erserr ? "ERSERR (erase sequence error)" : std::string(f.name) + " (" + f.meaning + ")";
  };
  if (chip_.style == FlashStyle::f1) {
    for (const auto& f : kF1)
      add(f);
  } else {
    for (const auto& f : kF4)
      add(f);
  }
  return out.empty() ? "no error flag" : out;
}

void Stm32Flash::throw_flash_error(std::uint32_t sr, const std::string& what) const {
  const std::uint32_t wrp = chip_.style == FlashStyle::f1 ? kF1SrWrprterr : kF4SrWrperr;
  const std::string message = what + " failed: FLASH_SR " + hex(sr) + " " + error_names(sr);
  if (sr & wrp) {
    throw Error(ErrorCategory::protection, message,
                "the sector is write-protected (or read protection is active); remove the "
                "protection in the option bytes first");
  }
  if (chip_.style == FlashStyle::f1 && (sr & kF1SrPgerr)) {
    throw Error(ErrorCategory::verify, message,
                "the flash was not erased where it was programmed; flash again with erase");
  }
  throw Error(ErrorCategory::internal, message,
              "the flash controller rejected the sequence; this is a bug in probefarm or "
              "an unsupported chip revision, please report it");
}

std::uint32_t Stm32Flash::wait_idle(std::uint32_t max_ms, const std::string& what) {
  const std::uint32_t bsy = chip_.style == FlashStyle::f1 ? kF1SrBsy : kF4SrBsy;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms) + kMargin;
  for (;;) {
    const std::uint32_t sr = status();
    if ((sr & bsy) == 0) return sr;
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ErrorCategory::timeout,
                  what + ": flash still busy after " + std::to_string(max_ms) +
                      " ms (the datasheet maximum) plus margin; FLASH_SR " + hex(sr),
                  "power-cycle the target; check its supply voltage");
    }
  }
}

void Stm32Flash::start_and_wait(std::uint32_t cr, std::uint32_t max_ms, const std::string& what) {
  // PM0075 2.3.4/2.3.5, RM0090 3.6.3: no operation may be in progress, and flags of an
  // earlier one would be mistaken for ours.
  wait_idle(max_ms, what);
  clear_status();
  const std::uint32_t strt = chip_.style == FlashStyle::f1 ? kF1CrStrt : kF4CrStrt;
  mem_.write32(reg(kCr), cr);
  mem_.write32(reg(kCr), cr | strt);
  const std::uint32_t sr = wait_idle(max_ms, what);
  // The operation bits stay set after BSY clears; a later program must not inherit them.
  mem_.write32(reg(kCr), 0);
  if (sr & error_mask()) throw_flash_error(sr, what);
}

void Stm32Flash::erase_sector(std::size_t index, unsigned psize) {
  const FlashSector& s = chip_.sectors.at(index);
  const std::uint32_t max_ms = sector_erase_time(chip_, s.size, psize).max_ms;
  const std::string what =
      std::string(chip_.style == FlashStyle::f1 ? "erase of page " : "erase of sector ") +
      std::to_string(index) + " at " + hex(s.address);
  if (chip_.style == FlashStyle::f1) {
    // PM0075 2.3.4 page erase: PER, FLASH_AR = an address in the page, STRT.
    wait_idle(max_ms, what);
    mem_.write32(reg(kCr), kF1CrPer);
    mem_.write32(reg(kF1Ar), s.address);
    start_and_wait(kF1CrPer, max_ms, what);
    return;
  }
  // RM0090 3.6.3 sector erase: SER, SNB, STRT; PSIZE sets the erase parallelism. On a
  // dual-bank F42x/43x the sectors of bank 2 are SNB 0b10000 + n (RM0090 3.9.8).
  std::uint32_t snb = static_cast<std::uint32_t>(index);
  if (chip_.bank2_first != 0 && index >= chip_.bank2_first) snb = 16 + (index - chip_.bank2_first);
  const std::uint32_t cr = kF4CrSer | (snb << kF4CrSnbShift) | ((psize & 3) << kF4CrPsizeShift);
  start_and_wait(cr, max_ms, what);
}

void Stm32Flash::mass_erase(unsigned psize) {
  const std::uint32_t max_ms = mass_erase_time(chip_, psize).max_ms;
  if (chip_.style == FlashStyle::f1) {
    start_and_wait(kF1CrMer, max_ms, "mass erase");  // PM0075 2.3.5
    return;
  }
  // RM0090 3.6.3 mass erase: MER (and MER1 for bank 2 of a dual-bank F42x/43x).
  std::uint32_t cr = kF4CrMer | ((psize & 3) << kF4CrPsizeShift);
  if (chip_.bank2_first != 0) cr |= kF4CrMer1;
  start_and_wait(cr, max_ms, "mass erase");
}

ProtectionState Stm32Flash::protection() {
  ProtectionState p;
  p.write_protected.assign(chip_.sectors.size(), false);
  if (chip_.style == FlashStyle::f1) {
    const std::uint32_t obr = mem_.read32(reg(kF1Obr));
    const std::uint32_t wrpr = mem_.read32(reg(kF1Wrpr));
    if (chip_.family == Family::f3) {
      const std::uint32_t level =
          (obr >> 1) & 3;  // RM0316 4.5.6: 00 level 0, 01 level 1, 11 level 2
      p.rdp_level = level == 0 ? 0 : level == 3 ? 2 : 1;
    } else {
      p.rdp_level = (obr & kF1ObrRdprt) ? 1 : 0;
    }
    // PM0075 2.5 / RM0316 4.5 FLASH_WRPR: a 0 bit protects a group of pages, 4 per bit on
    // low/medium-density F1 parts (1 KiB pages), 2 otherwise; bit 31 covers all the rest.
    const std::uint32_t per_bit = chip_.sectors.front().size == 1024 ? 4 : 2;
    for (std::size_t i = 0; i < chip_.sectors.size(); ++i) {
      const auto bit = std::min<std::uint32_t>(static_cast<std::uint32_t>(i) / per_bit, 31);
      p.write_protected[i] = ((wrpr >> bit) & 1) == 0;
    }
    return p;
  }
  const std::uint32_t optcr = mem_.read32(reg(kF4Optcr));
  const std::uint32_t rdp = (optcr >> kOptcrRdpShift) & 0xFF;
  p.rdp_level = rdp == kRdpLevel0 ? 0 : rdp == kRdpLevel2 ? 2 : 1;
  const unsigned bits = chip_.dev_id == 0x449 ? 8 : 12;
  const std::uint32_t nwrp = (optcr >> kOptcrNwrpShift) & ((1u << bits) - 1);
  std::uint32_t nwrp2 = 0xFFF;
  if (chip_.bank2_first != 0) nwrp2 = (mem_.read32(reg(kF4Optcr1)) >> kOptcrNwrpShift) & 0xFFF;
  for (std::size_t i = 0; i < chip_.sectors.size(); ++i) {
    const bool bank2 = chip_.bank2_first != 0 && i >= chip_.bank2_first;
    const std::size_t n = bank2 ? i - chip_.bank2_first : i;
    if (n >= bits) continue;
    p.write_protected[i] = (((bank2 ? nwrp2 : nwrp) >> n) & 1) == 0;
  }
  return p;
}

void Stm32Flash::check_writable(std::span<const std::size_t> sectors) {
  const ProtectionState p = protection();
  if (p.rdp_level != 0) throw_read_protected(p.rdp_level);
  for (const std::size_t i : sectors) {
    if (i >= chip_.sectors.size() || !p.write_protected[i]) continue;
    // The hint names the whole group the WRP bit covers (F1: several pages), which is the
    // smallest range `protect --clear` accepts.
    std::uint32_t address = chip_.sectors[i].address, size = chip_.sectors[i].size;
    for (const auto& g : protection_groups(chip_)) {
      if (i >= g.first_sector && i <= g.last_sector) {
        address = g.address;
        size = g.size;
      }
    }
    throw Error(ErrorCategory::protection,
                std::string(chip_.style == FlashStyle::f1 ? "page " : "sector ") +
                    std::to_string(i) + " at " + hex(chip_.sectors[i].address) +
                    " is write-protected (WRP)",
                "`probefarm protect --clear " + hex(address) + " " + size_text(size) +
                    "` (or `probefarm protect --clear`) removes the write protection");
  }
}

void Stm32Flash::check_readable(std::uint32_t address, std::uint32_t size) {
  const std::uint64_t end = std::uint64_t{address} + size;
  const std::uint64_t flash_end = std::uint64_t{chip_.flash_base} + chip_.flash_size;
  if (size == 0 || end <= chip_.flash_base || address >= flash_end) return;
  const ProtectionState p = protection();
  if (p.rdp_level != 0) throw_read_protected(p.rdp_level);
}

void Stm32Flash::throw_read_protected(unsigned level) const {
  // PM0075 2.4.1, RM0316 4.3.1, RM0090 3.7.3, RM0385 3.4.3: with a debugger connected the
  // flash is neither readable nor writable at level 1; level 2 cannot be left.
  if (level == 2) {
    throw Error(ErrorCategory::protection,
                "read protection level 2 on " + chip_.name +
                    ": flash cannot be read or written over SWD, for good",
                "level 2 is permanent; the chip cannot be reprogrammed over SWD");
  }
  throw Error(
      ErrorCategory::protection,
      "read protection level 1 on " + chip_.name + ": flash cannot be read or written over SWD",
      "`probefarm unlock --yes` removes it and erases the whole chip");
}

}  // namespace probefarm::flash
