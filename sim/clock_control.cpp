// The reset-and-clock-control block, far enough that SYSCLK follows what firmware and the
// stock OpenOCD reset-init scripts program: oscillator enables and their ready flags, the
// main PLL, and the SW/SWS system-clock switch. Every other RCC register is plain storage
// with the reference manual's reset value. Oscillators and the PLL are ready as soon as
// they are enabled (no start-up or lock time), since nothing here waits on them in a way
// that a delay would make more faithful.
#include <array>
#include <string_view>
#include <utility>
#include <vector>

#include "flash_detail.hpp"

namespace probefarm::sim {
namespace {

using flash_detail::WordWrite;

// RCC_CR, identical on all four parts (RM0008 7.3.1, RM0316 9.4.1, RM0090 7.3.1,
// RM0385 5.3.1). HSICAL is a factory trim value; the model reads it as zero.
constexpr std::uint32_t kCrHsion = 1u << 0;
constexpr std::uint32_t kCrHsirdy = 1u << 1;
constexpr std::uint32_t kCrHseon = 1u << 16;
constexpr std::uint32_t kCrHserdy = 1u << 17;
constexpr std::uint32_t kCrPllon = 1u << 24;
constexpr std::uint32_t kCrPllrdy = 1u << 25;
// F4/F7 only: PLLI2S (26/27) and, on the F7, PLLSAI (28/29) with the same on/ready pairing.
constexpr std::uint32_t kCrPlli2son = 1u << 26;
constexpr std::uint32_t kCrPllsaion = 1u << 28;
constexpr std::uint32_t kCrReset = 0x83;  // HSION | HSIRDY | HSITRIM = 16
// Bits the oscillators drive; software writes to them are ignored.
constexpr std::uint32_t kCrReadOnly =
    kCrHsirdy | (0xFFu << 8) | kCrHserdy | kCrPllrdy | (kCrPlli2son << 1) | (kCrPllsaion << 1);

// RCC_CFGR SW/SWS (same positions on all four parts).
constexpr std::uint32_t kCfgrSw = 3u;
constexpr unsigned kCfgrSwsShift = 2;
constexpr std::uint32_t kCfgrSws = 3u << kCfgrSwsShift;
enum Source : std::uint32_t { hsi = 0, hse = 1, pll = 2 };

enum class Family { f1, f3, f4, f7 };

struct Layout {
  Family family;
  std::uint32_t hsi_hz;
  std::uint32_t hse_hz;  // the crystal or bypass clock on the usual board
  std::uint32_t cfgr;    // offset of RCC_CFGR
  std::uint32_t cir;     // offset of RCC_CIR; bits 23:16 are write-1-to-clear strobes
  std::vector<std::pair<std::uint32_t, std::uint32_t>> resets;  // non-zero reset values
};

Layout layout_for(const ChipInfo& chip) {
  const std::string_view name = chip.name;
  if (name == "stm32f103c8") {
    // RM0008 7.3: CFGR 0x04, CIR 0x08, AHBENR 0x14 = 0x14, CSR 0x24 = 0x0C000000.
    // Blue Pill: 8 MHz crystal.
    return {Family::f1, 8'000'000, 8'000'000,
            0x04,       0x08,      {{0x00, kCrReset}, {0x14, 0x00000014}, {0x24, 0x0C000000}}};
  }
  if (name == "stm32f303vc") {
    // RM0316 9.4: same map as the F1 plus CFGR2 (0x2C, PREDIV); AHBENR reset 0x14,
    // CSR 0x0C000000. STM32F3DISCOVERY: 8 MHz from the ST-LINK MCO (HSE bypass).
    return {Family::f3, 8'000'000, 8'000'000,
            0x04,       0x08,      {{0x00, kCrReset}, {0x14, 0x00000014}, {0x24, 0x0C000000}}};
  }
  if (name == "stm32f746ng") {
    // RM0385 5.3: PLLCFGR 0x24003010, AHB1ENR 0x00100000, the LPENR registers, CSR
    // 0x0E000000, PLLI2SCFGR and PLLSAICFGR 0x24003000. STM32F746G-DISCO: 25 MHz crystal.
    return {Family::f7,
            16'000'000,
            25'000'000,
            0x08,
            0x0C,
            {{0x00, kCrReset},
             {0x04, 0x24003010},
             {0x30, 0x00100000},
             {0x50, 0x7EF7B7FF},
             {0x54, 0x000000F1},
             {0x58, 0x00000003},
             {0x60, 0xFFFFCBFF},
             {0x64, 0x04F77F33},
             {0x74, 0x0E000000},
             {0x84, 0x24003000},
             {0x88, 0x24003000}}};
  }
  // RM0090 7.3: PLLCFGR 0x24003010, AHB1ENR 0x00100000, the LPENR registers, CSR
  // 0x0E000000, PLLI2SCFGR 0x20003000. STM32F4DISCOVERY: 8 MHz crystal.
  return {Family::f4,
          16'000'000,
          8'000'000,
          0x08,
          0x0C,
          {{0x00, kCrReset},
           {0x04, 0x24003010},
           {0x30, 0x00100000},
           {0x50, 0x7E6791FF},
           {0x54, 0x000000F1},
           {0x58, 0x00000001},
           {0x60, 0x36FEC9FF},
           {0x64, 0x00075F33},
           {0x74, 0x0E000000},
           {0x84, 0x20003000}}};
}

class Rcc final : public ClockControl {
 public:
  explicit Rcc(const ChipInfo& chip) : layout_(layout_for(chip)) { reset(); }

  std::uint32_t read(std::uint32_t offset, unsigned size) override {
    if (offset >= kBlockSize) return 0;
    return flash_detail::narrow_read(regs_[offset / 4], offset, size);
  }

  void write(std::uint32_t offset, std::uint32_t value, unsigned size) override {
    if (offset >= kBlockSize) return;
    const WordWrite w = flash_detail::widen_write(offset, value, size);
    std::uint32_t& reg = regs_[w.offset / 4];
    if (w.offset == 0x00) {
      write_cr(w);
    } else if (w.offset == layout_.cfgr) {
      write_cfgr(w);
    } else if (w.offset == kPllcfgr && is_f4_style()) {
      // RM0090 7.3.2 / RM0385 5.3.2: PLL parameters can change only while the PLL is off.
      if ((cr() & kCrPllon) == 0) reg = w.merge(reg);
    } else if (w.offset == layout_.cir) {
      reg = w.merge(reg) & ~0x00FF0000u;  // clear strobes read as zero
    } else if (w.offset == kCfgr2 && layout_.family == Family::f3) {
      // RM0316 9.4.12: PREDIV[0] and CFGR.PLLXTPRE are the same bit.
      if ((cr() & kCrPllon) == 0) {
        reg = w.merge(reg);
        cfgr() = (cfgr() & ~kCfgrPllxtpre) | ((reg & 1) ? kCfgrPllxtpre : 0);
      }
    } else {
      reg = w.merge(reg);
    }
    update_switch();
  }

  std::uint32_t sysclk_hz() const override {
    switch ((cfgr_value() & kCfgrSws) >> kCfgrSwsShift) {
      case hse:
        return layout_.hse_hz;
      case pll:
        return pll_hz();
      default:
        return layout_.hsi_hz;
    }
  }

  void reset() override {
    regs_.fill(0);
    for (const auto& [offset, value] : layout_.resets)
      regs_[offset / 4] = value;
  }

 private:
  static constexpr std::uint32_t kBlockSize = 0x400;
  static constexpr std::uint32_t kPllcfgr = 0x04;  // F4/F7
  static constexpr std::uint32_t kCfgr2 = 0x2C;    // F3
  // F1/F3 RCC_CFGR PLL fields (RM0008 7.3.2, RM0316 9.4.2).
  static constexpr std::uint32_t kCfgrPllsrc = 1u << 16;
  static constexpr std::uint32_t kCfgrPllxtpre = 1u << 17;
  static constexpr std::uint32_t kCfgrPllFields = 0x3Fu << 16;  // PLLSRC, PLLXTPRE, PLLMUL

  bool is_f4_style() const { return layout_.family == Family::f4 || layout_.family == Family::f7; }
  std::uint32_t& cr() { return regs_[0]; }
  std::uint32_t cr_value() const { return regs_[0]; }
  std::uint32_t& cfgr() { return regs_[layout_.cfgr / 4]; }
  std::uint32_t cfgr_value() const { return regs_[layout_.cfgr / 4]; }

  Source current_source() const {
    return static_cast<Source>((cfgr_value() & kCfgrSws) >> kCfgrSwsShift);
  }
  bool pll_uses_hse() const {
    return is_f4_style() ? (regs_[kPllcfgr / 4] >> 22) & 1 : (cfgr_value() & kCfgrPllsrc) != 0;
  }

  void write_cr(const WordWrite& w) {
    std::uint32_t v = (w.merge(cr()) & ~kCrReadOnly) | (cr() & kCrReadOnly);
    // RM0008 7.3.1 (and the same text in RM0316/RM0090/RM0385): an oscillator or the PLL
    // cannot be stopped while it drives SYSCLK, directly or through the PLL.
    const Source src = current_source();
    const bool pll_in_use = src == pll;
    if (src == hsi || (pll_in_use && !pll_uses_hse())) v |= kCrHsion;
    if (src == hse || (pll_in_use && pll_uses_hse())) v |= kCrHseon;
    if (pll_in_use) v |= kCrPllon;
    // Ready flags follow the enables at once: no start-up time is modelled.
    v &= ~(kCrHsirdy | kCrHserdy | kCrPllrdy | (kCrPlli2son << 1) | (kCrPllsaion << 1));
    if (v & kCrHsion) v |= kCrHsirdy;
    if (v & kCrHseon) v |= kCrHserdy;
    if (v & kCrPllon) v |= kCrPllrdy;
    if (is_f4_style() && (v & kCrPlli2son)) v |= kCrPlli2son << 1;
    if (layout_.family == Family::f7 && (v & kCrPllsaion)) v |= kCrPllsaion << 1;
    cr() = v;
  }

  void write_cfgr(const WordWrite& w) {
    std::uint32_t v = (w.merge(cfgr()) & ~kCfgrSws) | (cfgr() & kCfgrSws);
    // RM0008 7.3.2 / RM0316 9.4.2: PLLSRC, PLLXTPRE and PLLMUL change only with the PLL off.
    if (!is_f4_style() && (cr() & kCrPllon)) {
      v = (v & ~kCfgrPllFields) | (cfgr() & kCfgrPllFields);
    }
    cfgr() = v;
    if (layout_.family == Family::f3) {
      std::uint32_t& cfgr2 = regs_[kCfgr2 / 4];
      cfgr2 = (cfgr2 & ~1u) | ((v & kCfgrPllxtpre) ? 1 : 0);
    }
  }

  // SWS follows SW once the selected source is ready (RM0008 7.3.2 and equivalents);
  // SW = 11 is "not allowed" and leaves the switch where it is.
  void update_switch() {
    const std::uint32_t sw = cfgr() & kCfgrSw;
    const std::uint32_t ready_bit = sw == hsi ? kCrHsirdy : sw == hse ? kCrHserdy : kCrPllrdy;
    if (sw > pll || (cr() & ready_bit) == 0) return;
    cfgr() = (cfgr() & ~kCfgrSws) | (sw << kCfgrSwsShift);
  }

  std::uint32_t pll_hz() const {
    const std::uint64_t cfgr = cfgr_value();
    if (is_f4_style()) {
      // RM0090 7.3.2 / RM0385 5.3.2: f = (src / PLLM) * PLLN / PLLP, PLLP = 2, 4, 6, 8.
      const std::uint32_t pllcfgr = regs_[kPllcfgr / 4];
      const std::uint64_t src = pll_uses_hse() ? layout_.hse_hz : layout_.hsi_hz;
      std::uint64_t m = pllcfgr & 0x3F;
      if (m == 0) m = 1;  // a forbidden setting; avoid dividing by zero
      const std::uint64_t n = (pllcfgr >> 6) & 0x1FF;
      const std::uint64_t p = 2 * (((pllcfgr >> 16) & 3) + 1);
      return static_cast<std::uint32_t>(src * n / (m * p));
    }
    // RM0008 7.3.2 / RM0316 9.4.2: PLLMUL 0000 = x2 ... 1110 = x16, 1111 = x16.
    std::uint64_t mul = ((cfgr >> 18) & 0xF) + 2;
    if (mul > 16) mul = 16;
    std::uint64_t in = 0;
    if ((cfgr & kCfgrPllsrc) == 0) {
      in = layout_.hsi_hz / 2;
    } else if (layout_.family == Family::f3) {
      in = layout_.hse_hz / ((regs_[kCfgr2 / 4] & 0xF) + 1);  // RM0316 9.4.12 PREDIV
    } else {
      in = (cfgr & kCfgrPllxtpre) ? layout_.hse_hz / 2 : layout_.hse_hz;
    }
    return static_cast<std::uint32_t>(in * mul);
  }

  Layout layout_;
  std::array<std::uint32_t, kBlockSize / 4> regs_{};
};

}  // namespace

std::unique_ptr<ClockControl> make_clock_control(const ChipInfo& chip) {
  return std::make_unique<Rcc>(chip);
}

}  // namespace probefarm::sim
