#pragma once
// The chip database: which STM32 is behind the debug port (DBGMCU_IDCODE), how big its
// flash is (the factory flash-size register), how that flash is divided into pages or
// sectors, where its flash interface and RAM are, and how long its erase operations take
// (for the planner's mass-erase choice and for the deadlines of the driver's BSY polls).
#include <cstdint>
#include <string>
#include <vector>

#include "flash/image.hpp"

namespace probefarm::protocol {
class MemAp;
}

namespace probefarm::flash {

// F1/F3 controller (PM0075, RM0316 4); F2/F4/F7 controller (RM0090 3, RM0385 3).
enum class FlashStyle { f1, f4 };

// Product families; they differ in timings and in a few register details.
enum class Family { f1, f3, f4, f7 };

struct FlashSector {
  std::uint32_t address = 0, size = 0;

  std::uint64_t end() const { return std::uint64_t{address} + size; }
};

struct ChipInfo {
  std::string name;  // "STM32F405/407/415/417" (the DEV_ID's line)
  std::uint16_t dev_id = 0, rev_id = 0;
  std::string core;  // from CortexM identity, e.g. "Cortex-M4 r0p1"
  Family family{};
  FlashStyle style{};
  std::uint32_t flash_regs = 0;                           // 0x40022000 / 0x40023C00
  std::uint32_t flash_base = 0x08000000, flash_size = 0;  // from the flash-size register
  std::vector<FlashSector> sectors;                       // pages (F1/F3) or sectors (F4/F7)
  // F42x/43x in a dual-bank layout: index in `sectors` of the first sector of bank 2, whose
  // FLASH_CR.SNB values start at 0b10000 (RM0090 3.9.8). 0: one bank.
  std::uint32_t bank2_first = 0;
  std::uint32_t ram_base = 0x20000000, ram_size = 0;  // contiguous SRAM every part of the line has

  std::vector<MemoryRange> memory() const;  // flash + RAM for check_fits
  // Index of the sector holding `address`; -1 when it is outside the flash.
  int sector_index(std::uint32_t address) const;
};

// Reads DBGMCU_IDCODE and the flash-size register through `mem` (the system AP, core
// halted or not) and builds the ChipInfo. Throws Error(target_not_responding) when the
// IDCODE reads as 0 (DBGMCU not clocked / wrong AP) and Error(usage) naming an unknown
// DEV_ID; both with a hint. `core` is left empty for the caller to fill.
ChipInfo detect_chip(protocol::MemAp& mem);

// The database without a target: the chip a given DEV_ID and flash-size register value
// describe (tests, and the CLI's `--chip` listing). `optcr` is FLASH_OPTCR, which selects
// the bank layout on F42x/43x (DB1M) and F76x/77x (nDBANK). Throws like detect_chip.
ChipInfo chip_from_ids(std::uint32_t idcode, std::uint16_t flash_size_kib,
                       std::uint32_t optcr = 0xFFFFFFFF);

// Where the flash-size register of a DEV_ID's family is; 0 for an unknown DEV_ID.
std::uint32_t flash_size_register(std::uint16_t dev_id);

// Datasheet erase and programming times ("typical" for planning, "max" for deadlines).
// `psize` is the F4/F7 parallelism (0 x8 .. 3 x64), ignored for F1/F3.
struct OperationTime {
  std::uint32_t typical_ms = 0;
  std::uint32_t max_ms = 0;
};
OperationTime sector_erase_time(const ChipInfo& chip, std::uint32_t sector_size, unsigned psize);
OperationTime mass_erase_time(const ChipInfo& chip, unsigned psize);
// Typical time to program `bytes` bytes, in microseconds.
std::uint64_t program_time_us(const ChipInfo& chip, std::uint64_t bytes, unsigned psize);

// F4/F7 program/erase parallelism (FLASH_CR.PSIZE: 0 x8, 1 x16, 2 x32) the supply voltage
// allows (RM0090 3.5.2 Table 7, RM0385 3.3.2 Table 4); x64 needs an external VPP and is
// never chosen. F1/F3 program half-words: 1. Throws Error(usage) below 1.7 V.
unsigned psize_for_supply(const ChipInfo& chip, unsigned supply_mv);

}  // namespace probefarm::flash
