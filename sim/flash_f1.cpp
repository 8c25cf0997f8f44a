// The F1-style flash program/erase controller (FPEC) of the STM32F103 and STM32F303.
// Behaviour: PM0075 (STM32F10xxx flash programming manual) sections 2.3-2.5 and 3,
// RM0008 3.3, RM0316 4 (the F303 variant of the same block). RM0316 4.2-4.3 is quoted
// from its twin RM0364 3.2-3.3 (STM32F334), which describes the same FPEC word for word.
#include <algorithm>
#include <string_view>

#include "flash_detail.hpp"

namespace probefarm::sim {
namespace {

using flash_detail::load_le;
using flash_detail::store_le;
using flash_detail::WordWrite;

// PM0075 3.1 register map; RM0316 4.5.8 is identical for the F303.
constexpr std::uint32_t kAcr = 0x00;
constexpr std::uint32_t kKeyr = 0x04;
constexpr std::uint32_t kOptkeyr = 0x08;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kAr = 0x14;
constexpr std::uint32_t kObr = 0x1C;
constexpr std::uint32_t kWrpr = 0x20;

// PM0075 3.4 FLASH_SR.
constexpr std::uint32_t kSrBsy = 1u << 0;
constexpr std::uint32_t kSrPgerr = 1u << 2;
constexpr std::uint32_t kSrWrprterr = 1u << 4;
constexpr std::uint32_t kSrEop = 1u << 5;
constexpr std::uint32_t kSrW1c = kSrPgerr | kSrWrprterr | kSrEop;

// PM0075 3.5 FLASH_CR (reset 0x80); RM0316 4.5.4 adds OBL_LAUNCH (bit 13), which is
// never stored: the system reset it causes clears it again.
constexpr std::uint32_t kCrPg = 1u << 0;
constexpr std::uint32_t kCrPer = 1u << 1;
constexpr std::uint32_t kCrMer = 1u << 2;
constexpr std::uint32_t kCrOptpg = 1u << 4;
constexpr std::uint32_t kCrOpter = 1u << 5;
constexpr std::uint32_t kCrStrt = 1u << 6;
constexpr std::uint32_t kCrLock = 1u << 7;
constexpr std::uint32_t kCrOptwre = 1u << 9;
constexpr std::uint32_t kCrErrie = 1u << 10;
constexpr std::uint32_t kCrEopie = 1u << 12;
constexpr std::uint32_t kCrOblLaunch = 1u << 13;
constexpr std::uint32_t kCrStored =
    kCrPg | kCrPer | kCrMer | kCrOptpg | kCrOpter | kCrErrie | kCrEopie;

// PM0075 3.2 FLASH_ACR reset value: prefetch enabled (PRFTBE) and running (PRFTBS).
constexpr std::uint32_t kAcrReset = 0x30;
constexpr std::uint32_t kAcrPrftbe = 1u << 4;
constexpr std::uint32_t kAcrPrftbs = 1u << 5;

struct F1Params {
  // One half-word, main flash or option byte (the datasheets give one tprog for both).
  Picoseconds program;
  // A page; also the option-byte area, which the datasheets give no time of its own.
  Picoseconds page_erase;
  Picoseconds mass_erase;
  unsigned pages_per_wrp_bit;
  // PM0075 2.4.1: pages write-protected by read protection alone, whoever writes.
  unsigned rdp_protected_pages;
  // The RDP value of level 0: PM0075 2.5 0xA5, RM0316 4.3.1 Table "Flash memory read
  // protection status" 0xAA (and 0xCC for level 2).
  std::uint8_t rdp_level0;
  // RM0316 variant: FLASH_OBR layout, level 2, OBL_LAUNCH, PGERR for debug accesses.
  bool f3;
};

F1Params params_for(const ChipInfo& chip) {
  if (chip.name == std::string_view{"stm32f303vc"}) {
    // DS9118 6.3.10 Flash memory characteristics: tprog typ 53.5 us; tERASE (2 KiB page)
    // and tME give only min 20 ms / max 40 ms, so the minimum is used.
    // RM0316 4.5 option bytes: one WRP bit protects 2 pages, WRP3 bit 7 pages 62-127.
    return {53'500 * kNanosecond, 20 * kMillisecond, 20 * kMillisecond, 2, 0, 0xAA, true};
  }
  // DS5319 5.3.9 Table "Flash memory characteristics": tprog typ 52.5 us; tERASE (page)
  // and tME give only min 20 ms / max 40 ms, so the minimum is used.
  // PM0075 2.5: medium density, one WRP bit protects 4 pages; 2.4.1: read protection
  // write-protects pages 0-3 of low- and medium-density parts.
  return {52'500 * kNanosecond, 20 * kMillisecond, 20 * kMillisecond, 4, 4, 0xA5, false};
}

class FlashF1 final : public FlashController {
 public:
  explicit FlashF1(const FlashContext& ctx) : ctx_(ctx), params_(params_for(ctx.chip)) { reset(); }

  std::uint32_t read(std::uint32_t offset, unsigned size) override {
    settle();
    return flash_detail::narrow_read(register_value(offset & ~3u), offset, size);
  }

  void write(std::uint32_t offset, std::uint32_t value, unsigned size) override {
    settle();
    const WordWrite w = flash_detail::widen_write(offset, value, size);
    switch (w.offset) {
      case kAcr:
        acr_ = w.merge(acr_) & ~kAcrPrftbs;
        break;
      case kKeyr:
        if (keys_.write(w, !locked())) cr_ &= ~kCrLock;
        if (keys_.locked_up()) cr_ |= kCrLock;
        break;
      case kOptkeyr:
        // PM0075 2.4.3: the option keys only matter once FLASH_CR is unlocked.
        if (!locked() && option_keys_.write(w, (cr_ & kCrOptwre) != 0)) cr_ |= kCrOptwre;
        break;
      case kSr:
        sr_ &= ~(w.value & w.mask & kSrW1c);
        break;
      case kCr:
        write_cr(w);
        break;
      case kAr:
        // PM0075 3.6: FLASH_AR writes are blocked while BSY is set.
        if (!op_active_) ar_ = w.merge(ar_);
        break;
      default:
        break;  // OBR and WRPR are read-only; the rest of the block is reserved.
    }
  }

  BusResponse array_read(std::uint32_t offset, unsigned size) override {
    settle();
    // PM0075 2.3.3: any read or write of the main flash stalls until BSY clears.
    if (op_active_) return {BusStatus::busy, 0, busy_until_};
    return {BusStatus::ok, load_le(ctx_.flash, offset, size), 0};
  }

  BusResponse array_write(std::uint32_t offset, std::uint32_t value, unsigned size) override {
    settle();
    if (op_active_) return {BusStatus::busy, 0, busy_until_};
    // Without PG (or with the FPEC locked) the FPEC ignores writes to the array; the
    // manuals define no flag for it.
    if (locked() || (cr_ & kCrPg) == 0) return {};
    // PM0075 2.3.3: programming is by half-word; other sizes get an AHB bus error.
    if (size != 2) return {BusStatus::error, 0, 0};
    // PM0075 2.3.3: a write-protected or not-erased half-word is skipped with a warning
    // flag; programming 0x0000 over anything is allowed.
    if (const std::uint32_t flag = refusal(offset / ctx_.chip.page_size)) {
      sr_ |= flag;
      return {};
    }
    const auto old = load_le(ctx_.flash, offset, 2);
    const auto half = value & 0xFFFF;
    if (old != 0xFFFF && half != 0) {
      sr_ |= kSrPgerr;
      return {};
    }
    store_le(ctx_.flash, offset, half, 2);
    ctx_.counters.bytes_programmed += 2;
    changed(offset, 2);
    start(params_.program);
    return {};
  }

  BusResponse option_read(std::uint32_t offset, unsigned size) override {
    return flash_detail::read_option_bytes(ctx_, offset, size);
  }

  BusResponse option_write(std::uint32_t offset, std::uint32_t value, unsigned size) override {
    settle();
    if (offset + size > ctx_.option_bytes.size()) return {BusStatus::error, 0, 0};
    if (op_active_) return {BusStatus::busy, 0, busy_until_};
    // PM0075 2.3 "Option byte programming": OPTWRE (set by the option keys) must
    // authorize it and OPTPG select it; without them the write goes nowhere, and the
    // manual defines no flag for that.
    if (locked() || (cr_ & (kCrOptpg | kCrOptwre)) != (kCrOptpg | kCrOptwre)) return {};
    // Half-word writes only, as for the main flash (PM0075 2.3.3).
    if (size != 2) return {BusStatus::error, 0, 0};
    // RM0316 4.3.1 level 2: the RDP byte can no longer be programmed (WRPRTERR).
    if (offset == 0 && rdp_level_ == ReadProtection::level2) {
      sr_ |= kSrWrprterr;
      return {};
    }
    // Same section: an option byte that is not erased is skipped with WRPRTERR.
    if (load_le(ctx_.option_bytes, offset, 2) != 0xFFFF) {
      sr_ |= kSrWrprterr;
      return {};
    }
    Picoseconds duration = params_.program;
    const auto byte = static_cast<std::uint8_t>(value);
    if (offset == 0 && byte == params_.rdp_level0 && rdp_level_ != ReadProtection::level0) {
      // Unprotection (PM0075 2.4.1, RM0316 4.2 "Option byte programming"): programming the
      // level-0 RDP value while protection is in force first mass-erases the main flash;
      // erasing the option bytes alone does not. The erase ignores write protection: it is
      // how write protection is removed (PM0075 2.4.2 "Unprotection", case 1).
      flash_detail::erase_all(ctx_);
      duration += params_.mass_erase;
    }
    // PM0075 2.3 "Option byte programming": the hardware puts the complement of the low
    // byte into the high byte, whatever was written there.
    store_le(ctx_.option_bytes, offset, byte | std::uint32_t{static_cast<std::uint8_t>(~byte)} << 8,
             2);
    start(duration);
    return {};
  }

  void reset() override {
    // An operation in flight is cut short by the reset; its effect on the array is
    // already in place (the model applies it when the operation starts).
    op_active_ = false;
    busy_until_ = 0;
    acr_ = kAcrReset;
    sr_ = 0;
    cr_ = kCrLock;
    ar_ = 0;
    keys_.reset();
    option_keys_.reset();
    load_option_bytes();
  }

  bool busy() const override { return op_active_ && ctx_.clock.now() < busy_until_; }

  ReadProtection read_protection() const override { return rdp_level_; }

 private:
  bool locked() const { return (cr_ & kCrLock) != 0; }

  // PM0075 2.4.1 / RM0316 4.3.1: with read protection in force and a debugger connected,
  // the main flash is program/erase protected.
  bool debug_protected() const { return flash_detail::debug_protected(ctx_, rdp_level_); }

  // The SR flag that refuses a program or page erase of `page`, 0 if it may go ahead.
  // The F303 reports debug-mode attempts with PGERR (RM0316 4.3.1 level 1). PM0075 names
  // no flag for the F103; the model reports the same WRPRTERR as its RDP-protected pages
  // 0-3, which is what a debugger sees as "write protected".
  std::uint32_t refusal(std::uint32_t page) const {
    if (debug_protected()) return params_.f3 ? kSrPgerr : kSrWrprterr;
    if (rdp_level_ != ReadProtection::level0 && page < params_.rdp_protected_pages) {
      return kSrWrprterr;
    }
    return page_protected(page) ? kSrWrprterr : 0;
  }

  std::uint32_t register_value(std::uint32_t offset) const {
    switch (offset) {
      case kAcr:
        return acr_ | ((acr_ & kAcrPrftbe) ? kAcrPrftbs : 0);
      case kSr:
        return sr_ | (op_active_ ? kSrBsy : 0);
      case kCr:
        return cr_;
      case kAr:
        return ar_;
      case kObr:
        return obr_;
      case kWrpr:
        return wrpr_;
      default:
        return 0;  // KEYR/OPTKEYR are write-only; reserved words read as zero.
    }
  }

  void write_cr(const WordWrite& w) {
    // RM0316 4.2.1: OBL_LAUNCH is the one FLASH_CR bit writable while the FPEC is locked.
    // 4.5.4: it reloads the option bytes and generates a system reset.
    if (params_.f3 && (w.value & w.mask & kCrOblLaunch)) {
      if (ctx_.request_system_reset) {
        ctx_.request_system_reset();
      } else {
        reset();
      }
      return;  // the reset has already reinitialised this controller
    }
    if (locked()) return;
    const std::uint32_t v = w.merge(cr_);
    cr_ = (cr_ & ~kCrStored) | (v & kCrStored);
    // OPTWRE is cleared by software and set only by the option key sequence.
    if ((v & kCrOptwre) == 0) cr_ &= ~kCrOptwre;
    if (v & kCrLock) {
      // PM0075 3.5: LOCK is write-1-only; the next unlock needs both keys again.
      cr_ |= kCrLock;
      keys_.relock();
      return;
    }
    if ((w.value & w.mask & kCrStrt) && !op_active_) start_erase();
  }

  void start_erase() {
    const auto& chip = ctx_.chip;
    const std::uint32_t pages = chip.flash_size / chip.page_size;
    if (cr_ & kCrOpter) {
      erase_option_bytes();
      return;
    }
    if (cr_ & kCrMer) {
      // PM0075 2.4.1: read protection does not protect against mass erase on the F103; the
      // F303 refuses it in debug mode like any erase (RM0316 4.3.1 Table "Access status
      // versus protection level": main flash, debug, erase: no).
      if (params_.f3 && debug_protected()) {
        sr_ |= kSrPgerr;
        return;
      }
      // A mass erase would take protected pages with it, so it is refused.
      for (std::uint32_t p = 0; p < pages; ++p) {
        if (page_protected(p)) {
          sr_ |= kSrWrprterr;
          return;
        }
      }
      flash_detail::erase_all(ctx_);
      cr_ |= kCrStrt;
      start(params_.mass_erase);
      return;
    }
    if (cr_ & kCrPer) {
      // PM0075 2.3.4: FLASH_AR holds any address inside the page.
      const std::uint32_t offset = ar_ - chip.flash_base;
      if (ar_ < chip.flash_base || offset >= chip.flash_size) return;
      const std::uint32_t page = offset / chip.page_size;
      if (const std::uint32_t flag = refusal(page)) {
        sr_ |= flag;
        return;
      }
      const std::uint32_t first = page * chip.page_size;
      std::fill_n(ctx_.flash.begin() + first, chip.page_size, std::uint8_t{0xFF});
      ctx_.counters.pages_erased += 1;
      changed(first, chip.page_size);
      cr_ |= kCrStrt;
      start(params_.page_erase);
    }
  }

  // PM0075 2.3 "Erase procedure": OPTER + STRT erases the whole option-byte area. The
  // new values count only from the next option load (PM0075 2.5 note: after a system
  // reset), so FLASH_OBR and FLASH_WRPR keep their values.
  void erase_option_bytes() {
    if ((cr_ & kCrOptwre) == 0) return;  // not authorized: nothing happens
    if (rdp_level_ == ReadProtection::level2) {
      // RM0316 4.3.1 level 2: the option bytes cannot be erased. The manual names a flag
      // only for programming the RDP byte; the model reports the erase the same way.
      sr_ |= kSrWrprterr;
      return;
    }
    std::fill(ctx_.option_bytes.begin(), ctx_.option_bytes.end(), std::uint8_t{0xFF});
    cr_ |= kCrStrt;
    start(params_.page_erase);
  }

  bool page_protected(std::uint32_t page) const {
    // The last WRP bit covers every page above the others (PM0075 2.5, RM0316 4.5).
    const unsigned bit = std::min(page / params_.pages_per_wrp_bit, 31u);
    return ((wrpr_ >> bit) & 1) == 0;
  }

  void start(Picoseconds duration) {
    op_active_ = true;
    busy_until_ = ctx_.clock.now() + duration;
  }

  // Completion is evaluated lazily: whenever the controller is looked at, an operation
  // whose end time has passed is finished.
  void settle() {
    if (!op_active_ || ctx_.clock.now() < busy_until_) return;
    op_active_ = false;
    sr_ |= kSrEop;
    cr_ &= ~kCrStrt;  // PM0075 3.5: STRT is cleared when BSY clears.
  }

  void changed(std::uint32_t offset, std::uint32_t length) {
    flash_detail::notify_changed(ctx_, offset, length);
  }

  // PM0075 2.5: each option byte is followed by its complement. A mismatched pair reads
  // as 0xFF and sets OPTERR, unless both bytes are erased (0xFF), when the check is off.
  std::uint8_t option_byte(unsigned index, bool& error) const {
    const std::uint8_t b = ctx_.option_bytes[index];
    const std::uint8_t nb = ctx_.option_bytes[index + 1];
    if ((b ^ nb) == 0xFF || (b == 0xFF && nb == 0xFF)) return b;
    error = true;
    return 0xFF;
  }

  void load_option_bytes() {
    bool error = false;
    const std::uint32_t rdp = option_byte(0, error);
    const std::uint32_t user = option_byte(2, error);
    const std::uint32_t data0 = option_byte(4, error);
    const std::uint32_t data1 = option_byte(6, error);
    wrpr_ = 0;
    for (unsigned i = 0; i < 4; ++i)
      wrpr_ |= std::uint32_t{option_byte(8 + 2 * i, error)} << (8 * i);
    // A mismatched RDP pair reads as 0xFF above: level 1, as both manuals require.
    rdp_level_ = rdp == params_.rdp_level0     ? ReadProtection::level0
                 : (params_.f3 && rdp == 0xCC) ? ReadProtection::level2
                                               : ReadProtection::level1;
    if (params_.f3) {
      // RM0316 4.5.6 FLASH_OBR: RDPRT[2:1] = level (0xAA: 0, 0xCC: 2, else 1), USER in
      // [15:8], DATA0 [23:16], DATA1 [31:24].
      const std::uint32_t level = rdp_level_ == ReadProtection::level0   ? 0
                                  : rdp_level_ == ReadProtection::level2 ? 3
                                                                         : 1;
      obr_ = (error ? 1 : 0) | (level << 1) | (user << 8) | (data0 << 16) | (data1 << 24);
    } else {
      // PM0075 3.7 FLASH_OBR: RDPRT (bit 1) unless RDP is 0xA5, USER [9:2], DATA0 [17:10],
      // DATA1 [25:18]. Factory contents give the documented reset value 0x03FFFFFC.
      const std::uint32_t rdprt = rdp_level_ == ReadProtection::level0 ? 0 : 1;
      obr_ = (error ? 1 : 0) | (rdprt << 1) | (user << 2) | (data0 << 10) | (data1 << 18);
    }
  }

  FlashContext ctx_;
  F1Params params_;
  flash_detail::KeySequence keys_{flash_detail::kKey1, flash_detail::kKey2,
                                  flash_detail::KeySequence::WhileUnlocked::accept_keys};
  flash_detail::KeySequence option_keys_{flash_detail::kKey1, flash_detail::kKey2,
                                         flash_detail::KeySequence::WhileUnlocked::accept_keys};
  std::uint32_t acr_ = kAcrReset;
  std::uint32_t sr_ = 0;
  std::uint32_t cr_ = kCrLock;
  std::uint32_t ar_ = 0;
  std::uint32_t obr_ = 0;
  std::uint32_t wrpr_ = 0xFFFFFFFF;
  ReadProtection rdp_level_ = ReadProtection::level0;
  bool op_active_ = false;
  Picoseconds busy_until_ = 0;
};

}  // namespace

std::unique_ptr<FlashController> flash_detail::make_f1(const FlashContext& ctx) {
  return std::make_unique<FlashF1>(ctx);
}

}  // namespace probefarm::sim
