// F1-style flash controller (STM32F103, STM32F303): PM0075, RM0316 section 4.
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

constexpr std::uint32_t kKeyr = 0x04;
constexpr std::uint32_t kOptkeyr = 0x08;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kAr = 0x14;
constexpr std::uint32_t kObr = 0x1C;
constexpr std::uint32_t kWrpr = 0x20;

constexpr std::uint32_t kBsy = 1u << 0;
constexpr std::uint32_t kPgerr = 1u << 2;
constexpr std::uint32_t kWrprterr = 1u << 4;
constexpr std::uint32_t kEop = 1u << 5;

constexpr std::uint32_t kPg = 1u << 0;
constexpr std::uint32_t kPer = 1u << 1;
constexpr std::uint32_t kMer = 1u << 2;
constexpr std::uint32_t kOptpg = 1u << 4;
constexpr std::uint32_t kOpter = 1u << 5;
constexpr std::uint32_t kStrt = 1u << 6;
constexpr std::uint32_t kLock = 1u << 7;
constexpr std::uint32_t kOptwre = 1u << 9;
constexpr std::uint32_t kOblLaunch = 1u << 13;  // RM0316 4.5.4, F303 only

constexpr std::uint32_t kKey1 = 0x45670123;
constexpr std::uint32_t kKey2 = 0xCDEF89AB;

// DS5319 / DS9118 flash characteristics: tprog typ, tERASE and tME min.
constexpr Picoseconds kF103Program = 52'500 * kNanosecond;
constexpr Picoseconds kF303Program = 53'500 * kNanosecond;
constexpr Picoseconds kPageErase = 20 * kMillisecond;
constexpr Picoseconds kMassErase = 20 * kMillisecond;

class F1Rig : public FlashRig {
 public:
  using FlashRig::FlashRig;

  void page_erase(std::uint32_t offset) {
    set(kCr, kPer);
    set(kAr, chip().flash_base + offset);
    set(kCr, kPer | kStrt);
  }
  void protect_wrp_bit(unsigned bit) {
    auto& wrp = option_bytes[8 + 2 * (bit / 8)];
    wrp = static_cast<std::uint8_t>(wrp & ~(1u << (bit % 8)));
    option_bytes[9 + 2 * (bit / 8)] = static_cast<std::uint8_t>(~wrp);
  }
  // PM0075 2.3 option keys: OPTKEYR takes the FLASH_KEYR keys once FLASH_CR is unlocked.
  void unlock_options() {
    unlock();
    set(kOptkeyr, kKey1);
    set(kOptkeyr, kKey2);
  }
  // PM0075 2.3 "Erase procedure": OPTER, then OPTER | STRT; returns when BSY clears.
  void erase_options() {
    set(kCr, kOpter | kOptwre);
    set(kCr, kOpter | kStrt | kOptwre);
    wait_idle();
  }
  // PM0075 2.3 "Option byte programming": OPTPG, then one half-word write.
  BusResponse program_option(std::uint32_t offset, std::uint16_t value) {
    set(kCr, kOptpg | kOptwre);
    return fc->option_write(offset, value, 2);
  }
  // The option-byte half of OpenOCD's lock/unlock: erase the option bytes, program RDP.
  void write_rdp_option(std::uint16_t rdp) {
    unlock_options();
    erase_options();
    program_option(0, rdp);
    wait_idle();
  }
  // Sets the RDP option pair directly and reloads it, as a reset would.
  void set_rdp(std::uint8_t rdp) {
    option_bytes[0] = rdp;
    option_bytes[1] = static_cast<std::uint8_t>(~rdp);
    fc->reset();
  }
};

TEST(FlashF1Test, ResetValuesFollowTheManual) {
  F1Rig rig("stm32f103c8");
  EXPECT_EQ(rig.reg(0x00), 0x30u);  // ACR: PRFTBE | PRFTBS
  EXPECT_EQ(rig.reg(kCr), kLock);
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_EQ(rig.reg(kObr), 0x03FFFFFCu);  // PM0075 3.7 reset value
  EXPECT_EQ(rig.reg(kWrpr), 0xFFFFFFFFu);
}

TEST(FlashF1Test, F303ObrHoldsUserAndDataInItsOwnLayout) {
  F1Rig rig("stm32f303vc");
  EXPECT_EQ(rig.reg(kObr), 0xFFFFFF00u);  // level 0, USER/DATA0/DATA1 = 0xFF
}

TEST(FlashF1Test, KeySequenceUnlocksAndLockBitRelocks) {
  F1Rig rig("stm32f103c8");
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr), kLock) << "CR must ignore writes while locked";
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), 0u);
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr), kPg);
  rig.set(kCr, kLock);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.set(kCr, 0);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock) << "LOCK is write-1-only";
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, 0u);
}

TEST(FlashF1Test, WrongKeyLocksUntilReset) {
  F1Rig rig("stm32f103c8");
  rig.set(kKeyr, kKey2);  // wrong order
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.reg(kCr) & kPg, 0u);
  rig.fc->reset();
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr), 0u);
}

// The key sequence sent again while unlocked (OpenOCD's stm32f1x option flows do) leaves
// the FPEC and OPTWRE unlocked; a wrong key while unlocked still locks it up.
TEST(FlashF1Test, KeysAgainWhileUnlockedAreHarmlessWrongKeyLocksUp) {
  F1Rig rig("stm32f103c8");
  rig.unlock_options();
  rig.unlock_options();
  EXPECT_EQ(rig.reg(kCr), kOptwre);
  rig.set(kKeyr, 0x12345678);
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock);
  rig.unlock();
  EXPECT_EQ(rig.reg(kCr) & kLock, kLock) << "locked up until reset";
}

TEST(FlashF1Test, ProgramHalfWordIsBusyForTprogThenEop) {
  F1Rig rig("stm32f103c8");
  rig.clock.advance(5 * kMicrosecond);
  const Picoseconds start = rig.clock.now();
  rig.unlock();
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.fc->array_write(0x100, 0xBEEF, 2).status, BusStatus::ok);
  EXPECT_TRUE(rig.fc->busy());
  EXPECT_EQ(rig.reg(kSr), kBsy);
  const auto stalled = rig.fc->array_read(0x100, 2);
  EXPECT_EQ(stalled.status, BusStatus::busy);
  EXPECT_EQ(stalled.busy_until, start + kF103Program);
  const auto write_stalled = rig.fc->array_write(0x102, 0x1234, 2);
  EXPECT_EQ(write_stalled.status, BusStatus::busy);
  EXPECT_EQ(write_stalled.busy_until, start + kF103Program);

  rig.clock.advance_to(start + kF103Program - 1);
  EXPECT_EQ(rig.reg(kSr) & kBsy, kBsy);
  rig.clock.advance_to(start + kF103Program);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.reg(kSr), kEop);
  const auto r = rig.fc->array_read(0x100, 2);
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.value, 0xBEEFu);
  EXPECT_EQ(rig.flash16(0x102), 0xFFFFu) << "the stalled write must not program";
  EXPECT_EQ(rig.counters.bytes_programmed, 2u);
  ASSERT_EQ(rig.changes.size(), 1u);
  EXPECT_EQ(rig.changes[0], std::make_pair(0x100u, 2u));
}

TEST(FlashF1Test, F303UsesItsOwnProgramTime) {
  F1Rig rig("stm32f303vc");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x0, 0x1111, 2);
  rig.clock.advance(kF103Program);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(kF303Program - kF103Program);
  EXPECT_FALSE(rig.fc->busy());
}

TEST(FlashF1Test, EopAndErrorFlagsAreWriteOneToClear) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x0, 0x1234, 2);
  rig.clock.advance(kF103Program);
  rig.fc->array_write(0x0, 0x4321, 2);  // not erased: PGERR
  EXPECT_EQ(rig.reg(kSr), kEop | kPgerr);
  rig.set(kSr, 0);
  EXPECT_EQ(rig.reg(kSr), kEop | kPgerr);
  rig.set(kSr, kPgerr);
  EXPECT_EQ(rig.reg(kSr), kEop);
  rig.fc->write(kSr, kEop, 1);  // byte access to the same lanes
  EXPECT_EQ(rig.reg(kSr), 0u);
}

TEST(FlashF1Test, ProgrammingNotErasedHalfWordSetsPgerrAndKeepsData) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x20, 0x1234, 2);
  rig.clock.advance(kF103Program);
  rig.set(kSr, kEop);
  rig.fc->array_write(0x20, 0x0034, 2);  // clears bits only, still refused
  EXPECT_EQ(rig.reg(kSr), kPgerr);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.flash16(0x20), 0x1234u);
  EXPECT_EQ(rig.counters.bytes_programmed, 2u);
  // PM0075 2.3.3: 0x0000 may be programmed over anything.
  rig.set(kSr, kPgerr);
  rig.fc->array_write(0x20, 0x0000, 2);
  EXPECT_EQ(rig.reg(kSr) & kPgerr, 0u);
  rig.clock.advance(kF103Program);
  EXPECT_EQ(rig.flash16(0x20), 0x0000u);
}

TEST(FlashF1Test, NonHalfWordProgramIsBusError) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  EXPECT_EQ(rig.fc->array_write(0x40, 0x11223344, 4).status, BusStatus::error);
  EXPECT_EQ(rig.fc->array_write(0x40, 0x11, 1).status, BusStatus::error);
  EXPECT_EQ(rig.flash16(0x40), 0xFFFFu);
  EXPECT_FALSE(rig.fc->busy());
}

TEST(FlashF1Test, WriteWithoutPgChangesNothing) {
  F1Rig rig("stm32f103c8");
  EXPECT_EQ(rig.fc->array_write(0x40, 0x1234, 2).status, BusStatus::ok);
  rig.unlock();
  EXPECT_EQ(rig.fc->array_write(0x40, 0x1234, 2).status, BusStatus::ok);
  EXPECT_EQ(rig.flash16(0x40), 0xFFFFu);
  EXPECT_EQ(rig.reg(kSr), 0u);
  EXPECT_TRUE(rig.changes.empty());
}

TEST(FlashF1Test, PageEraseErasesOnePageAndStallsReads) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin() + 2048, rig.flash.begin() + 5120, 0x00);  // pages 2-4
  rig.unlock();
  rig.page_erase(3 * 1024 + 10);  // any address inside page 3
  EXPECT_EQ(rig.reg(kSr), kBsy);
  EXPECT_EQ(rig.reg(kCr) & kStrt, kStrt);
  EXPECT_EQ(rig.fc->array_read(0, 4).status, BusStatus::busy);
  rig.set(kAr, 0x08000000);  // blocked while BSY
  EXPECT_EQ(rig.reg(kAr), 0x08000C0Au);
  rig.clock.advance(kPageErase - 1);
  EXPECT_EQ(rig.fc->array_read(3 * 1024, 4).status, BusStatus::busy);
  rig.clock.advance(1);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.reg(kCr) & kStrt, 0u);
  for (std::uint32_t i = 3 * 1024; i < 4 * 1024; ++i)
    ASSERT_EQ(rig.flash[i], 0xFF) << i;
  EXPECT_EQ(rig.flash[3 * 1024 - 1], 0x00);
  EXPECT_EQ(rig.flash[4 * 1024], 0x00);
  EXPECT_EQ(rig.counters.pages_erased, 1u);
  ASSERT_EQ(rig.changes.size(), 1u);
  EXPECT_EQ(rig.changes[0], std::make_pair(3u * 1024, 1024u));
}

TEST(FlashF1Test, MassEraseErasesEverything) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  rig.unlock();
  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance(kPageErase);  // tME min equals tERASE min (20 ms)
  EXPECT_FALSE(rig.fc->busy());
  for (auto b : rig.flash)
    ASSERT_EQ(b, 0xFF);
  EXPECT_EQ(rig.counters.mass_erases, 1u);
  EXPECT_EQ(rig.counters.pages_erased, 0u);
}

TEST(FlashF1Test, WriteProtectionFromOptionBytes) {
  F1Rig rig("stm32f103c8");
  rig.protect_wrp_bit(0);  // pages 0-3 on medium density
  std::fill(rig.flash.begin(), rig.flash.begin() + 8192, 0x00);
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kWrpr), 0xFFFFFFFEu);
  rig.unlock();

  rig.page_erase(3 * 1024);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash[3 * 1024], 0x00);
  rig.set(kSr, kWrprterr);

  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash[8191], 0x00);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.set(kSr, kWrprterr);

  rig.page_erase(4 * 1024);  // first unprotected page
  rig.clock.advance(kPageErase);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.flash[4 * 1024], 0xFF);
  rig.set(kSr, kEop);

  rig.set(kCr, kPg);
  rig.flash[0x10] = rig.flash[0x11] = 0xFF;
  rig.fc->array_write(0x10, 0xABCD, 2);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash16(0x10), 0xFFFFu);
}

TEST(FlashF1Test, F303ProtectsTwoPagesPerBitAndTheRestWithBit31) {
  F1Rig rig("stm32f303vc");
  rig.protect_wrp_bit(1);   // pages 2-3
  rig.protect_wrp_bit(31);  // pages 62-127
  rig.fc->reset();
  rig.unlock();
  struct Case {
    std::uint32_t page;
    bool is_protected;
  };
  for (auto [page, is_protected] : {Case{1, false}, Case{2, true}, Case{3, true}, Case{4, false},
                                    Case{61, false}, Case{62, true}, Case{127, true}}) {
    rig.page_erase(page * 2048);
    rig.clock.advance(kPageErase);
    EXPECT_EQ(rig.reg(kSr), is_protected ? kWrprterr : kEop) << "page " << page;
    rig.set(kSr, kWrprterr | kEop);
  }
}

TEST(FlashF1Test, OptionBytesReadBackAndMismatchSetsOpterr) {
  F1Rig rig("stm32f103c8");
  const auto r = rig.fc->option_read(0, 4);
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.value, 0x00FF5AA5u);
  EXPECT_EQ(rig.fc->option_read(16, 2).status, BusStatus::error);

  rig.option_bytes[4] = 0x12;  // DATA0 without a matching complement
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kObr) & 1, 1u);
  rig.option_bytes[5] = 0xED;
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kObr), 0x03FC4BFCu);  // DATA0 = 0x12 in bits 17:10
}

TEST(FlashF1Test, OptionKeysSetOptwreOnlyWhenUnlocked) {
  F1Rig rig("stm32f103c8");
  rig.set(kOptkeyr, kKey1);
  rig.set(kOptkeyr, kKey2);
  EXPECT_EQ(rig.reg(kCr) & kOptwre, 0u);
  rig.unlock();
  rig.set(kOptkeyr, kKey1);
  rig.set(kOptkeyr, kKey2);
  EXPECT_EQ(rig.reg(kCr) & kOptwre, kOptwre);
  rig.set(kCr, 0);
  EXPECT_EQ(rig.reg(kCr) & kOptwre, 0u);
}

TEST(FlashF1Test, ResetRelocksAndAbortsTheOperation) {
  F1Rig rig("stm32f103c8");
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0, 0x0102, 2);
  rig.fc->reset();
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.reg(kCr), kLock);
  EXPECT_EQ(rig.reg(kSr), 0u);
}

// --- Option bytes ----------------------------------------------------------------------

// PM0075 2.3 "Erase procedure": OPTER + STRT with OPTWRE erases the whole option-byte area,
// BSY for the erase (the datasheet's tERASE, DS5319 5.3.9), then EOP. The registers loaded
// from the option bytes keep their values until the next reset (PM0075 2.5 note).
TEST(FlashF1Test, OptionEraseNeedsOptwreAndTakesTerase) {
  F1Rig rig("stm32f103c8");
  const auto factory = rig.option_bytes;
  rig.unlock();
  rig.set(kCr, kOpter);
  rig.set(kCr, kOpter | kStrt);
  EXPECT_FALSE(rig.fc->busy()) << "no OPTWRE: nothing starts";
  EXPECT_EQ(rig.option_bytes, factory);
  EXPECT_EQ(rig.reg(kSr), 0u);

  rig.set(kOptkeyr, kKey1);
  rig.set(kOptkeyr, kKey2);
  const Picoseconds start = rig.clock.now();
  rig.set(kCr, kOpter | kOptwre);
  rig.set(kCr, kOpter | kStrt | kOptwre);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  EXPECT_EQ(rig.reg(kCr) & kStrt, kStrt);
  for (auto b : rig.option_bytes)
    EXPECT_EQ(b, 0xFF);
  const auto stalled = rig.fc->option_write(2, 0x00FF, 2);
  EXPECT_EQ(stalled.status, BusStatus::busy);
  EXPECT_EQ(stalled.busy_until, start + kPageErase);
  rig.clock.advance_to(start + kPageErase - 1);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  rig.clock.advance_to(start + kPageErase);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.reg(kCr) & kStrt, 0u);
  EXPECT_TRUE(rig.flash_blank()) << "erasing the option bytes leaves the main flash alone";
  EXPECT_EQ(rig.reg(kObr), 0x03FFFFFCu) << "still the values loaded at reset";
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);

  // Erased option bytes load as read protection on (RDP 0xFF), everything else 1s.
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kObr), 0x03FFFFFEu);
  EXPECT_EQ(rig.reg(kWrpr), 0xFFFFFFFFu);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1);
}

// PM0075 2.3 "Option byte programming": OPTPG + a half-word write; the hardware stores the
// complement of the low byte in the high byte; BSY for tprog (DS5319 5.3.9), then EOP.
TEST(FlashF1Test, OptionProgramStoresComplementAndTakesTprog) {
  F1Rig rig("stm32f103c8");
  rig.unlock_options();
  rig.erase_options();
  rig.set(kSr, kEop);
  const Picoseconds start = rig.clock.now();
  EXPECT_EQ(rig.program_option(4, 0x1234).status, BusStatus::ok);  // DATA0
  EXPECT_EQ(rig.option16(4), 0xCB34u) << "high byte is ~0x34, whatever was written";
  EXPECT_EQ(rig.reg(kSr), kBsy);
  rig.clock.advance_to(start + kF103Program - 1);
  EXPECT_TRUE(rig.fc->busy());
  rig.clock.advance_to(start + kF103Program);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.fc->reset();
  EXPECT_EQ((rig.reg(kObr) >> 10) & 0xFF, 0x34u) << "DATA0 in FLASH_OBR[17:10]";
}

TEST(FlashF1Test, OptionProgramErrors) {
  F1Rig rig("stm32f103c8");
  const auto factory = rig.option_bytes;
  rig.unlock();
  rig.set(kCr, kOptpg);  // OPTPG without the option keys
  EXPECT_EQ(rig.fc->option_write(4, 0x0012, 2).status, BusStatus::ok);
  EXPECT_EQ(rig.option_bytes, factory) << "without OPTWRE the write goes nowhere";
  EXPECT_EQ(rig.reg(kSr), 0u);

  rig.set(kOptkeyr, kKey1);
  rig.set(kOptkeyr, kKey2);
  rig.set(kCr, kOptwre);  // OPTWRE without OPTPG
  EXPECT_EQ(rig.fc->option_write(4, 0x0012, 2).status, BusStatus::ok);
  EXPECT_EQ(rig.option_bytes, factory);
  EXPECT_EQ(rig.reg(kSr), 0u);

  // Not erased: skipped with WRPRTERR.
  EXPECT_EQ(rig.program_option(4, 0x0012).status, BusStatus::ok);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.option_bytes, factory);
  EXPECT_FALSE(rig.fc->busy());
  rig.set(kSr, kWrprterr);

  // Only half-words: other sizes are bus errors.
  rig.erase_options();
  rig.set(kSr, kEop);
  rig.set(kCr, kOptpg | kOptwre);
  EXPECT_EQ(rig.fc->option_write(4, 0x12, 1).status, BusStatus::error);
  EXPECT_EQ(rig.fc->option_write(4, 0xFFED0012, 4).status, BusStatus::error);
  EXPECT_EQ(rig.option16(4), 0xFFFFu);
  EXPECT_EQ(rig.fc->option_write(16, 0x12, 2).status, BusStatus::error) << "outside the area";
  EXPECT_EQ(rig.reg(kSr), 0u);
}

// OpenOCD's "stm32f1x lock": erase the option bytes, program RDP = 0x00. The level changes
// only when the option bytes are loaded again (PM0075 2.4.1: "then, by applying a system
// reset"), and no flash is erased on the way up.
TEST(FlashF1Test, ReadProtectionTakesEffectAtReset) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  rig.write_rdp_option(0x0000);
  EXPECT_EQ(rig.option16(0), 0xFF00u);
  EXPECT_EQ(rig.reg(kObr) & 2, 0u);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  rig.fc->reset();
  EXPECT_EQ(rig.reg(kObr) & 2, 2u) << "RDPRT";
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1);
  EXPECT_EQ(rig.flash[0], 0x5A);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
}

// PM0075 2.4.1 "Unprotection": erase the option bytes (RDP reads 0xFF, still protected),
// then program RDP = 0xA5: that first mass-erases the main flash, write protection
// notwithstanding (PM0075 2.4.2 "Unprotection", case 1). BSY covers tME and tprog.
TEST(FlashF1Test, UnprotectingMassErasesFirst) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  rig.protect_wrp_bit(5);
  rig.set_rdp(0x00);
  ASSERT_EQ(rig.fc->read_protection(), ReadProtection::level1);
  rig.unlock_options();
  rig.erase_options();
  EXPECT_EQ(rig.flash[0], 0x5A) << "the option erase alone keeps the flash";
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.set(kSr, kEop);

  const Picoseconds start = rig.clock.now();
  EXPECT_EQ(rig.program_option(0, 0x00A5).status, BusStatus::ok);
  EXPECT_TRUE(rig.flash_blank());
  EXPECT_EQ(rig.counters.mass_erases, 1u);
  ASSERT_FALSE(rig.changes.empty());
  EXPECT_EQ(rig.changes.back(), std::make_pair(0u, rig.chip().flash_size));
  EXPECT_EQ(rig.option16(0), 0x5AA5u);
  rig.clock.advance_to(start + kMassErase + kF103Program - 1);
  EXPECT_EQ(rig.reg(kSr), kBsy);
  rig.clock.advance_to(start + kMassErase + kF103Program);
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1) << "until the next reset";
  rig.fc->reset();
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.reg(kObr) & 2, 0u);
}

// Rewriting RDP = 0xA5 at level 0 (any option change rewrites all of them) erases nothing.
TEST(FlashF1Test, RewritingLevel0KeepsTheFlash) {
  F1Rig rig("stm32f103c8");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  rig.write_rdp_option(0x00A5);
  EXPECT_EQ(rig.flash[0], 0x5A);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  EXPECT_EQ(rig.option16(0), 0x5AA5u);
}

// PM0075 2.4.1: with read protection on, pages 0-3 (medium density) are write-protected
// whoever writes; the other pages stay programmable by code running from flash, and a
// mass erase stays possible.
TEST(FlashF1Test, ReadProtectionWriteProtectsPages0To3) {
  F1Rig rig("stm32f103c8");
  rig.set_rdp(0x00);
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(3 * 1024, 0x1234, 2);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash16(3 * 1024), 0xFFFFu);
  rig.set(kSr, kWrprterr);
  rig.fc->array_write(4 * 1024, 0x1234, 2);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.flash16(4 * 1024), 0x1234u);
  rig.set(kSr, kEop);

  std::fill(rig.flash.begin(), rig.flash.begin() + 8192, 0x00);
  rig.page_erase(0);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash[0], 0x00);
  rig.set(kSr, kWrprterr);
  rig.page_erase(4 * 1024);
  rig.wait_idle();
  EXPECT_EQ(rig.flash[4 * 1024], 0xFF);
  rig.set(kSr, kEop);

  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_TRUE(rig.flash_blank());
}

// PM0075 2.4.1: in debug mode a read-protected F103 refuses program and page erase of
// every page (WRPRTERR), but not a mass erase. At level 0 the debugger changes nothing.
TEST(FlashF1Test, DebuggerAtLevel1CannotProgramOrPageEraseButCanMassErase) {
  F1Rig rig("stm32f103c8");
  rig.debugger_attached = true;
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(40 * 1024, 0x1234, 2);
  rig.wait_idle();
  EXPECT_EQ(rig.flash16(40 * 1024), 0x1234u) << "level 0: allowed";
  rig.set(kSr, kEop);

  rig.set_rdp(0x00);
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(40 * 1024 + 2, 0x5678, 2);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash16(40 * 1024 + 2), 0xFFFFu);
  EXPECT_FALSE(rig.fc->busy());
  rig.set(kSr, kWrprterr);
  rig.page_erase(40 * 1024);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.flash16(40 * 1024), 0x1234u);
  rig.set(kSr, kWrprterr);

  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_TRUE(rig.flash_blank());
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1) << "mass erase keeps RDP";
}

// RM0316 4.3.1 level 1, debug mode: program, page erase and mass erase all set PGERR and
// change nothing.
TEST(FlashF1Test, F303DebuggerAtLevel1GetsPgerr) {
  F1Rig rig("stm32f303vc");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  std::fill(rig.flash.begin() + 0x800, rig.flash.begin() + 0x1000, 0xFF);
  rig.set_rdp(0x00);
  rig.debugger_attached = true;
  rig.unlock();
  rig.set(kCr, kPg);
  rig.fc->array_write(0x800, 0x1234, 2);
  EXPECT_EQ(rig.reg(kSr), kPgerr);
  EXPECT_EQ(rig.flash16(0x800), 0xFFFFu);
  rig.set(kSr, kPgerr);
  rig.page_erase(0x2000);
  EXPECT_EQ(rig.reg(kSr), kPgerr);
  rig.set(kSr, kPgerr);
  rig.set(kCr, kMer);
  rig.set(kCr, kMer | kStrt);
  EXPECT_EQ(rig.reg(kSr), kPgerr);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.flash[0x2000], 0x5A);
  EXPECT_EQ(rig.counters.mass_erases + rig.counters.pages_erased, 0u);

  rig.debugger_attached = false;  // code running from flash may (RM0316 4.3.1 user mode)
  rig.set(kSr, kPgerr);
  rig.page_erase(0x2000);
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.flash[0x2000], 0xFF);
}

// RM0316 4.3.1 Table "Flash memory read protection status": 0xAA/0x55 is level 0, 0xCC/0x33
// level 2, anything else (a bad complement too) level 1; FLASH_OBR.RDPRT[2:1] shows it.
TEST(FlashF1Test, F303ReadProtectionLevels) {
  F1Rig rig("stm32f303vc");
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.reg(kObr) & 6, 0u);
  rig.option_bytes[1] = 0x54;  // 0xAA with a bad complement
  rig.fc->reset();
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1);
  EXPECT_EQ(rig.reg(kObr) & 7, 3u) << "OPTERR and level 1";
  rig.set_rdp(0xA5);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1) << "0xA5 is the F1's value";
  EXPECT_EQ(rig.reg(kObr) & 6, 2u);
  rig.set_rdp(0xCC);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level2);
  EXPECT_EQ(rig.reg(kObr) & 6, 6u);
}

// RM0316 4.3.1 level 2: the option bytes cannot be erased and the RDP byte cannot be
// programmed (WRPRTERR); other erased option bytes still can. There is no way back.
TEST(FlashF1Test, F303Level2IsPermanent) {
  F1Rig rig("stm32f303vc");
  std::fill(rig.flash.begin(), rig.flash.end(), 0x5A);
  rig.set_rdp(0xCC);
  const auto before = rig.option_bytes;
  rig.unlock_options();
  rig.set(kCr, kOpter | kOptwre);
  rig.set(kCr, kOpter | kStrt | kOptwre);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_FALSE(rig.fc->busy());
  EXPECT_EQ(rig.option_bytes, before);
  rig.fc->reset();
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level2);
  rig.unlock_options();

  // Even with the RDP pair erased behind the controller's back, 0xAA cannot be written.
  rig.option_bytes[0] = rig.option_bytes[1] = 0xFF;
  EXPECT_EQ(rig.program_option(0, 0x00AA).status, BusStatus::ok);
  EXPECT_EQ(rig.reg(kSr), kWrprterr);
  EXPECT_EQ(rig.option16(0), 0xFFFFu);
  EXPECT_EQ(rig.flash[0], 0x5A);
  EXPECT_EQ(rig.counters.mass_erases, 0u);
  rig.set(kSr, kWrprterr);

  rig.option_bytes[4] = rig.option_bytes[5] = 0xFF;
  rig.program_option(4, 0x0042);  // DATA0
  rig.wait_idle();
  EXPECT_EQ(rig.reg(kSr), kEop);
  EXPECT_EQ(rig.option16(4), 0xBD42u);
}

// RM0316 4.5.4 OBL_LAUNCH (and 4.2.1: writable while FLASH_CR is locked): reloads the
// option bytes through a system reset, so a new RDP level takes effect at once.
TEST(FlashF1Test, F303OblLaunchReloadsOptionBytesThroughSystemReset) {
  F1Rig rig("stm32f303vc");
  rig.write_rdp_option(0x0000);
  rig.set(kCr, kLock);
  ASSERT_EQ(rig.reg(kCr) & kLock, kLock);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.reg(kObr) & 6, 0u);

  rig.set(kCr, kOblLaunch);
  EXPECT_EQ(rig.system_resets, 1);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level1);
  EXPECT_EQ(rig.reg(kObr) & 6, 2u);
  EXPECT_EQ(rig.reg(kCr), kLock) << "OBL_LAUNCH reads 0 after the reset";
  EXPECT_EQ(rig.reg(kSr), 0u);
}

// PM0075 3.5: bit 13 of the F103's FLASH_CR is reserved: no reload, no reset.
TEST(FlashF1Test, F103HasNoOblLaunch) {
  F1Rig rig("stm32f103c8");
  rig.option_bytes[0] = 0x00;
  rig.option_bytes[1] = 0xFF;
  rig.unlock();
  rig.set(kCr, kOblLaunch);
  EXPECT_EQ(rig.system_resets, 0);
  EXPECT_EQ(rig.fc->read_protection(), ReadProtection::level0);
  EXPECT_EQ(rig.reg(kCr), 0u);
}

}  // namespace
}  // namespace probefarm::sim::test
