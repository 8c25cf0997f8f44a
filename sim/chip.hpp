#pragma once
// Static description of each simulated STM32: memory map, identification registers,
// flash geometry and timings. The numbers come from the reference manuals and
// datasheets cited in chip.cpp.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "clock.hpp"

namespace probefarm::sim {

enum class CoreKind { cortex_m3, cortex_m4f, cortex_m7 };
enum class FlashStyle { f1, f4, f7 };

struct MemoryRegion {
  std::uint32_t base;
  std::uint32_t size;
};

struct ChipInfo {
  std::string_view name;  // "stm32f407vg"
  std::string_view part;  // "STM32F407VG"
  CoreKind core;
  std::uint32_t cpuid;          // SCB CPUID value
  std::uint32_t dpidr;          // SW-DP DPIDR
  std::uint32_t targetid;       // DPv2 TARGETID, 0 for DPv1
  std::uint32_t ap_idr;         // AHB-AP IDR
  std::uint32_t dbgmcu_idcode;  // DBGMCU_IDCODE (REV_ID << 16 | DEV_ID)
  std::uint32_t reset_hz;       // core clock out of reset (HSI)

  std::vector<MemoryRegion> ram;  // SRAM, CCM, TCM: read/write, executable

  std::uint32_t flash_base;  // 0x08000000
  std::uint32_t flash_size;
  std::uint32_t flash_alias;  // second address of the flash (F7 ITCM: 0x00200000), 0 if none
  FlashStyle flash_style;
  std::uint32_t flash_regs;                 // flash interface register block
  std::uint32_t page_size;                  // F1 style: uniform page size; 0 for sector style
  std::vector<std::uint32_t> sector_sizes;  // F4/F7 style: sizes of sectors 0..n-1

  MemoryRegion system_memory;                    // read-only: bootloader, OTP, UID, flash size
  MemoryRegion otp;                              // OTP bytes and lock bytes; {0, 0}: none
  std::uint32_t flash_size_reg;                  // 16-bit, KiB
  std::uint32_t uid_reg;                         // 96-bit unique ID
  MemoryRegion option_bytes;                     // option-byte area as the bus sees it
  std::vector<std::uint8_t> option_bytes_reset;  // factory contents of that area

  std::uint32_t rcc_regs;  // RCC block (clock tree)
};

// The four simulated chips. Lookup is by lower-case name ("stm32f103c8").
std::span<const ChipInfo> all_chips();
const ChipInfo* find_chip(std::string_view name);

}  // namespace probefarm::sim
