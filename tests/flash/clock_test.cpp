// The loader session's raised core clock (LoaderSession::raise_clock / set_fast_crc): long
// on-target CRCs run from the PLL, the reset clock comes back afterwards, and a clock the
// firmware set up is left alone. On every simulated chip, through SimDapProbe.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

// g++ 12 at -O2 reports a false maybe-uninitialized in SimDapProbe's std::optional
// bookkeeping when it is inlined into this file's tests.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "common/sim_dap_probe.hpp"
#pragma GCC diagnostic pop
#include "flash/loader.hpp"
#include "flash/loader_session.hpp"
#include "flash/programmer.hpp"
#include "flash/target.hpp"

namespace probefarm::flash {
namespace {

using probefarm::test::SimDapProbe;
using probefarm::test::SimTarget;

constexpr std::uint32_t kFlash = 0x08000000;

// RCC and FLASH_ACR addresses (RM0008 7.3, RM0316 9.4, RM0090 7.3, RM0385 5.3).
struct ClockRegs {
  std::uint32_t cr, cfgr, pllcfgr, acr;
  std::uint32_t latency;  // the wait states raise_clock sets
};

ClockRegs clock_regs(const ChipInfo& chip) {
  if (chip.style == FlashStyle::f1) return {0x40021000, 0x40021004, 0, chip.flash_regs, 2};
  return {0x40023800, 0x40023808, 0x40023804, chip.flash_regs, 5};
}

std::vector<std::uint32_t> read_regs(Target& t) {
  const ClockRegs r = clock_regs(t.chip());
  protocol::MemAp& mem = t.memory();
  return {mem.read32(r.cr), mem.read32(r.cfgr), r.pllcfgr ? mem.read32(r.pllcfgr) : 0,
          mem.read32(r.acr)};
}

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::uint8_t>(i * 7 + (i >> 9));
  return out;
}

class ClockChip : public ::testing::TestWithParam<const char*> {};

TEST_P(ClockChip, LongCrcRunsFromThePllAndTheResetClockComesBack) {
  const auto bytes = pattern(48 * 1024);
  SimTarget sim(GetParam(), bytes);
  SimDapProbe probe(sim.board());
  Target target(probe);
  const ClockRegs r = clock_regs(target.chip());
  const std::vector<std::uint32_t> before = read_regs(target);
  ASSERT_EQ(before[1] & 0xC, 0u) << "the board starts on HSI";

  LoaderSession session(target);
  session.set_fast_crc(true);
  EXPECT_EQ(session.crc32(kFlash, 1024), crc32(std::span(bytes).first(1024)));
  EXPECT_FALSE(session.clock_raised()) << "a short CRC is not worth the switch";
  EXPECT_EQ(session.crc32(kFlash, static_cast<std::uint32_t>(bytes.size())), crc32(bytes));
  EXPECT_TRUE(session.clock_raised());
  const std::vector<std::uint32_t> raised = read_regs(target);
  EXPECT_EQ(raised[1] & 0xC, 0x8u) << "SWS: PLL";
  EXPECT_NE(raised[0] & (1u << 25), 0u) << "PLLRDY";
  EXPECT_EQ(raised[3] & 0xF, r.latency) << "wait states for the raised clock";

  session.set_fast_crc(false);
  EXPECT_FALSE(session.clock_raised());
  EXPECT_EQ(read_regs(target), before) << "every register it changed is back";
}

TEST_P(ClockChip, FlashLeavesTheClockAsItFoundIt) {
  SimTarget sim(GetParam());
  SimDapProbe probe(sim.board());
  Target target(probe);
  const std::vector<std::uint32_t> before = read_regs(target);
  Image image;
  image.name = "pattern";
  image.segments.push_back({kFlash, pattern(40 * 1024)});
  FlashOptions options;
  const FlashReport rep = Programmer(target).flash(image, options);
  EXPECT_TRUE(rep.verified);
  EXPECT_EQ(read_regs(target), before);
}

TEST_P(ClockChip, AClockTheFirmwareChoseIsLeftAlone) {
  const auto bytes = pattern(32 * 1024);
  SimTarget sim(GetParam(), bytes);
  SimDapProbe probe(sim.board());
  Target target(probe);
  const ClockRegs r = clock_regs(target.chip());
  protocol::MemAp& mem = target.memory();
  // As firmware would: HSE on, SYSCLK from HSE (SW = 01).
  mem.write32(r.cr, mem.read32(r.cr) | (1u << 16));
  mem.write32(r.cfgr, (mem.read32(r.cfgr) & ~3u) | 1u);
  const std::vector<std::uint32_t> before = read_regs(target);
  ASSERT_EQ(before[1] & 0xC, 0x4u) << "SWS: HSE";

  LoaderSession session(target);
  session.set_fast_crc(true);
  EXPECT_EQ(session.crc32(kFlash, static_cast<std::uint32_t>(bytes.size())), crc32(bytes));
  EXPECT_FALSE(session.clock_raised());
  session.set_fast_crc(false);
  EXPECT_EQ(read_regs(target), before);
}

INSTANTIATE_TEST_SUITE_P(AllChips, ClockChip,
                         ::testing::Values("stm32f103c8", "stm32f303vc", "stm32f407vg",
                                           "stm32f746ng"));

}  // namespace
}  // namespace probefarm::flash
