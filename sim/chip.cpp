#include "chip.hpp"

#include <array>

namespace probefarm::sim {
namespace {

// Identification values:
// - CPUID: ARMv7-M ARM (DDI 0403E) B3.2.3; part/revision per core TRM (Cortex-M3 r1p1
//   DDI 0337, Cortex-M4 r0p1 DDI 0439, Cortex-M7 r1p0 DDI 0489).
// - DPIDR: SW-DP IDCODE listed in each reference manual's debug chapter (RM0008 31.6.3,
//   RM0316 33.8.2, RM0090 38.6.3, RM0385 40.5.3). The F7's DP is a DPv2 (Cortex-M7).
// - DBGMCU_IDCODE at 0xE0042000: DEV_ID/REV_ID from each reference manual (RM0008
//   31.6.1, RM0316 33.6.1, RM0090 38.6.1, RM0385 40.6.1).
const std::array<ChipInfo, 4> kChips = {{
    {
        .name = "stm32f103c8",
        .part = "STM32F103C8",
        .core = CoreKind::cortex_m3,
        .cpuid = 0x411FC231,  // Cortex-M3 r1p1
        .dpidr = 0x1BA01477,
        .targetid = 0,
        .ap_idr = 0x14770011,
        .dbgmcu_idcode = 0x20036410,  // DEV_ID 0x410 medium density, REV_ID 0x2003 (rev Y)
        .reset_hz = 8'000'000,        // HSI, RM0008 7.2.1
        // DS5319 (STM32F103x8/B) 4 Memory mapping: 20 KiB SRAM.
        .ram = {{0x20000000, 20 * 1024}},
        .flash_base = 0x08000000,
        .flash_size = 64 * 1024,
        .flash_alias = 0,
        .flash_style = FlashStyle::f1,
        .flash_regs = 0x40022000,  // RM0008 3.3 memory map
        .page_size = 1024,         // RM0008 3.3.3: medium density, 1 KiB pages
        .sector_sizes = {},
        // RM0008 3.3.3 Table 3: system memory 0x1FFFF000-0x1FFFF7FF; 30.1/30.2 flash
        // size register 0x1FFFF7E0, unique ID 0x1FFFF7E8.
        .system_memory = {0x1FFFF000, 0x800},
        .otp = {0, 0},
        .flash_size_reg = 0x1FFFF7E0,
        .uid_reg = 0x1FFFF7E8,
        // PM0075 2.5 option bytes: RDP=0xA5 (unprotected), USER, Data0/1, WRP0-3, each
        // followed by its complement.
        .option_bytes = {0x1FFFF800, 16},
        .option_bytes_reset = {0xA5, 0x5A, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00,  //
                               0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00},
        .rcc_regs = 0x40021000,
    },
    {
        .name = "stm32f303vc",
        .part = "STM32F303VC",
        .core = CoreKind::cortex_m4f,
        .cpuid = 0x410FC241,  // Cortex-M4 r0p1
        .dpidr = 0x2BA01477,
        .targetid = 0,
        .ap_idr = 0x24770011,
        .dbgmcu_idcode = 0x10016422,  // DEV_ID 0x422, REV_ID 0x1001 (rev Z)
        .reset_hz = 8'000'000,        // HSI, RM0316 9.2.2
        // DS9118 (STM32F303xB/C) 5 Memory mapping: 40 KiB SRAM, 8 KiB CCM SRAM.
        .ram = {{0x20000000, 40 * 1024}, {0x10000000, 8 * 1024}},
        .flash_base = 0x08000000,
        .flash_size = 256 * 1024,
        .flash_alias = 0,
        .flash_style = FlashStyle::f1,
        .flash_regs = 0x40022000,
        .page_size = 2048,  // RM0316 4.2.1: 2 KiB pages
        .sector_sizes = {},
        // RM0316 3.2.2 memory map: system memory 0x1FFFD800-0x1FFFF7FF; 34.1/34.2 unique
        // ID 0x1FFFF7AC, flash size 0x1FFFF7CC.
        .system_memory = {0x1FFFD800, 0x2000},
        .otp = {0, 0},
        .flash_size_reg = 0x1FFFF7CC,
        .uid_reg = 0x1FFFF7AC,
        // RM0316 4.5: option bytes, RDP=0xAA is level 0.
        .option_bytes = {0x1FFFF800, 16},
        .option_bytes_reset = {0xAA, 0x55, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00,  //
                               0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00},
        .rcc_regs = 0x40021000,
    },
    {
        .name = "stm32f407vg",
        .part = "STM32F407VG",
        .core = CoreKind::cortex_m4f,
        .cpuid = 0x410FC241,  // Cortex-M4 r0p1
        .dpidr = 0x2BA01477,
        .targetid = 0,
        .ap_idr = 0x24770011,
        .dbgmcu_idcode = 0x10076413,  // DEV_ID 0x413, REV_ID 0x1007 (rev 1)
        .reset_hz = 16'000'000,       // HSI, RM0090 6.2.2
        // RM0090 2.3 memory map: SRAM1 112 KiB + SRAM2 16 KiB contiguous, CCM 64 KiB.
        .ram = {{0x20000000, 128 * 1024}, {0x10000000, 64 * 1024}},
        .flash_base = 0x08000000,
        .flash_size = 1024 * 1024,
        .flash_alias = 0,
        .flash_style = FlashStyle::f4,
        .flash_regs = 0x40023C00,
        .page_size = 0,
        // RM0090 3.3 Table 5: 4 x 16 KiB, 1 x 64 KiB, 7 x 128 KiB.
        .sector_sizes = {16384, 16384, 16384, 16384, 65536, 131072, 131072, 131072, 131072, 131072,
                         131072, 131072},
        // RM0090 3.3 Table 5: system memory 0x1FFF0000-0x1FFF77FF, OTP 0x1FFF7800-
        // 0x1FFF7A0F; 39.1/39.2 unique ID 0x1FFF7A10, flash size 0x1FFF7A22.
        .system_memory = {0x1FFF0000, 0x7A30},
        .otp = {0x1FFF7800, 0x210},
        .flash_size_reg = 0x1FFF7A22,
        .uid_reg = 0x1FFF7A10,
        // RM0090 3.6.1 Table 16: option bytes at 0x1FFFC000 (RDP/USER) and 0x1FFFC008
        // (nWRP); FLASH_OPTCR reset value 0x0FFFAAED. The upper half of each 64-bit row
        // reads as the complement.
        .option_bytes = {0x1FFFC000, 16},
        .option_bytes_reset = {0xEC, 0xAA, 0x13, 0x55, 0xFF, 0xFF, 0xFF, 0xFF,  //
                               0xFF, 0x0F, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, 0xFF},
        .rcc_regs = 0x40023800,
    },
    {
        .name = "stm32f746ng",
        .part = "STM32F746NG",
        .core = CoreKind::cortex_m7,
        .cpuid = 0x411FC270,  // Cortex-M7 r1p0
        .dpidr = 0x5BA02477,
        .targetid = 0x04490041,  // TPARTNO 0x449, TDESIGNER ST (JEP106 0x20)
        .ap_idr = 0x74770001,
        .dbgmcu_idcode = 0x10016449,  // DEV_ID 0x449, REV_ID 0x1001 (rev Z)
        .reset_hz = 16'000'000,       // HSI, RM0385 5.2.2
        // RM0385 2.2.2 memory map: ITCM RAM 16 KiB @0, DTCM 64 KiB + SRAM1 240 KiB +
        // SRAM2 16 KiB contiguous from 0x20000000.
        .ram = {{0x20000000, 320 * 1024}, {0x00000000, 16 * 1024}},
        .flash_base = 0x08000000,
        .flash_size = 1024 * 1024,
        .flash_alias = 0x00200000,  // RM0385 3.3.2: flash on the ITCM interface
        .flash_style = FlashStyle::f7,
        .flash_regs = 0x40023C00,
        .page_size = 0,
        // RM0385 3.3.2 Table 3: 4 x 32 KiB, 1 x 128 KiB, 3 x 256 KiB.
        .sector_sizes = {32768, 32768, 32768, 32768, 131072, 262144, 262144, 262144},
        // RM0385 2.2.2: system memory 0x1FF00000-0x1FF0EDBF, OTP 0x1FF0F000-0x1FF0F41F;
        // 41.1/41.2 unique ID 0x1FF0F420, flash size 0x1FF0F442.
        .system_memory = {0x1FF00000, 0xF450},
        .otp = {0x1FF0F000, 0x420},
        .flash_size_reg = 0x1FF0F442,
        .uid_reg = 0x1FF0F420,
        // RM0385 3.4.1 Table 5: option bytes 0x1FFF0000-0x1FFF001F; FLASH_OPTCR reset
        // 0xC0FFAAFD, FLASH_OPTCR1 reset 0x00400080. Complements in the upper halves.
        .option_bytes = {0x1FFF0000, 32},
        .option_bytes_reset = {0xFC, 0xAA, 0x03, 0x55, 0xFF, 0xFF, 0xFF, 0xFF,  //
                               0xFF, 0xC0, 0x00, 0x3F, 0xFF, 0xFF, 0xFF, 0xFF,  //
                               0x80, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,  //
                               0x40, 0x00, 0xBF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
        .rcc_regs = 0x40023800,
    },
}};

}  // namespace

std::span<const ChipInfo> all_chips() {
  return kChips;
}

const ChipInfo* find_chip(std::string_view name) {
  for (const auto& chip : kChips) {
    if (chip.name == name) return &chip;
  }
  return nullptr;
}

}  // namespace probefarm::sim
