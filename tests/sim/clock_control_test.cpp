// RCC model: the clock tree far enough to follow OpenOCD's stock reset-init scripts and
// ordinary firmware clock setup.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "chip.hpp"
#include "flash_controller.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint32_t kCr = 0x00;
constexpr std::uint32_t kHserdy = 1u << 17;
constexpr std::uint32_t kPllon = 1u << 24;
constexpr std::uint32_t kPllrdy = 1u << 25;

class RccRig {
 public:
  explicit RccRig(const char* name) : rcc(make_clock_control(*find_chip(name))) {}
  std::uint32_t mrw(std::uint32_t offset) { return rcc->read(offset, 4); }
  void mww(std::uint32_t offset, std::uint32_t value) { rcc->write(offset, value, 4); }
  // OpenOCD's `mmw addr setbits clearbits`.
  void mmw(std::uint32_t offset, std::uint32_t set, std::uint32_t clear) {
    mww(offset, (mrw(offset) & ~clear) | set);
  }
  std::unique_ptr<ClockControl> rcc;
};

TEST(ClockControlTest, ResetRunsFromHsi) {
  RccRig f1("stm32f103c8");
  EXPECT_EQ(f1.rcc->sysclk_hz(), 8'000'000u);
  EXPECT_EQ(f1.mrw(kCr), 0x83u);
  EXPECT_EQ(f1.mrw(0x04), 0u);
  EXPECT_EQ(f1.mrw(0x14), 0x14u);  // AHBENR: SRAM and FLITF clocks on

  RccRig f4("stm32f407vg");
  EXPECT_EQ(f4.rcc->sysclk_hz(), 16'000'000u);
  EXPECT_EQ(f4.mrw(kCr), 0x83u);
  EXPECT_EQ(f4.mrw(0x04), 0x24003010u);  // PLLCFGR
  EXPECT_EQ(f4.mrw(0x30), 0x00100000u);  // AHB1ENR: CCM RAM
}

// /usr/share/openocd/scripts/target/stm32f4x.cfg, reset-init.
TEST(ClockControlTest, Stm32f4xResetInitGives64MHz) {
  RccRig rig("stm32f407vg");
  rig.mww(0x04, 0x08012008);
  rig.mmw(0x00, 0x01000000, 0);
  rig.mmw(0x08, 0x00001000, 0);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 16'000'000u) << "SW not yet switched";
  rig.mmw(0x08, 0x00000002, 0);
  EXPECT_EQ(rig.mrw(0x08) & 0xF, 0xAu);  // SW = SWS = PLL
  EXPECT_EQ(rig.mrw(kCr) & kPllrdy, kPllrdy);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 64'000'000u);
}

// /usr/share/openocd/scripts/target/stm32f7x.cfg, reset-init (HSERDY is clear out of reset,
// so the CSS branch is skipped).
TEST(ClockControlTest, Stm32f7xResetInitGives160MHz) {
  RccRig rig("stm32f746ng");
  EXPECT_EQ(rig.mrw(kCr) & kHserdy, 0u);
  rig.mww(0x04, 0x08002808);
  rig.mmw(0x00, 0x01000000, 0);
  rig.mww(0x08, 0x00009400);
  rig.mmw(0x08, 0x00000002, 0);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 160'000'000u);
}

// /usr/share/openocd/scripts/target/stm32f3x.cfg, reset-init: HSI/2 x 16.
TEST(ClockControlTest, Stm32f3xResetInitGives64MHz) {
  RccRig rig("stm32f303vc");
  rig.mww(0x04, 0x00380400);
  rig.mmw(0x00, 0x01000000, 0);
  rig.mmw(0x04, 0x00000002, 0);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 64'000'000u);
}

// stm32f1x.cfg has no reset-init clock setup, so the F103 stays on HSI; firmware usually
// runs HSE 8 MHz x 9.
TEST(ClockControlTest, F103FirmwareStyleSetupGives72MHz) {
  RccRig rig("stm32f103c8");
  rig.mmw(0x00, 1u << 16, 0);  // HSEON
  EXPECT_EQ(rig.mrw(kCr) & kHserdy, kHserdy);
  rig.mmw(0x04, (7u << 18) | (1u << 16), 0);  // PLLMUL x9, PLLSRC = HSE
  rig.mmw(0x00, kPllon, 0);
  rig.mmw(0x04, 2, 0);
  EXPECT_EQ(rig.mrw(0x04) & 0xC, 0x8u);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 72'000'000u);
  rig.mmw(0x04, 1u << 17, 0);  // PLLXTPRE: locked while the PLL runs
  EXPECT_EQ(rig.rcc->sysclk_hz(), 72'000'000u);
}

TEST(ClockControlTest, SwitchWaitsForTheSourceToBeReady) {
  RccRig rig("stm32f746ng");
  rig.mww(0x08, 0x1);  // HSE selected but off
  EXPECT_EQ(rig.mrw(0x08) & 0xC, 0x0u);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 16'000'000u);
  rig.mmw(0x00, 1u << 16, 0);
  EXPECT_EQ(rig.mrw(0x08) & 0xC, 0x4u);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 25'000'000u);
}

TEST(ClockControlTest, RunningPllCannotBeStoppedOrReconfigured) {
  RccRig rig("stm32f407vg");
  rig.mww(0x04, 0x08012008);
  rig.mmw(0x00, kPllon, 0);
  rig.mmw(0x08, 2, 0);
  rig.mmw(0x00, 0, kPllon | 1u);  // try to stop the PLL and HSI
  EXPECT_EQ(rig.mrw(kCr) & (kPllon | 1u), kPllon | 1u);
  rig.mww(0x04, 0x08012010);
  EXPECT_EQ(rig.mrw(0x04), 0x08012008u);
  rig.mmw(0x08, 0, 3);  // back to HSI
  rig.mmw(0x00, 0, kPllon);
  EXPECT_EQ(rig.mrw(kCr) & (kPllon | kPllrdy), 0u);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 16'000'000u);
}

TEST(ClockControlTest, OtherRegistersStoreAndResetRestores) {
  RccRig rig("stm32f407vg");
  rig.mww(0x30, 0x0010000F);      // AHB1ENR: GPIOA-D
  rig.rcc->write(0x44, 0x40, 1);  // APB2ENR byte access
  rig.mww(0x0C, 0x00800000);      // CIR: CSSC strobe reads as zero
  EXPECT_EQ(rig.mrw(0x30), 0x0010000Fu);
  EXPECT_EQ(rig.mrw(0x44), 0x40u);
  EXPECT_EQ(rig.mrw(0x0C), 0u);
  rig.mww(0x04, 0x08012008);
  rig.mmw(0x00, kPllon, 0);
  rig.mmw(0x08, 2, 0);
  rig.rcc->reset();
  EXPECT_EQ(rig.mrw(0x30), 0x00100000u);
  EXPECT_EQ(rig.mrw(0x44), 0u);
  EXPECT_EQ(rig.mrw(0x04), 0x24003010u);
  EXPECT_EQ(rig.rcc->sysclk_hz(), 16'000'000u);
}

}  // namespace
}  // namespace probefarm::sim
