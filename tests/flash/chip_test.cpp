// The chip database (flash/chip.hpp): identification values, flash geometry per DEV_ID and
// flash size, bank layouts, timings and the supply-voltage parallelism.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "flash/chip.hpp"
#include "image_test_util.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

using testing::expect_error;

std::uint64_t total_size(const ChipInfo& chip) {
  std::uint64_t n = 0;
  for (const auto& s : chip.sectors)
    n += s.size;
  return n;
}

// Sectors are contiguous from the flash base and add up to the flash size.
void expect_contiguous(const ChipInfo& chip) {
  std::uint32_t at = chip.flash_base;
  for (const auto& s : chip.sectors) {
    EXPECT_EQ(s.address, at);
    at += s.size;
  }
  EXPECT_EQ(total_size(chip), chip.flash_size);
}

std::vector<std::uint32_t> sizes_kib(const ChipInfo& chip) {
  std::vector<std::uint32_t> out;
  for (const auto& s : chip.sectors)
    out.push_back(s.size / 1024);
  return out;
}

// The four simulated chips (sim/chip.cpp), by their DBGMCU_IDCODE and flash size.
TEST(ChipDatabase, Stm32F103MediumDensity) {
  const ChipInfo c = chip_from_ids(0x20036410, 64);
  EXPECT_EQ(c.name, "STM32F10x medium-density");
  EXPECT_EQ(c.dev_id, 0x410);
  EXPECT_EQ(c.rev_id, 0x2003);
  EXPECT_EQ(c.family, Family::f1);
  EXPECT_EQ(c.style, FlashStyle::f1);
  EXPECT_EQ(c.flash_regs, 0x40022000u);
  EXPECT_EQ(c.flash_size, 64u * 1024);
  ASSERT_EQ(c.sectors.size(), 64u);
  EXPECT_EQ(c.sectors[1].address, 0x08000400u);
  EXPECT_EQ(c.sectors[1].size, 1024u);
  EXPECT_EQ(c.ram_base, 0x20000000u);
  EXPECT_GT(c.ram_size, 0u);
  EXPECT_LE(c.ram_size, 20u * 1024) << "no more RAM than the sim's F103C8 has";
  expect_contiguous(c);
}

TEST(ChipDatabase, Stm32F103HighDensityHas2KiBPages) {
  const ChipInfo c = chip_from_ids(0x10006414, 512);
  EXPECT_EQ(c.dev_id, 0x414);
  ASSERT_EQ(c.sectors.size(), 256u);
  EXPECT_EQ(c.sectors[0].size, 2048u);
  expect_contiguous(c);
}

TEST(ChipDatabase, Stm32F303) {
  const ChipInfo c = chip_from_ids(0x10016422, 256);
  EXPECT_EQ(c.family, Family::f3);
  EXPECT_EQ(c.style, FlashStyle::f1);
  EXPECT_EQ(c.flash_regs, 0x40022000u);
  ASSERT_EQ(c.sectors.size(), 128u);
  EXPECT_EQ(c.sectors[127].address, 0x0803F800u);
  EXPECT_LE(c.ram_size, 40u * 1024);
  expect_contiguous(c);
}

TEST(ChipDatabase, Stm32F407) {
  const ChipInfo c = chip_from_ids(0x10076413, 1024);
  EXPECT_EQ(c.name, "STM32F405/407/415/417");
  EXPECT_EQ(c.family, Family::f4);
  EXPECT_EQ(c.style, FlashStyle::f4);
  EXPECT_EQ(c.flash_regs, 0x40023C00u);
  EXPECT_EQ(sizes_kib(c),
            (std::vector<std::uint32_t>{16, 16, 16, 16, 64, 128, 128, 128, 128, 128, 128, 128}));
  EXPECT_EQ(c.bank2_first, 0u);
  EXPECT_LE(c.ram_size, 128u * 1024);
  expect_contiguous(c);
}

TEST(ChipDatabase, Stm32F411HalfMegabyte) {
  const ChipInfo c = chip_from_ids(0x10006431, 512);
  EXPECT_EQ(sizes_kib(c), (std::vector<std::uint32_t>{16, 16, 16, 16, 64, 128, 128, 128}));
}

TEST(ChipDatabase, Stm32F42xTwoMegabytesIsDualBank) {
  const ChipInfo c = chip_from_ids(0x20006419, 2048);
  ASSERT_EQ(c.sectors.size(), 24u);
  EXPECT_EQ(c.bank2_first, 12u);
  EXPECT_EQ(c.sectors[12].address, 0x08100000u);
  EXPECT_EQ(c.sectors[12].size, 16u * 1024);
  EXPECT_EQ(c.sectors[16].size, 64u * 1024);
  EXPECT_EQ(c.sectors[23].size, 128u * 1024);
  expect_contiguous(c);
}

TEST(ChipDatabase, Stm32F42xOneMegabyteFollowsDb1m) {
  const ChipInfo single = chip_from_ids(0x20006419, 1024, 0x0FFFAAED);  // DB1M clear
  EXPECT_EQ(single.sectors.size(), 12u);
  EXPECT_EQ(single.bank2_first, 0u);
  const ChipInfo dual = chip_from_ids(0x20006419, 1024, 0x4FFFAAED);  // DB1M set
  ASSERT_EQ(dual.sectors.size(), 16u);
  EXPECT_EQ(dual.bank2_first, 8u);
  EXPECT_EQ(dual.sectors[8].address, 0x08080000u);
  expect_contiguous(dual);
}

TEST(ChipDatabase, Stm32F746) {
  const ChipInfo c = chip_from_ids(0x10016449, 1024);
  EXPECT_EQ(c.name, "STM32F74x/75x");
  EXPECT_EQ(c.family, Family::f7);
  EXPECT_EQ(c.style, FlashStyle::f4);
  EXPECT_EQ(c.flash_regs, 0x40023C00u);
  EXPECT_EQ(sizes_kib(c), (std::vector<std::uint32_t>{32, 32, 32, 32, 128, 256, 256, 256}));
  EXPECT_LE(c.ram_size, 320u * 1024);
  expect_contiguous(c);
}

TEST(ChipDatabase, Stm32F76xSingleBankOnly) {
  const ChipInfo c = chip_from_ids(0x10006451, 2048, 0xFFFFFFFF);
  EXPECT_EQ(sizes_kib(c),
            (std::vector<std::uint32_t>{32, 32, 32, 32, 128, 256, 256, 256, 256, 256, 256, 256}));
  expect_error([] { chip_from_ids(0x10006451, 2048, ~(1u << 29)); }, ErrorCategory::usage,
               {"dual-bank", "nDBANK"});
}

TEST(ChipDatabase, UnknownDevIdIsNamed) {
  expect_error([] { chip_from_ids(0x10000123, 64); }, ErrorCategory::usage,
               {"unknown DEV_ID 0x123"});
}

TEST(ChipDatabase, UnreadableFlashSize) {
  expect_error([] { chip_from_ids(0x20036410, 0xFFFF); }, ErrorCategory::target_not_responding,
               {"flash-size register", "0xFFFF"});
}

TEST(ChipDatabase, FlashSizeRegisters) {
  EXPECT_EQ(flash_size_register(0x410), 0x1FFFF7E0u);
  EXPECT_EQ(flash_size_register(0x422), 0x1FFFF7CCu);
  EXPECT_EQ(flash_size_register(0x413), 0x1FFF7A22u);
  EXPECT_EQ(flash_size_register(0x449), 0x1FF0F442u);
  EXPECT_EQ(flash_size_register(0x123), 0u);
}

TEST(ChipDatabase, MemoryAndSectorLookup) {
  const ChipInfo c = chip_from_ids(0x10076413, 1024);
  const auto mem = c.memory();
  ASSERT_EQ(mem.size(), 2u);
  EXPECT_EQ(mem[0].base, 0x08000000u);
  EXPECT_EQ(mem[0].size, 1024u * 1024);
  EXPECT_EQ(mem[1].base, 0x20000000u);
  EXPECT_EQ(c.sector_index(0x08000000), 0);
  EXPECT_EQ(c.sector_index(0x08013FFF), 4);
  EXPECT_EQ(c.sector_index(0x08020000), 5);
  EXPECT_EQ(c.sector_index(0x080FFFFF), 11);
  EXPECT_EQ(c.sector_index(0x08100000), -1);
  EXPECT_EQ(c.sector_index(0x07FFFFFF), -1);
}

TEST(ChipDatabase, ParallelismFollowsSupply) {
  const ChipInfo f4 = chip_from_ids(0x10076413, 1024);
  EXPECT_EQ(psize_for_supply(f4, 3300), 2u);
  EXPECT_EQ(psize_for_supply(f4, 2700), 2u);
  EXPECT_EQ(psize_for_supply(f4, 2500), 1u);
  EXPECT_EQ(psize_for_supply(f4, 1800), 0u);
  EXPECT_EQ(psize_for_supply(chip_from_ids(0x20036410, 64), 3300), 1u);
  expect_error([&] { psize_for_supply(f4, 1200); }, ErrorCategory::usage, {"1200 mV"});
}

TEST(ChipDatabase, Timings) {
  const ChipInfo f1 = chip_from_ids(0x20036410, 64);
  const ChipInfo f4 = chip_from_ids(0x10076413, 1024);
  // On the F1 one mass erase costs one page erase; on the F4 it costs many sectors.
  EXPECT_EQ(mass_erase_time(f1, 1).typical_ms, sector_erase_time(f1, 1024, 1).typical_ms);
  EXPECT_GT(mass_erase_time(f4, 2).typical_ms, 5 * sector_erase_time(f4, 128 * 1024, 2).typical_ms);
  EXPECT_LT(sector_erase_time(f4, 16 * 1024, 2).typical_ms,
            sector_erase_time(f4, 128 * 1024, 2).typical_ms);
  // Lower parallelism is slower.
  EXPECT_GT(sector_erase_time(f4, 16 * 1024, 0).typical_ms,
            sector_erase_time(f4, 16 * 1024, 2).typical_ms);
  EXPECT_GE(sector_erase_time(f4, 16 * 1024, 2).max_ms,
            sector_erase_time(f4, 16 * 1024, 2).typical_ms);
}

}  // namespace
}  // namespace probefarm::flash
