#pragma once
// A debugger on a simulated board's AHB-AP, for the board-level tests: 32-bit accesses
// through Board::read/write (the DebugBus the MEM-AP uses), the sequences OpenOCD and
// pyOCD use to halt the core, move registers and program the flash. References: ARMv7-M
// Architecture Reference Manual (ARM DDI 0403E.b, "ARMv7-M ARM"), PM0075 (F1 flash),
// RM0090 / RM0385 (F4/F7 flash).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "board.hpp"
#include "bus.hpp"
#include "chip.hpp"
#include "clock.hpp"

namespace probefarm::sim::test {

// ARMv7-M ARM B3.2.2 (SCB) and C1.6 (debug registers).
constexpr std::uint32_t kAircr = 0xE000ED0C;
constexpr std::uint32_t kDfsr = 0xE000ED30;
constexpr std::uint32_t kDhcsr = 0xE000EDF0;
constexpr std::uint32_t kDcrsr = 0xE000EDF4;
constexpr std::uint32_t kDcrdr = 0xE000EDF8;
constexpr std::uint32_t kDemcr = 0xE000EDFC;

// C1.6.2 DHCSR.
constexpr std::uint32_t kDbgKey = 0xA05F0000;
constexpr std::uint32_t kCDebugEn = 1u << 0;
constexpr std::uint32_t kCHalt = 1u << 1;
constexpr std::uint32_t kCStep = 1u << 2;
constexpr std::uint32_t kSRegRdy = 1u << 16;
constexpr std::uint32_t kSHalt = 1u << 17;
constexpr std::uint32_t kSSleep = 1u << 18;
constexpr std::uint32_t kSLockup = 1u << 19;
constexpr std::uint32_t kSRetireSt = 1u << 24;
constexpr std::uint32_t kSResetSt = 1u << 25;

// C1.6.1 DFSR.
constexpr std::uint32_t kDfsrHalted = 1u << 0;
constexpr std::uint32_t kDfsrBkpt = 1u << 1;
constexpr std::uint32_t kDfsrDwtTrap = 1u << 2;
constexpr std::uint32_t kDfsrVCatch = 1u << 3;
constexpr std::uint32_t kDfsrAll = 0x1F;

// C1.6.5 DEMCR.
constexpr std::uint32_t kVcCoreReset = 1u << 0;
constexpr std::uint32_t kTrcEna = 1u << 24;

// B3.2.6 AIRCR.
constexpr std::uint32_t kVectKey = 0x05FA0000;
constexpr std::uint32_t kVectReset = 1u << 0;
constexpr std::uint32_t kSysResetReq = 1u << 2;

// C1.6.3 DCRSR: REGSEL values and REGWnR.
constexpr std::uint32_t kRegWrite = 1u << 16;
constexpr std::uint32_t kRegSp = 13;
constexpr std::uint32_t kRegLr = 14;
constexpr std::uint32_t kRegPc = 15;  // DebugReturnAddress
constexpr std::uint32_t kRegXpsr = 16;
constexpr std::uint32_t kRegMsp = 17;
constexpr std::uint32_t kRegPsp = 18;
constexpr std::uint32_t kRegSpecial = 20;  // CONTROL | FAULTMASK | BASEPRI | PRIMASK

// Flash interface registers, offsets from ChipInfo::flash_regs: PM0075 3.1 (F1 style),
// RM0090 3.9.8 / RM0385 3.7.9 (F4/F7 style).
constexpr std::uint32_t kFlashKeyr = 0x04;
constexpr std::uint32_t kFlashOptkeyr = 0x08;
constexpr std::uint32_t kFlashSr = 0x0C;
constexpr std::uint32_t kFlashCr = 0x10;
constexpr std::uint32_t kFlashKey1 = 0x45670123;
constexpr std::uint32_t kFlashKey2 = 0xCDEF89AB;

inline const char* const kAllChips[] = {"stm32f103c8", "stm32f303vc", "stm32f407vg", "stm32f746ng"};

inline const ChipInfo& chip_named(const std::string& name) {
  const ChipInfo* chip = find_chip(name);
  if (chip == nullptr) throw std::runtime_error("no chip " + name);
  return *chip;
}

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(in), {}};
}

// The demo firmware image built for `chip` (firmware/README.md).
inline std::vector<std::uint8_t> demo_image(const std::string& chip) {
  return read_file(std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_" + chip + ".bin");
}

// Little-endian word at `off` of an image.
inline std::uint32_t word_at(const std::vector<std::uint8_t>& d, std::size_t off) {
  return d[off] | std::uint32_t{d[off + 1]} << 8 | std::uint32_t{d[off + 2]} << 16 |
         std::uint32_t{d[off + 3]} << 24;
}

class Debugger {
 public:
  explicit Debugger(Board& board) : b_(board) {}

  std::uint32_t rd(std::uint32_t addr) {
    const BusResponse r = b_.read(addr, 4);
    EXPECT_EQ(r.status, BusStatus::ok) << "read 0x" << std::hex << addr;
    return r.value;
  }
  void wr(std::uint32_t addr, std::uint32_t value) {
    const BusResponse r = b_.write(addr, value, 4);
    EXPECT_EQ(r.status, BusStatus::ok) << "write 0x" << std::hex << addr;
  }
  void wr16(std::uint32_t addr, std::uint16_t value) {
    const BusResponse r = b_.write(addr, value, 2);
    EXPECT_EQ(r.status, BusStatus::ok) << "write16 0x" << std::hex << addr;
  }

  bool halted() { return (rd(kDhcsr) & kSHalt) != 0; }
  void halt() {
    wr(kDhcsr, kDbgKey | kCDebugEn | kCHalt);
    EXPECT_TRUE(halted());
  }
  void resume() { wr(kDhcsr, kDbgKey | kCDebugEn); }
  void step() { wr(kDhcsr, kDbgKey | kCDebugEn | kCStep); }

  // C1.6.3: write DCRSR, wait for S_REGRDY, then DCRDR holds the value.
  std::uint32_t reg(std::uint32_t regsel) {
    wr(kDcrsr, regsel);
    EXPECT_NE(rd(kDhcsr) & kSRegRdy, 0u) << "S_REGRDY after reading regsel " << regsel;
    return rd(kDcrdr);
  }
  void set_reg(std::uint32_t regsel, std::uint32_t value) {
    wr(kDcrdr, value);
    wr(kDcrsr, regsel | kRegWrite);
    EXPECT_NE(rd(kDhcsr) & kSRegRdy, 0u) << "S_REGRDY after writing regsel " << regsel;
  }

  void load_thumb(std::uint32_t addr, const std::vector<std::uint16_t>& code) {
    for (std::size_t i = 0; i < code.size(); ++i)
      wr16(addr + 2 * static_cast<std::uint32_t>(i), code[i]);
  }
  // Halted core, registers set up to run `code` from `addr` on the main stack `stack`.
  void prepare(std::uint32_t addr, const std::vector<std::uint16_t>& code, std::uint32_t stack) {
    halt();
    load_thumb(addr, code);
    for (std::uint32_t r = 0; r <= 12; ++r)
      set_reg(r, 0);
    set_reg(kRegMsp, stack);
    set_reg(kRegXpsr, 0x01000000);  // EPSR.T
    set_reg(kRegPc, addr);
    wr(kDfsr, kDfsrAll);
  }

  // Advances virtual time in small slices until the core halts or `limit` passes.
  bool run_until_halted(Picoseconds limit) {
    const Picoseconds end = b_.now() + limit;
    while (b_.now() < end) {
      if (halted()) return true;
      b_.advance(10 * kMicrosecond);
    }
    return halted();
  }

  // System reset with the core caught at the reset vector (C1.6.5 VC_CORERESET).
  void reset_halt() {
    wr(kDemcr, kVcCoreReset | kTrcEna);
    wr(kDhcsr, kDbgKey | kCDebugEn);
    wr(kAircr, kVectKey | kSysResetReq);
    EXPECT_TRUE(halted());
  }
  void set_vector_catch(bool on) { wr(kDemcr, on ? kVcCoreReset : 0); }

  std::uint32_t flash_reg(std::uint32_t offset) const { return b_.chip().flash_regs + offset; }
  std::uint32_t flash_sr() const { return flash_reg(kFlashSr); }
  std::uint32_t flash_cr() const { return flash_reg(kFlashCr); }
  bool f1() const { return b_.chip().flash_style == FlashStyle::f1; }
  // PM0075 3.4 / RM0090 3.9.4 FLASH_SR.BSY; PM0075 3.5 / RM0090 3.9.5 FLASH_CR.LOCK.
  std::uint32_t bsy() const { return f1() ? 1u : 1u << 16; }
  std::uint32_t lock() const { return f1() ? 0x80u : 0x80000000u; }

  void unlock_flash() {
    wr(flash_reg(kFlashKeyr), kFlashKey1);
    wr(flash_reg(kFlashKeyr), kFlashKey2);
    ASSERT_EQ(rd(flash_cr()) & lock(), 0u) << "FLASH_CR unlocked";
  }
  void lock_flash() { wr(flash_cr(), lock()); }
  // Polls BSY in growing steps (5 us up to 1 ms): a program takes microseconds, an RDP
  // regression seconds. Gives up after 60 s of virtual time.
  void wait_flash_idle() {
    const Picoseconds end = b_.now() + 60 * kSecond;
    for (Picoseconds step = 5 * kMicrosecond; (rd(flash_sr()) & bsy()) && b_.now() < end;
         step = std::min<Picoseconds>(2 * step, kMillisecond))
      b_.advance(step);
    ASSERT_EQ(rd(flash_sr()) & bsy(), 0u) << "flash still busy";
  }

  // PM0075 2.3 (F1: KEYR unlock, PG, half-word writes, BSY) and RM0090 3.6.4 / RM0385
  // 3.3.6 (F4/F7: KEYR unlock, PG with PSIZE = x32, word writes, BSY). `offset` is from
  // the flash base; the target area is erased.
  void program_flash(std::uint32_t offset, const std::vector<std::uint8_t>& image) {
    std::vector<std::uint8_t> data = image;
    while (data.size() % 4 != 0)
      data.push_back(0xFF);
    const std::uint32_t base = b_.chip().flash_base + offset;
    ASSERT_NO_FATAL_FAILURE(unlock_flash());
    wr(flash_cr(), f1() ? 0x1u : (0x1u | 2u << 8));
    for (std::uint32_t off = 0; off < data.size(); off += f1() ? 2 : 4) {
      std::uint32_t v = data[off] | std::uint32_t{data[off + 1]} << 8;
      if (f1()) {
        wr16(base + off, static_cast<std::uint16_t>(v));
      } else {
        v |= std::uint32_t{data[off + 2]} << 16 | std::uint32_t{data[off + 3]} << 24;
        wr(base + off, v);
      }
      ASSERT_NO_FATAL_FAILURE(wait_flash_idle());
    }
    // F1: PGERR | WRPRTERR; F4/F7: OPERR and the programming error flags.
    EXPECT_EQ(rd(flash_sr()) & (f1() ? 0x14u : 0xF2u), 0u) << "flash error flags";
    wr(flash_cr(), 0);
    lock_flash();
    for (std::uint32_t off = 0; off < data.size(); off += 4)
      ASSERT_EQ(rd(base + off), word_at(data, off)) << "flash word at +" << off;
  }

 private:
  Board& b_;
};

}  // namespace probefarm::sim::test
