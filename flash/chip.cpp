#include "flash/chip.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include "probe/error.hpp"
#include "protocol/dap.hpp"

namespace probefarm::flash {
namespace {

// DBGMCU_IDCODE: DEV_ID in [11:0], REV_ID in [31:16]. RM0008 31.6.1, RM0316 33.6.1,
// RM0090 38.6.1, RM0385 40.6.1 (the same register on every family here).
constexpr std::uint32_t kDbgmcuIdcode = 0xE0042000;

// Flash interface register blocks: RM0008 3.3 / PM0075 3 (F1), RM0316 3.2.2 (F3),
// RM0090 2.3 (F4), RM0385 2.2.2 (F7).
constexpr std::uint32_t kF1FlashRegs = 0x40022000;
constexpr std::uint32_t kF4FlashRegs = 0x40023C00;
// FLASH_OPTCR offset on F4/F7 (RM0090 3.9.10, RM0385 3.7.6).
constexpr std::uint32_t kOptcr = 0x14;
// RM0090 3.9.10 (F42x/43x): DB1M, dual-bank layout of the 1 MiB parts.
constexpr std::uint32_t kOptcrDb1m = 1u << 30;
// RM0410 3.7.6 (F76x/77x): nDBANK, 1 = single bank (factory default).
constexpr std::uint32_t kOptcrNdbank = 1u << 29;

// Flash-size registers (16 bits, KiB): RM0008 30.1.1, RM0316 34.2, RM0090 39.2 (RM0383
// 24.2 for the F411), RM0385 41.2 (RM0410 45.2 for the F76x).
constexpr std::uint32_t kF1FlashSizeReg = 0x1FFFF7E0;
constexpr std::uint32_t kF3FlashSizeReg = 0x1FFFF7CC;
constexpr std::uint32_t kF4FlashSizeReg = 0x1FFF7A22;
constexpr std::uint32_t kF7FlashSizeReg = 0x1FF0F442;

enum class Layout {
  pages,         // uniform pages (F1/F3)
  f4_sectors,    // 4 x 16 KiB, 64 KiB, 128 KiB... (RM0090 3.3 Table 5)
  f42x_sectors,  // as f4_sectors, dual bank at 2 MiB or with DB1M (RM0090 3.3 Tables 6/7)
  f7_sectors,    // 4 x 32 KiB, 128 KiB, 256 KiB... (RM0385 3.3.2 Table 3)
  f76x_sectors,  // as f7_sectors in single-bank mode (RM0410 3.3.2 Table 4)
};

struct Line {
  std::uint16_t dev_id;
  const char* name;
  Family family;
  Layout layout;
  std::uint32_t page_size;  // Layout::pages only
  // SRAM from 0x20000000 that every part of the line has (their datasheets' memory maps):
  // the loader, its ring buffer and stack must fit the smallest member.
  std::uint32_t ram_kib;
};

// Page sizes: RM0008 3.3.3 (low/medium density 1 KiB, high density and connectivity line
// 2 KiB), RM0041 3.3.3 (F100 value line), RM0316 4.2.1 / RM0313 3.2.1 (F3: 2 KiB).
// DEV_IDs: RM0008 31.6.1, RM0041 28.6.1, RM0316 33.6.1, RM0313 31.6.1, RM0364 30.6.1,
// RM0090 38.6.1, RM0368 23.6.1, RM0383 23.6.1, RM0385 40.6.1, RM0410 44.6.1.
constexpr std::array<Line, 16> kLines = {{
    {0x412, "STM32F10x low-density", Family::f1, Layout::pages, 1024, 4},
    {0x410, "STM32F10x medium-density", Family::f1, Layout::pages, 1024, 10},
    {0x414, "STM32F10x high-density", Family::f1, Layout::pages, 2048, 32},
    {0x418, "STM32F105/107 connectivity line", Family::f1, Layout::pages, 2048, 64},
    {0x420, "STM32F100 medium-density value line", Family::f1, Layout::pages, 1024, 4},
    {0x428, "STM32F100 high-density value line", Family::f1, Layout::pages, 2048, 24},
    {0x422, "STM32F302xB/C/F303xB/C/F358", Family::f3, Layout::pages, 2048, 32},
    {0x438, "STM32F303x6/8/F328/F334", Family::f3, Layout::pages, 2048, 12},
    {0x439, "STM32F301/F302x6/8/F318", Family::f3, Layout::pages, 2048, 16},
    {0x446, "STM32F302xD/E/F303xD/E/F398", Family::f3, Layout::pages, 2048, 64},
    {0x413, "STM32F405/407/415/417", Family::f4, Layout::f4_sectors, 0, 128},
    {0x419, "STM32F42x/43x", Family::f4, Layout::f42x_sectors, 0, 192},
    {0x423, "STM32F401xB/C", Family::f4, Layout::f4_sectors, 0, 64},
    {0x431, "STM32F411xC/E", Family::f4, Layout::f4_sectors, 0, 128},
    {0x449, "STM32F74x/75x", Family::f7, Layout::f7_sectors, 0, 320},
    {0x451, "STM32F76x/77x", Family::f7, Layout::f76x_sectors, 0, 512},
}};

const Line* find_line(std::uint16_t dev_id) {
  for (const auto& line : kLines) {
    if (line.dev_id == dev_id) return &line;
  }
  return nullptr;
}

std::string hex(std::uint32_t value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*X", digits, value);
  return buf;
}

std::string known_lines() {
  std::string s;
  for (const auto& line : kLines) {
    if (!s.empty()) s += ", ";
    s += hex(line.dev_id, 3) + " " + line.name;
  }
  return s;
}

// Sectors of one F4/F7-style bank of `bank_size` bytes from `base`: four of `unit`, one
// of 4 * unit, then 8 * unit each (RM0090 3.3 Table 5, RM0385 3.3.2 Table 3).
void add_bank(std::vector<FlashSector>& sectors, std::uint32_t base, std::uint32_t bank_size,
              std::uint32_t unit) {
  std::uint32_t offset = 0;
  unsigned n = 0;
  while (offset < bank_size) {
    const std::uint32_t size = n < 4 ? unit : n == 4 ? 4 * unit : 8 * unit;
    sectors.push_back({base + offset, std::min(size, bank_size - offset)});
    offset += size;
    ++n;
  }
}

}  // namespace

std::vector<MemoryRange> ChipInfo::memory() const {
  return {{flash_base, flash_size, "flash"}, {ram_base, ram_size, "sram"}};
}

int ChipInfo::sector_index(std::uint32_t address) const {
  const auto it =
      std::upper_bound(sectors.begin(), sectors.end(), address,
                       [](std::uint32_t a, const FlashSector& s) { return a < s.address; });
  if (it == sectors.begin()) return -1;
  const auto& s = *(it - 1);
  if (address >= s.end()) return -1;
  return static_cast<int>(it - 1 - sectors.begin());
}

std::uint32_t flash_size_register(std::uint16_t dev_id) {
  const Line* line = find_line(dev_id);
  if (!line) return 0;
  switch (line->family) {
    case Family::f1:
      return kF1FlashSizeReg;
    case Family::f3:
      return kF3FlashSizeReg;
    case Family::f4:
      return kF4FlashSizeReg;
    case Family::f7:
      return kF7FlashSizeReg;
  }
  return 0;
}

ChipInfo chip_from_ids(std::uint32_t idcode, std::uint16_t flash_size_kib, std::uint32_t optcr) {
  const auto dev_id = static_cast<std::uint16_t>(idcode & 0xFFF);
  const Line* line = find_line(dev_id);
  if (!line) {
    throw Error(ErrorCategory::usage,
                "unknown DEV_ID " + hex(dev_id, 3) + " (DBGMCU_IDCODE " + hex(idcode, 8) + ")",
                "probefarm supports these STM32 lines: " + known_lines() +
                    "; check that the probe is wired to the chip you expect");
  }
  // An erased or unprogrammed flash-size register reads 0xFFFF; 0 means it was not read.
  if (flash_size_kib == 0 || flash_size_kib == 0xFFFF) {
    throw Error(ErrorCategory::target_not_responding,
                std::string(line->name) + ": flash-size register reads " + hex(flash_size_kib, 4),
                "the chip's factory data is unreadable; check power and read protection");
  }
  ChipInfo chip;
  chip.name = line->name;
  chip.dev_id = dev_id;
  chip.rev_id = static_cast<std::uint16_t>(idcode >> 16);
  chip.family = line->family;
  chip.style = line->layout == Layout::pages ? FlashStyle::f1 : FlashStyle::f4;
  chip.flash_regs = chip.style == FlashStyle::f1 ? kF1FlashRegs : kF4FlashRegs;
  chip.flash_size = std::uint32_t{flash_size_kib} * 1024;
  chip.ram_size = line->ram_kib * 1024;
  const std::uint32_t base = chip.flash_base;
  switch (line->layout) {
    case Layout::pages:
      for (std::uint32_t a = 0; a < chip.flash_size; a += line->page_size)
        chip.sectors.push_back({base + a, line->page_size});
      break;
    case Layout::f4_sectors:
      add_bank(chip.sectors, base, chip.flash_size, 16 * 1024);
      break;
    case Layout::f42x_sectors: {
      // RM0090 3.3 Table 6: 2 MiB parts are always dual bank, bank 2 at +1 MiB. Table 7:
      // 1 MiB parts are dual bank (2 x 512 KiB) when DB1M is set.
      const bool dual = chip.flash_size == 2048 * 1024 ||
                        (chip.flash_size == 1024 * 1024 && (optcr & kOptcrDb1m) != 0);
      if (!dual) {
        add_bank(chip.sectors, base, chip.flash_size, 16 * 1024);
        break;
      }
      const std::uint32_t half = chip.flash_size / 2;
      add_bank(chip.sectors, base, half, 16 * 1024);
      chip.bank2_first = static_cast<std::uint32_t>(chip.sectors.size());
      add_bank(chip.sectors, base + half, half, 16 * 1024);
      break;
    }
    case Layout::f76x_sectors:
      // RM0410 3.3.2: nDBANK = 0 splits the flash into two banks of 16/64/128 KiB
      // sectors. Only the factory single-bank mode is supported.
      if ((optcr & kOptcrNdbank) == 0) {
        throw Error(ErrorCategory::usage,
                    std::string(line->name) + " is in dual-bank mode (FLASH_OPTCR.nDBANK = 0)",
                    "only the single-bank layout is supported; set nDBANK to 1 with "
                    "STM32CubeProgrammer");
      }
      add_bank(chip.sectors, base, chip.flash_size, 32 * 1024);
      break;
    case Layout::f7_sectors:
      add_bank(chip.sectors, base, chip.flash_size, 32 * 1024);
      break;
  }
  return chip;
}

ChipInfo detect_chip(protocol::MemAp& mem) {
  const std::uint32_t idcode = mem.read32(kDbgmcuIdcode);
  if ((idcode & 0xFFF) == 0) {
    throw Error(ErrorCategory::target_not_responding,
                "DBGMCU_IDCODE at " + hex(kDbgmcuIdcode, 8) + " reads " + hex(idcode, 8),
                "the chip did not identify itself; check that it is an STM32 and is powered");
  }
  const auto dev_id = static_cast<std::uint16_t>(idcode & 0xFFF);
  const std::uint32_t size_reg = flash_size_register(dev_id);
  if (size_reg == 0) return chip_from_ids(idcode, 0);  // throws: unknown DEV_ID
  const std::uint16_t size_kib = mem.read16(size_reg);
  std::uint32_t optcr = 0xFFFFFFFF;
  const Line* line = find_line(dev_id);
  if (line->layout == Layout::f42x_sectors || line->layout == Layout::f76x_sectors) {
    optcr = mem.read32(kF4FlashRegs + kOptcr);
  }
  return chip_from_ids(idcode, size_kib, optcr);
}

// ---- Timings -------------------------------------------------------------------------
//
// F1: DS5319 5.3.9 Table 28 (STM32F103x8/B) "Flash memory characteristics": tprog 52.5 us
// typical (70 us max) per half-word, tERASE (page) and tME 20 ms min / 40 ms max; the
// high-density and connectivity datasheets (DS5792 5.3.9, DS6014) give the same. F3: DS9118
// 6.3.10 Table "Flash memory characteristics": tprog 53.5 us typ, tERASE and tME 20/40 ms.
// Neither gives a typical erase time, so planning uses the minimum.
//
// F4: DS8626 5.3.12 Table 41 "Flash memory programming" (x8 / x16 / x32, typical/max):
// tERASE16KB 400/800, 300/600, 250/500 ms; tERASE64KB 1200/2400, 700/1400, 550/1100 ms;
// tERASE128KB 2000/4000, 1300/2600, 1000/2000 ms; tME 16/32, 11/22, 8/16 s; tprog 16 us
// typ per write. Table 42 (with VPP, x64): 230, 490, 875 ms and 6.9 s typical.
// F7: DS10916 5.3.12 "Flash memory programming": tERASE32KB 400/800, 250/600, 200/500 ms;
// tERASE128KB 1100/2400, 800/1400, 500/1100 ms; tERASE256KB 2000/4000, 1500/2600,
// 1000/2000 ms; tME 16/32, 11/22, 8/16 s; x64 with VPP: 180, 450, 900 ms, 6.9 s.

namespace {

struct SizedTime {
  std::uint32_t size_kib;
  std::array<OperationTime, 4> by_psize;  // x8, x16, x32, x64
};

constexpr std::array<SizedTime, 3> kF4Erase = {{
    {16, {{{400, 800}, {300, 600}, {250, 500}, {230, 500}}}},
    {64, {{{1200, 2400}, {700, 1400}, {550, 1100}, {490, 1100}}}},
    {128, {{{2000, 4000}, {1300, 2600}, {1000, 2000}, {875, 2000}}}},
}};
constexpr std::array<SizedTime, 3> kF7Erase = {{
    {32, {{{400, 800}, {250, 600}, {200, 500}, {180, 500}}}},
    {128, {{{1100, 2400}, {800, 1400}, {500, 1100}, {450, 1100}}}},
    {256, {{{2000, 4000}, {1500, 2600}, {1000, 2000}, {900, 2000}}}},
}};
// Per bank (DS8626, DS10916 tME); the same for F4 and F7.
constexpr std::array<OperationTime, 4> kMassErase = {
    {{16000, 32000}, {11000, 22000}, {8000, 16000}, {6900, 16000}}};
constexpr OperationTime kF1Erase = {20, 40};

}  // namespace

OperationTime sector_erase_time(const ChipInfo& chip, std::uint32_t sector_size, unsigned psize) {
  if (chip.style == FlashStyle::f1) return kF1Erase;
  const auto& table = chip.family == Family::f7 ? kF7Erase : kF4Erase;
  psize = std::min(psize, 3u);
  for (const auto& entry : table) {
    if (sector_size <= entry.size_kib * 1024) return entry.by_psize[psize];
  }
  return table.back().by_psize[psize];
}

OperationTime mass_erase_time(const ChipInfo& chip, unsigned psize) {
  if (chip.style == FlashStyle::f1) return kF1Erase;
  OperationTime t = kMassErase[std::min(psize, 3u)];
  if (chip.bank2_first != 0) {
    // Both banks at once: the datasheets give tME per bank; assume they add up.
    t.typical_ms *= 2;
    t.max_ms *= 2;
  }
  return t;
}

std::uint64_t program_time_us(const ChipInfo& chip, std::uint64_t bytes, unsigned psize) {
  if (chip.style == FlashStyle::f1) {
    // 52.5 us per half-word (DS5319 / DS9118 tprog typical).
    return (bytes + 1) / 2 * 105 / 2;
  }
  // 16 us per write of 1 << psize bytes (DS8626 / DS10916 tprog typical).
  const std::uint64_t unit = std::uint64_t{1} << std::min(psize, 3u);
  return (bytes + unit - 1) / unit * 16;
}

unsigned psize_for_supply(const ChipInfo& chip, unsigned supply_mv) {
  if (supply_mv < 1700 || supply_mv > 3600) {
    throw Error(ErrorCategory::usage,
                "supply voltage of " + std::to_string(supply_mv) + " mV is outside 1700-3600 mV",
                "give the target's VDD in millivolts, e.g. 3300");
  }
  if (chip.style == FlashStyle::f1) return 1;
  // RM0090 3.5.2 Table 7 / RM0385 3.3.2 Table 4: 2.7-3.6 V x32, 2.1-2.7 V x16, below x8.
  if (supply_mv >= 2700) return 2;
  if (supply_mv >= 2100) return 1;
  return 0;
}

}  // namespace probefarm::flash
