// Sector-style flash controller (STM32F407: RM0090 section 3; STM32F746: RM0385 section 3).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "chip.hpp"
#include "clock.hpp"
#include "flash_controller.hpp"
#include "flash_rig.hpp"

namespace probefarm::sim::test {
namespace {

constexpr std::uint32_t kAcr = 0x00;
constexpr std::uint32_t kKeyr = 0x04;
constexpr std::uint32_t kOptkeyr = 0x08;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kOptcr = 0x14;
constexpr std::uint32_t kOptcr1 = 0x18;

constexpr std::uint32_t kEop = 1u << 0;
constexpr std::uint32_t kOperr = 1u << 1;
constexpr std::uint32_t kWrperr = 1u << 4;
constexpr std::uint32_t kPgaerr = 1u << 5;
constexpr std::uint32_t kPgperr = 1u << 6;
constexpr std::uint32_t kPgserr = 1u << 7;  // ERSERR on the F7
constexpr std::uint32_t kBsy = 1u << 16;

constexpr std::uint32_t kPg = 1u << 0;
constexpr std::uint32_t kSer = 1u << 1;
constexpr std::uint32_t kMer = 1u << 2;
constexpr std::uint32_t snb(std::uint32_t n) {
  return n << 3;
}
constexpr std::uint32_t kX8 = 0u << 8;
constexpr std::uint32_t kX16 = 1u << 8;
constexpr std::uint32_t kX32 = 2u << 8;
constexpr std::uint32_t kX64 = 3u << 8;
constexpr std::uint32_t kStrt = 1u << 16;
constexpr std::uint32_t kEopie = 1u << 24;
constexpr std::uint32_t kErrie = 1u << 25;
constexpr std::uint32_t kLock = 1u << 31;

constexpr std::uint32_t kKey1 = 0x45670123;
constexpr std::uint32_t kKey2 = 0xCDEF89AB;

// RM0090 3.9.6 / RM0385 3.7.6 FLASH_OPTCR, 3.7.2 / 3.4.2 option keys.
constexpr std::uint32_t kOptlock = 1u << 0;
constexpr std::uint32_t kOptstrt = 1u << 1;
constexpr std::uint32_t kOptKey1 = 0x08192A3B;
constexpr std::uint32_t kOptKey2 = 0x4C5D6E7F;

// DS8626 / DS10916 typical values.
constexpr Picoseconds kProgram = 16 * kMicrosecond;
constexpr Picoseconds kF407Erase16kX32 = 250 * kMillisecond;
constexpr Picoseconds kF407Erase16kX8 = 400 * kMillisecond;
constexpr Picoseconds kF407MassX32 = 8000 * kMillisecond;
constexpr Picoseconds kF746Erase128kX32 = 500 * kMillisecond;
// OPTSTRT: the smallest sector's erase time at x32 (tERASE16KB, tERASE32KB), plus tME at
// x32 for an RDP regression (the model's choice, flash_f4.cpp).
constexpr Picoseconds kF407Options = 250 * kMillisecond;
constexpr Picoseconds kF746Options = 200 * kMillisecond;

class F4Rig : public FlashRig {
 public:
  using FlashRig::FlashRig;

  // RM0090 3.7.2 / RM0385 3.4.2: the option keys unlock FLASH_OPTCR.
  void unlock_options() {
    set(kOptkeyr, kOptKey1);
    set(kOptkeyr, kOptKey2);
  }
  // RM0090 3.7.2 (user option bytes programming): write FLASH_OPTCR, then set OPTSTRT.
  void program_options(std::uint32_t optcr) {
    set(kOptcr, optcr & ~(kOptlock | kOptstrt));
    set(kOptcr, (optcr & ~kOptlock) | kOptstrt);
  }
  // Sets the RDP option byte (and its complement) directly and reloads, as a reset would.
  void set_rdp(std::uint8_t rdp) {
    option_bytes[1] = rdp;
    option_bytes[3] = static_cast<std::uint8_t>(~rdp);
    fc->reset();
  }
};

TEST(FlashF4Test, ResetValuesFollowTheManual) {
  F4Rig f4("stm32f407vg");
  EXPECT_EQ(f4.reg(kAcr), 0u);
  EXPECT_EQ(f4.reg(kCr), kLock);
  EXPECT_EQ(f4.reg(kSr), 0u);
  EXPECT_EQ(f4.reg(kOptcr), 0x0FFFAAEDu);  // RM0090 3.9.6
  EXPECT_EQ(f4.reg(kOptcr1), 0u);          // no OPTCR1 on the F407

  F4Rig f7("stm32f746ng");
  EXPECT_EQ(f7.reg(kCr), kLock);
  EXPECT_EQ(f7.reg(kOptcr), 0xC0FFAAFDu);   // RM0385 3.7.6
  EXPECT_EQ(f7.reg(kOptcr1), 0x00400080u);  // RM0385 3.7.7
}

TEST(FlashF4Test, AcrStoresWhatIsWritten) {
  F4Rig rig("stm32f407vg");
  rig.set(kAcr, 0x00000705);
  EXPECT_EQ(rig.reg(kAcr), 0x00000705u);
}

TEST(FlashF4Test, KeySequenceUnlocksAndLockBitRelocks) {
  F4Rig rig("stm32f407vg");
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr), kLock);
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), 0u);
  rig.set(kCr, kPg | kX32);
  EXPECT_EQ(rig.reg(kCr), kPg | kX32);
  rig.set(kCr, kLock);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, 0u);
}

TEST(FlashF4Test, WrongKeyLocksUntilReset) {
  F4Rig rig("stm32f746ng");
  rig.set(kKeyr, kKey1);
  rig.set(kKeyr, 0x12345678);
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), kLock);
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr), kLock);
  rig.fc->reset();
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), 0u);
}

// Unlike the F1 FPEC, a key written while FLASH_CR is unlocked locks it up until reset
// (OpenOCD's stm32f2x reads LOCK first for that reason).
TEST(FlashF4Test, KeyWriteWhileUnlockedLocksUp) {
  F4Rig rig("stm32f407vg");
  rig.unlock();
  rig.set(kKeyr, kKey1);
  EXPECT_EQ(rig.reg(kCr), kLock);
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), kLock);
}

TEST(FlashF4Test, ProgramWordIsBusyForTprogAndSetsEopOnlyWithEopie) {
  F4Rig rig("stm32f407vg");
  rig.unlock();
  rig.set(kCr, kPg | kX32);
  const Picoseconds start = rig.clock.now();
  EXPECT_EQ(rig.fc->array_write(0x200, 0xDEADBEEF, 4).status, BusStatus::ok);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  const auto stalled = rig.fc->array_read(0x200, 4);
  EXPECT_EQ(stalled.status, BusStatus::busy);
  EXPECT_EQ(stalled.busy_until, start + kProgram);
  rig.clock.advance(kProgram - 1);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(1);
  EXPECT_EQ(rig.reg(kSr), 0u) << "EOP needs EOPIE (RM0090 3.9.4)";
  const auto r = rig.fc->array_read(0x200, 4);
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.value, 0xDEADBEEFu);
  EXPECT_EQ(rig.counters.bytes_programmed, 4u);
  ASSERT_EQ(rig.changes.size(), 1u);
  EXPECT_EQ(rig.changes[0], std::make_pair(0x200u, 4u));

  rig.set(kCr, kPg | kX16 | kEopie);
  rig.fc->array_write(0x204, 0xCAFE, 2);
  rig.clock.advance(kProgram);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.flash32(0x204), 0xFFFFCAFEu);
  rig.set(kSr, kEop);
  EXPECT_EQ(rig.reg(kSr), 0u);
}

TEST(FlashF4Test, WriteWithoutPgIsSequenceError) {
  for (auto name : {"stm32f407vg", "stm32f746ng"}) {
    F4Rig rig(name);
    EXPECT_EQ(rig.fc->array_write(0x0, 0x12345678, 4).status, BusStatus::ok);
    EXPECT_EQ(rig.reg(kSr), kPgserr) << name;
    rig.unlock();
    rig.set(kSr, kPgserr);
    rig.set(kCr, kX32);
    rig.fc->array_write(0x0, 0x12345678, 4);
    EXPECT_EQ(rig.reg(kSr), kPgserr) << name;
    EXPECT_EQ(rig.flash32(0), 0xFFFFFFFFu);
    EXPECT_FALSE(rig.fc->busy());
  }
}

TEST(FlashF4Test, WidthOtherThanPsizeIsParallelismError) {
  F4Rig rig("stm32f407vg");
  rig.unlock();
  rig.set(kCr, kPg | kX32);
  rig.fc->array_write(0x10, 0xAB, 1);
  EXPECT_EQ(rig.reg(kSr), kPgperr);
  rig.set(kSr, kPgperr);
  rig.set(kCr, kPg | kX8);
  rig.fc->array_write(0x10, 0xABCD, 2);
  EXPECT_EQ(rig.reg(kSr), kPgperr);
  EXPECT_EQ(rig.flash32(0x10), 0xFFFFFFFFu);
  EXPECT_EQ(rig.counters.bytes_programmed, 0u);
  rig.set(kSr, kPgperr);
  rig.fc->array_write(0x11, 0xAB, 1);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_EQ(rig.flash32(0x10), 0xFFFFABFFu);
}

TEST(FlashF4Test, ErrorsAlsoSetOperrWhenErrieIsEnabled) {
  F4Rig rig("stm32f407vg");
  rig.unlock();
  rig.set(kCr, kPg | kX32 | kErrie);
  rig.fc->array_write(0x10, 0xAB, 1);
  EXPECT_EQ(rig.reg(kSr), kPgperr | kOperr);
  rig.set(kSr, kPgperr);
  EXPECT_EQ(rig.reg(kSr), kOperr);
  rig.set(kSr, kOperr);
  EXPECT_EQ(rig.reg(kSr), 0u);
}

TEST(FlashF4Test, DoubleWordProgramNeedsAlignedWordPairs) {
  F4Rig rig("stm32f746ng");
  rig.unlock();
  rig.set(kCr, kPg | kX64);
  rig.fc->array_write(0x104, 0x11111111, 4);  // high word first
  EXPECT_EQ(rig.reg(kSr), kPgaerr);
  rig.set(kSr, kPgaerr);
  rig.fc->array_write(0x100, 0x11111111, 4);
  rig.fc->array_write(0x10C, 0x22222222, 4);  // not the other half of the row
  EXPECT_EQ(rig.reg(kSr), kPgaerr);
  EXPECT_EQ(rig.flash32(0x100), 0xFFFFFFFFu);
  EXPECT_EQ(rig.flash32(0x10C), 0xFFFFFFFFu);
  rig.set(kSr, kPgaerr);

  rig.fc->array_write(0x108, 0x01234567, 4);
  EXPECT_FALSE(rig.fc->busy()) << "the low word only latches";
  rig.fc->array_write(0x10C, 0x89ABCDEF, 4);
  EXPECT_TRUE(rig.fc->busy());
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_EQ(rig.flash32(0x108), 0x01234567u);
  EXPECT_EQ(rig.flash32(0x10C), 0x89ABCDEFu);
  EXPECT_EQ(rig.counters.bytes_programmed, 8u);
}

TEST(FlashF4Test, ReprogrammingOnlyClearsBits) {
  F4Rig rig("stm32f407vg");
  rig.unlock();
  rig.set(kCr, kPg | kX32);
  rig.fc->array_write(0x40, 0x0000FFFF, 4);
  rig.wait_idle();
  rig.fc->array_write(0x40, 0xFFFF00FF, 4);
  rig.wait_idle();
  EXPECT_EQ(rig.flash32(0x40), 0x000000FFu);
  EXPECT_EQ(rig.reg(kSr), 0u);
}

TEST(FlashF4Test, SectorEraseTakesPsizeDependentTimeAndStallsReads) {
  F4Rig rig("stm32f407vg");
  std::fill(rig.flash.begin(), rig.flash.begin() + 0x10000, 0x00);  // sectors 0-3
  rig.unlock();
  rig.set(kCr, kSer | snb(1) | kX32 | kEopie);
  rig.set(kCr, kSer | snb(1) | kX32 | kEopie | kStrt);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  EXPECT_EQ(rig.fc->array_read(0, 4).status, BusStatus::busy);
  const auto w = rig.fc->array_write(0, 0, 4);
  EXPECT_EQ(w.status, BusStatus::busy);
  EXPECT_EQ(w.busy_until, kF407Erase16kX32);
  rig.clock.advance(kF407Erase16kX32 - 1);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  rig.clock.advance(1);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.reg(kCr) & kStrt, 0u);
  for (std::uint32_t i = 0x4000; i < 0x8000; ++i)
    ASSERT_EQ(rig.flash[i], 0xFF) << i;
  EXPECT_EQ(rig.flash[0x3FFF], 0x00);
  EXPECT_EQ(rig.flash[0x8000], 0x00);
  EXPECT_EQ(rig.counters.sectors_erased, 1u);
  ASSERT_EQ(rig.changes.size(), 1u);
  EXPECT_EQ(rig.changes[0], std::make_pair(0x4000u, 0x4000u));

  rig.set(kCr, kSer | snb(2) | kX8);
  rig.set(kCr, kSer | snb(2) | kX8 | kStrt);
  rig.clock.advance(kF407Erase16kX32);
  EXPECT_TRUE(rig.fc->busy()) << "x8 erases slower than x32";
  rig.clock.advance(kF407Erase16kX8 - kF407Erase16kX32);
  EXPECT_FALSE(rig.fc->busy());
}

TEST(FlashF4Test, F7SectorLayout) {
  F4Rig rig("stm32f746ng");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x00);
  rig.unlock();
  rig.set(kCr, kSer | snb(4) | kX32 | kStrt);
  rig.clock.advance(kF746Erase128kX32 - 1);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(1);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.flash[0x1FFFF], 0x00);
  EXPECT_EQ(rig.flash[0x20000], 0xFF);
  EXPECT_EQ(rig.flash[0x3FFFF], 0xFF);
  EXPECT_EQ(rig.flash[0x40000], 0x00);
}

TEST(FlashF4Test, MassErase) {
  F4Rig rig("stm32f407vg");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
  rig.unlock();
  rig.set(kCr, kMer | kX32);
  rig.set(kCr, kMer | kX32 | kStrt);
  rig.clock.advance(kF407MassX32 - 1);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(1);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_TRUE(std::all_of(rig.flash.begin(), rig.flash.end(), [](auto b) { return b == 0xFF; }));
  EXPECT_EQ(rig.counters.mass_erases, 1u);
}

TEST(FlashF4Test, SerWithMerDoesNothing) {
  F4Rig rig("stm32f407vg");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
  rig.unlock();
  rig.set(kCr, kMer | kSer | kX32 | kStrt);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.flash[0], 0x42);
  EXPECT_EQ(rig.counters.mass_erases + rig.counters.sectors_erased, 0u);
}

TEST(FlashF4Test, WriteProtectionFromOptionBytes) {
  F4Rig rig("stm32f407vg");
  rig.option_bytes[8] &= static_cast<std::uint8_t>(~(1u << 2));  // nWRP2 = 0
  rig.option_bytes[10] = static_cast<std::uint8_t>(~rig.option_bytes[8]);
  std::fill(rig.flash.begin(), rig.flash.end(), 0x00);
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFBAAEDu);
  rig.unlock();

  rig.set(kCr, kSer | snb(2) | kX32 | kStrt);
  EXPECT_EQ(rig.reg(kSr), kWrperr);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.flash[0x8000], 0x00);
  rig.set(kSr, kWrperr);

  rig.set(kCr, kMer | kX32 | kStrt);
  EXPECT_EQ(rig.reg(kSr), kWrperr);
  EXPECT_EQ(rig.flash[0], 0x00);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.set(kSr, kWrperr);

  rig.set(kCr, kSer | snb(3) | kX32 | kStrt);
  rig.wait_idle();
  EXPECT_EQ(rig.flash[0xC000], 0xFF);
  EXPECT_EQ(rig.reg(kSr), 0u);

  rig.set(kCr, kPg | kX32);
  rig.fc->array_write(0xC000, 0x0, 4);  // unprotected: fine
  rig.wait_idle();
  rig.flash[0x8000] = 0xFF;
  rig.fc->array_write(0x8000, 0x0, 4);
  EXPECT_EQ(rig.reg(kSr), kWrperr);
  EXPECT_EQ(rig.flash[0x8000], 0xFF);
}

TEST(FlashF4Test, CrWriteDuringBusyLandsWhenTheOperationEnds) {
  F4Rig rig("stm32f407vg");
  rig.unlock();
  rig.set(kCr, kSer | snb(0) | kX32 | kStrt);
  rig.set(kCr, kLock);
  EXPECT_EQ(rig.reg(kCr) & kLock, 0u);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
}

TEST(FlashF4Test, OptionKeysUnlockOptcrAndResetReloadsIt) {
  F4Rig rig("stm32f407vg");
  rig.set(kOptcr, 0x0FFFAAE0);
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFFAAEDu) << "OPTCR is locked";
  rig.unlock_options();
  EXPECT_EQ(rig.reg(kOptcr) & 1, 0u);
  rig.set(kOptcr, 0x0FFEAAEC);  // clear nWRP0: only a request until OPTSTRT
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFEAAECu);
  rig.unlock();
  rig.set(kCr, kSer | snb(0) | kX32 | kStrt);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr) & kWrperr, 0u);
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFFAAEDu);
}

TEST(FlashF4Test, OptionAreaReadsStoredBytes) {
  F4Rig rig("stm32f746ng");
  const auto r = rig.fc->option_read(0x10, 4);
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.value, 0xFF7F0080u);
  EXPECT_EQ(rig.fc->option_write(0, 0, 4).status, BusStatus::error);
}

// --- Option bytes ----------------------------------------------------------------------

// RM0090 3.7.2 (user option bytes programming): with FLASH_OPTCR unlocked, write it, then set
// OPTSTRT; BSY while the option bytes are erased and programmed, OPTSTRT reads 1 until BSY
// clears (3.9.6). The option bytes hold value and complement; write protection in force
// stays the one loaded at reset (3.9.6 nWRP: "the value ... after reset").
TEST(FlashF4Test, OptstrtProgramsOptionBytesFromOptcr) {
  F4Rig rig("stm32f407vg");
  rig.set(kOptcr, 0x0FFEAAEC | kOptstrt);
  EXPECT_FALSE(rig.fc->busy()) << "OPTCR locked: nothing";
  rig.unlock_options();
  const Picoseconds start = rig.clock.now();
  rig.program_options(0x0FFEAAEC);  // nWRP0 = 0
  EXPECT_EQ(rig.reg(kSr), kBsy);
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFEAAEEu) << "OPTSTRT set, unlocked";
  EXPECT_EQ(rig.option32(0), 0x5513AAECu) << "row 0: USER | RDP << 8, complement above";
  EXPECT_EQ(rig.option32(8), 0xF0010FFEu) << "row 1: nWRP[11:0], complement above";
  rig.clock.advance_to(start + kF407Options - 1);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  rig.clock.advance_to(start + kF407Options);
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFEAAECu) << "OPTSTRT cleared with BSY";
  EXPECT_EQ(rig.counters.mass_erases, 0u);

  rig.unlock();
  rig.set(kCr, kSer | snb(0) | kX32 | kStrt);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), 0u) << "sector 0 not protected before the reset";
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFEAAEDu);
  rig.unlock();
  rig.set(kCr, kSer | snb(0) | kX32 | kStrt);
  EXPECT_EQ(rig.reg(kSr), kWrperr) << "protected after the reset";
}

// RM0385 3.4.2 / 3.7.7: on the F7, OPTSTRT programs FLASH_OPTCR1 (BOOT_ADD0/1) too, and the
// IWDG_STDBY/IWDG_STOP bits of FLASH_OPTCR.
TEST(FlashF4Test, F7OptstrtProgramsOptcr1) {
  F4Rig rig("stm32f746ng");
  rig.unlock_options();
  rig.set(kOptcr1, 0x00400100);  // BOOT_ADD0 = 0x0100
  const Picoseconds start = rig.clock.now();
  rig.program_options(0x40FEAAFC);  // IWDG_STOP = 0, nWRP0 = 0
  rig.clock.advance_to(start + kF746Options - 1);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance_to(start + kF746Options);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.option32(8), 0xBF0140FEu) << "nWRP | IWDG_STDBY << 14, complement above";
  EXPECT_EQ(rig.option32(16), 0xFEFF0100u) << "BOOT_ADD0";
  EXPECT_EQ(rig.option32(24), 0xFFBF0040u) << "BOOT_ADD1";
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kOptcr), 0x40FEAAFDu);
  EXPECT_EQ(rig.reg(kOptcr1), 0x00400100u);
}

// OpenOCD's "stm32f2x lock": RDP = 0x00 through OPTSTRT. Raising the level erases nothing
// (RM0090 3.7.3); FLASH_OPTCR reads back the new RDP at once, the level in force changes at
// the next reset.
TEST(FlashF4Test, RaisingTheLevelErasesNothingAndCountsFromReset) {
  F4Rig rig("stm32f407vg");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
  rig.unlock_options();
  rig.program_options(0x0FFF00EC);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kOptcr) & 0xFF00, 0u);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.flash[0], 0x42);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.fc->reset();
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1);
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFF00EDu);
  EXPECT_EQ(rig.flash[0], 0x42);
}

// RM0090 3.7.3 "Level 1 to level 0 regression": RDP = 0xAA while level 1 is in force mass
// erases the flash (write protection notwithstanding) before the options are programmed.
// BSY lasts tME at x32 plus the option programming.
TEST(FlashF4Test, RegressionToLevel0MassErases) {
  F4Rig rig("stm32f407vg");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
  rig.option_bytes[8] &= static_cast<std::uint8_t>(~(1u << 2));  // nWRP2 = 0
  rig.option_bytes[10] = static_cast<std::uint8_t>(~rig.option_bytes[8]);
  rig.set_rdp(0x55);
  ASSERT_EQ(rig.fc->read_protection(), ReadProtection::level1);
  rig.unlock_options();
  const Picoseconds start = rig.clock.now();
  rig.program_options(0x0FFBAAEC);
  EXPECT_TRUE(rig.flash_blank());
  EXPECT_EQ(rig.counters.mass_erases, 1u);
  ASSERT_FALSE(rig.changes.empty());
  EXPECT_EQ(rig.changes.back(), std::make_pair(0u, rig.chip().flash_size));
  rig.clock.advance_to(start + kF407MassX32 + kF407Options - 1);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  rig.clock.advance_to(start + kF407MassX32 + kF407Options);
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1) << "until the next reset";
  rig.fc->reset();
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFBAAEDu) << "the other option bytes as programmed";
}

// RM0090 3.7.3: the mass erase happens only from level 1 to level 0; staying at level 1 or
// going to level 0 from level 0 erases nothing.
TEST(FlashF4Test, NoMassEraseWithoutRegression) {
  F4Rig rig("stm32f746ng");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
  rig.unlock_options();
  rig.program_options(0xC0FFAAFC);
  rig.wait_idle();
  rig.set_rdp(0x00);
  rig.unlock_options();
  rig.program_options(0xC0FF11FC);
  rig.wait_idle();
  EXPECT_EQ(rig.flash[0], 0x42);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  EXPECT_EQ(rig.option32(0), 0xEE0311FCu);
}

// RM0090 3.7.3 / RM0385 3.4.3 level 2: the option bytes can no longer be changed; the model
// refuses OPTSTRT with WRPERR and changes nothing.
TEST(FlashF4Test, Level2IsPermanent) {
  for (auto name : {"stm32f407vg", "stm32f746ng"}) {
    F4Rig rig(name);
    std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
    rig.set_rdp(0xCC);
    ASSERT_EQ(rig.fc->read_protection(), ReadProtection::level2) << name;
    const auto before = rig.option_bytes;
    const std::uint32_t optcr = rig.reg(kOptcr);
    rig.unlock_options();
    rig.program_options((optcr & ~0xFF00u) | 0xAA00);
    EXPECT_EQ(rig.reg(kSr), kWrperr) << name;
    EXPECT_FALSE(rig.fc->busy()) << name;
    EXPECT_EQ(rig.option_bytes, before) << name;
    EXPECT_EQ(rig.flash[0], 0x42) << name;
    EXPECT_EQ(rig.counters.mass_erases, 0u) << name;
    rig.fc->reset();
    EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level2) << name;
  }
}

// RM0090 3.7.3 Table "Access versus read protection level" / RM0385 3.4.3: at level 1 with
// the debugger connected no program, sector erase or mass erase (WRPERR); programming the
// option bytes, the regression included, stays possible.
TEST(FlashF4Test, DebuggerAtLevel1CannotProgramOrErase) {
  for (auto name : {"stm32f407vg", "stm32f746ng"}) {
    F4Rig rig(name);
    std::fill(rig.flash.begin(), rig.flash.end(), 0x42);
    std::fill(rig.flash.begin() + 0x100, rig.flash.begin() + 0x200, 0xFF);
    rig.set_rdp(0x00);
    rig.debugger_attached = true;
    rig.unlock();
    rig.set(kCr, kPg | kX32);
    EXPECT_EQ(rig.fc->array_write(0x100, 0x12345678, 4).status, BusStatus::ok) << name;
    EXPECT_EQ(rig.reg(kSr), kWrperr) << name;
    EXPECT_EQ(rig.flash32(0x100), 0xFFFFFFFFu) << name;
    rig.set(kSr, kWrperr);
    rig.set(kCr, kSer | snb(1) | kX32 | kStrt);
    EXPECT_EQ(rig.reg(kSr), kWrperr) << name;
    rig.set(kSr, kWrperr);
    rig.set(kCr, kMer | kX32 | kStrt);
    EXPECT_EQ(rig.reg(kSr), kWrperr) << name;
    EXPECT_FALSE(rig.fc->busy()) << name;
    EXPECT_EQ(rig.counters.mass_erases + rig.counters.sectors_erased, 0u) << name;
    EXPECT_EQ(rig.flash[0], 0x42) << name;
    rig.set(kSr, kWrperr);

    rig.unlock_options();
    rig.program_options((rig.reg(kOptcr) & ~0xFF00u) | 0xAA00);
    rig.wait_idle();
    EXPECT_EQ(rig.reg(kSr), 0u) << name;
    EXPECT_TRUE(rig.flash_blank()) << name;
    rig.fc->reset();
    rig.unlock();
    rig.set(kCr, kPg | kX32);
    rig.fc->array_write(0x100, 0x12345678, 4);
    rig.wait_idle();
    EXPECT_EQ(rig.flash32(0x100), 0x12345678u) << name << ": level 0 again after reset";
  }
}

// A FLASH_OPTCR write while BSY is held back like a FLASH_CR write: OpenOCD relocks OPTCR
// right after the operation.
TEST(FlashF4Test, OptcrWriteDuringBusyLandsWhenTheOperationEnds) {
  F4Rig rig("stm32f407vg");
  rig.unlock_options();
  rig.program_options(0x0FFFAAEC);
  rig.set(kOptcr, 0x0FFFAAEC | kOptlock);
  EXPECT_EQ(rig.reg(kOptcr) & kOptlock, 0u);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kOptcr), 0x0FFFAAEDu);
}

}  // namespace
}  // namespace probefarm::sim::test
