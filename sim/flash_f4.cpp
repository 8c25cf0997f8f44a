// The sector-style flash interface of the STM32F407 (RM0090 section 3) and the STM32F746
// (RM0385 section 3). The two differ in sector layout, option registers (OPTCR1 exists on
// the F7 only) and in naming bit 7 of FLASH_SR ERSERR on the F7 instead of PGSERR.
#include <algorithm>
#include <array>
#include <optional>
#include <string_view>
#include <vector>

#include "flash_detail.hpp"

namespace probefarm::sim {
namespace {

using flash_detail::load_le;
using flash_detail::store_le;
using flash_detail::WordWrite;

// RM0090 3.9.8 / RM0385 3.7.9 register maps.
constexpr std::uint32_t kAcr = 0x00;
constexpr std::uint32_t kKeyr = 0x04;
constexpr std::uint32_t kOptkeyr = 0x08;
constexpr std::uint32_t kSr = 0x0C;
constexpr std::uint32_t kCr = 0x10;
constexpr std::uint32_t kOptcr = 0x14;
constexpr std::uint32_t kOptcr1 = 0x18;  // F7 only

// RM0090 3.9.4 / RM0385 3.7.4 FLASH_SR.
constexpr std::uint32_t kSrEop = 1u << 0;
constexpr std::uint32_t kSrOperr = 1u << 1;
constexpr std::uint32_t kSrWrperr = 1u << 4;
constexpr std::uint32_t kSrPgaerr = 1u << 5;
constexpr std::uint32_t kSrPgperr = 1u << 6;
constexpr std::uint32_t kSrPgserr = 1u << 7;  // ERSERR on the F7, same meaning
constexpr std::uint32_t kSrBsy = 1u << 16;
constexpr std::uint32_t kSrW1c = kSrEop | kSrOperr | kSrWrperr | kSrPgaerr | kSrPgperr | kSrPgserr;

// RM0090 3.9.5 / RM0385 3.7.5 FLASH_CR (reset 0x80000000).
constexpr std::uint32_t kCrPg = 1u << 0;
constexpr std::uint32_t kCrSer = 1u << 1;
constexpr std::uint32_t kCrMer = 1u << 2;
constexpr unsigned kCrSnbShift = 3;
constexpr std::uint32_t kCrSnb = 0xFu << kCrSnbShift;
constexpr unsigned kCrPsizeShift = 8;
constexpr std::uint32_t kCrPsize = 3u << kCrPsizeShift;
constexpr std::uint32_t kCrStrt = 1u << 16;
constexpr std::uint32_t kCrEopie = 1u << 24;
constexpr std::uint32_t kCrErrie = 1u << 25;
constexpr std::uint32_t kCrLock = 1u << 31;
constexpr std::uint32_t kCrStored =
    kCrPg | kCrSer | kCrMer | kCrSnb | kCrPsize | kCrEopie | kCrErrie;

// RM0090 3.9.6 / RM0385 3.7.6 FLASH_OPTCR.
constexpr std::uint32_t kOptcrOptlock = 1u << 0;
constexpr std::uint32_t kOptcrOptstrt = 1u << 1;
constexpr unsigned kOptcrRdpShift = 8;
constexpr unsigned kOptcrNwrpShift = 16;

// RM0090 3.7.3 / RM0385 3.4.3: RDP values of level 0 and level 2; anything else is level 1.
constexpr std::uint32_t kRdpLevel0 = 0xAA;
constexpr std::uint32_t kRdpLevel2 = 0xCC;
// RM0090 3.7.2 / RM0385 3.4.2 option keys.
constexpr std::uint32_t kOptKey1 = 0x08192A3B;
constexpr std::uint32_t kOptKey2 = 0x4C5D6E7F;

enum Psize : unsigned { x8 = 0, x16 = 1, x32 = 2, x64 = 3 };

struct SectorTime {
  std::uint32_t size;
  std::array<Picoseconds, 4> by_psize;  // x8, x16, x32, x64
};

struct F4Params {
  std::array<Picoseconds, 4> program;  // one write of the PSIZE width
  std::array<SectorTime, 3> sector_erase;
  std::array<Picoseconds, 4> mass_erase;
  std::uint32_t optcr_writable;  // bits software may change once OPTCR is unlocked
  bool has_optcr1;
};

// The datasheets give no time for an OPTSTRT operation and the manuals do not say which
// parallelism it uses. RM0090 3.7.2 / RM0385 3.4.2: it erases the option-byte sector and
// programs it again, so the model takes the erase time of the smallest main-flash sector,
// and for the mass erase of an RDP regression (RM0090 3.7.3) tME, both at x32: the widest
// parallelism without VPP, the one the "Program/erase parallelism" tables of RM0090 and
// RM0385 allow at the boards' 3.3 V.
constexpr unsigned kOptionParallelism = 2;  // x32

constexpr Picoseconds ms(std::uint64_t n) {
  return n * kMillisecond;
}

F4Params params_for(const ChipInfo& chip) {
  if (chip.name == std::string_view{"stm32f746ng"}) {
    // DS10916 5.3.12 "Flash memory programming" (typical values, x8/x16/x32 at 2.7-3.6 V)
    // and "Flash memory programming with VPP" (x64): tprog 16 us per write;
    // tERASE32KB 400/250/200 ms, 180 ms; tERASE128KB 1100/800/500 ms, 450 ms;
    // tERASE256KB 2000/1500/1000 ms, 900 ms; tME 16/11/8 s, 6.9 s.
    return {{16 * kMicrosecond, 16 * kMicrosecond, 16 * kMicrosecond, 16 * kMicrosecond},
            {{{32768, {ms(400), ms(250), ms(200), ms(180)}},
              {131072, {ms(1100), ms(800), ms(500), ms(450)}},
              {262144, {ms(2000), ms(1500), ms(1000), ms(900)}}}},
            {ms(16000), ms(11000), ms(8000), ms(6900)},
            // RM0385 3.7.6: BOR_LEV, WWDG_SW, IWDG_SW, nRST_STOP, nRST_STDBY, RDP,
            // nWRP[7:0], IWDG_STDBY, IWDG_STOP.
            0xC0FFFFFC,
            true};
  }
  // DS8626 5.3.12 "Flash memory programming" (typical values, x8/x16/x32) and "Flash
  // memory programming with VPP" (x64): tprog 16 us per write; tERASE16KB 400/300/250 ms,
  // 230 ms; tERASE64KB 1200/700/550 ms, 490 ms; tERASE128KB 2000/1300/1000 ms, 875 ms;
  // tME 16/11/8 s, 6.9 s.
  return {{16 * kMicrosecond, 16 * kMicrosecond, 16 * kMicrosecond, 16 * kMicrosecond},
          {{{16384, {ms(400), ms(300), ms(250), ms(230)}},
            {65536, {ms(1200), ms(700), ms(550), ms(490)}},
            {131072, {ms(2000), ms(1300), ms(1000), ms(875)}}}},
          {ms(16000), ms(11000), ms(8000), ms(6900)},
          // RM0090 3.9.6: BOR_LEV, WDG_SW, nRST_STOP, nRST_STDBY, RDP, nWRP[11:0].
          0x0FFFFFEC,
          false};
}

class FlashF4 final : public FlashController {
 public:
  explicit FlashF4(const FlashContext& ctx) : ctx_(ctx), params_(params_for(ctx.chip)) {
    std::uint32_t first = 0;
    for (auto size : ctx.chip.sector_sizes) {
      sector_start_.push_back(first);
      first += size;
    }
    reset();
  }

  std::uint32_t read(std::uint32_t offset, unsigned size) override {
    settle();
    return flash_detail::narrow_read(register_value(offset & ~3u), offset, size);
  }

  void write(std::uint32_t offset, std::uint32_t value, unsigned size) override {
    settle();
    const WordWrite w = flash_detail::widen_write(offset, value, size);
    switch (w.offset) {
      case kAcr:
        acr_ = w.merge(acr_);
        break;
      case kKeyr:
        if (keys_.write(w, !locked())) cr_ &= ~kCrLock;
        if (keys_.locked_up()) cr_ |= kCrLock;
        break;
      case kOptkeyr:
        if (option_keys_.write(w, !option_locked())) optcr_ &= ~kOptcrOptlock;
        if (option_keys_.locked_up()) optcr_ |= kOptcrOptlock;
        break;
      case kSr:
        sr_ &= ~(w.value & w.mask & kSrW1c);
        break;
      case kCr:
      case kOptcr:
        // RM0090 3.6 note / RM0385 3.3.4: a FLASH_CR write while BSY stalls the AHB until
        // BSY clears. Peripheral::write cannot stall, so the write is held back and lands
        // when the operation ends, which is what software observes afterwards. The model
        // treats FLASH_OPTCR the same way, so a second OPTSTRT waits for the first.
        if (op_active_) {
          pending_writes_.push_back(w);
        } else {
          write_control(w);
        }
        break;
      case kOptcr1:
        if (params_.has_optcr1 && !option_locked()) optcr1_ = w.merge(optcr1_);
        break;
      default:
        break;
    }
  }

  BusResponse array_read(std::uint32_t offset, unsigned size) override {
    settle();
    // RM0090 3.6 / RM0385 3.3.4: a flash read during an operation stalls the bus.
    if (op_active_) return {BusStatus::busy, 0, busy_until_};
    return {BusStatus::ok, load_le(ctx_.flash, offset, size), 0};
  }

  BusResponse array_write(std::uint32_t offset, std::uint32_t value, unsigned size) override {
    settle();
    if (op_active_) return {BusStatus::busy, 0, busy_until_};
    // RM0090 3.6.4 "Programming errors" / RM0385 3.3.7: a write without PG is a sequence
    // error (PGSERR, ERSERR on the F7); the wrong width for PSIZE is PGPERR; data that
    // would not fit one 128-bit row is PGAERR. None of them programs anything.
    if (locked() || (cr_ & kCrPg) == 0) return flag_error(kSrPgserr);
    const unsigned psize = (cr_ & kCrPsize) >> kCrPsizeShift;
    if (psize != x64) {
      if (size != (1u << psize)) return flag_error(kSrPgperr);
      return program(offset, value, size);
    }
    // x64 parallelism: the double word arrives as two word writes over the 32-bit AHB,
    // low word first at an 8-byte aligned address.
    if (size != 4) {
      x64_low_.reset();
      return flag_error(kSrPgperr);
    }
    if (!x64_low_) {
      if (offset % 8 != 0) return flag_error(kSrPgaerr);
      x64_low_ = {offset, value};
      return {};
    }
    const auto low = *x64_low_;
    x64_low_.reset();
    if (offset != low.first + 4) return flag_error(kSrPgaerr);
    return program(low.first, low.second | (std::uint64_t{value} << 32), 8);
  }

  BusResponse option_read(std::uint32_t offset, unsigned size) override {
    return flash_detail::read_option_bytes(ctx_, offset, size);
  }

  BusResponse option_write(std::uint32_t, std::uint32_t, unsigned) override {
    // RM0090 3.7.2 / RM0385 3.4.2: the option bytes change only through FLASH_OPTCR and
    // OPTSTRT, never by a direct write.
    return {BusStatus::error, 0, 0};
  }

  void reset() override {
    op_active_ = false;
    busy_until_ = 0;
    pending_writes_.clear();
    x64_low_.reset();
    acr_ = 0;
    sr_ = 0;
    cr_ = kCrLock;
    keys_.reset();
    option_keys_.reset();
    load_option_bytes();
  }

  bool busy() const override { return op_active_ && ctx_.clock.now() < busy_until_; }

  ReadProtection read_protection() const override { return rdp_level_; }

 private:
  bool locked() const { return (cr_ & kCrLock) != 0; }
  bool option_locked() const { return (optcr_ & kOptcrOptlock) != 0; }

  // RM0090 3.7.3 / RM0385 3.4.3 level 1: no erase or program of the flash while the debug
  // feature is connected. The manuals name no flag; the model raises WRPERR, which is
  // what OpenOCD reports on such parts as "stm32x device protected".
  bool debug_protected() const { return flash_detail::debug_protected(ctx_, rdp_level_); }

  void write_control(const WordWrite& w) {
    if (w.offset == kCr) {
      write_cr(w);
    } else {
      write_optcr(w);
    }
  }

  std::uint32_t register_value(std::uint32_t offset) const {
    switch (offset) {
      case kAcr:
        return acr_;
      case kSr:
        return sr_ | (op_active_ ? kSrBsy : 0);
      case kCr:
        return cr_;
      case kOptcr:
        return optcr_;
      case kOptcr1:
        return params_.has_optcr1 ? optcr1_ : 0;
      default:
        return 0;
    }
  }

  void write_cr(const WordWrite& w) {
    if (locked()) return;
    const std::uint32_t v = w.merge(cr_);
    cr_ = (cr_ & ~kCrStored) | (v & kCrStored);
    if (v & kCrLock) {
      // LOCK is write-1-only; unlocking again needs both keys.
      cr_ |= kCrLock;
      keys_.relock();
      return;
    }
    if (w.value & w.mask & kCrStrt) start_erase();
  }

  void write_optcr(const WordWrite& w) {
    if (option_locked()) return;
    const std::uint32_t v = w.merge(optcr_);
    optcr_ = (optcr_ & ~params_.optcr_writable) | (v & params_.optcr_writable);
    // RM0090 3.9.6 OPTSTRT: set by software, cleared by hardware when BSY clears.
    if (w.value & w.mask & kOptcrOptstrt) program_option_bytes();
    if (v & kOptcrOptlock) {
      optcr_ |= kOptcrOptlock;
      option_keys_.relock();
    }
  }

  // RM0090 3.7.2 / RM0385 3.4.2 (user option bytes programming): OPTSTRT erases the option
  // bytes and programs them with FLASH_OPTCR (and FLASH_OPTCR1 on the F7). The level and
  // write protection in force stay those loaded at the last reset (RM0090 3.9.6: the
  // fields "contain the value ... after reset"); FLASH_OPTCR reads back what was written.
  void program_option_bytes() {
    if (rdp_level_ == ReadProtection::level2) {
      // RM0090 3.7.3 / RM0385 3.4.3 level 2: the user option bytes can no longer be
      // changed. The manuals name no flag; the model refuses with WRPERR so that software
      // sees the refusal.
      flag_error(kSrWrperr);
      return;
    }
    const std::uint32_t rdp = (optcr_ >> kOptcrRdpShift) & 0xFF;
    Picoseconds duration = params_.sector_erase.front().by_psize[kOptionParallelism];
    if (rdp_level_ == ReadProtection::level1 && rdp == kRdpLevel0) {
      // RM0090 3.7.3 "Level 1 to level 0 regression" / RM0385 3.4.3: the flash is mass
      // erased before the protection is removed, write protection notwithstanding. The
      // erase leaves the option bytes alone ("the other option bytes including write
      // protections remain unchanged"); they are then programmed as for any OPTSTRT.
      flash_detail::erase_all(ctx_);
      duration += params_.mass_erase[kOptionParallelism];
    }
    store_option_bytes();
    optcr_ |= kOptcrOptstrt;
    begin(duration);
  }

  // One 64-bit row of the option-byte storage: 16-bit value, its complement above.
  void store_row(std::uint32_t row, std::uint32_t value) {
    const std::uint32_t v = value & 0xFFFF;
    store_le(ctx_.option_bytes, 8 * row, v | ((~v & 0xFFFF) << 16), 4);
  }

  // The inverse of load_option_bytes(). OPTLOCK and OPTSTRT are register bits, not option
  // bytes, so the USER byte is stored with bits 1:0 clear as in the factory contents.
  void store_option_bytes() {
    const std::uint32_t nwrp = optcr_ >> kOptcrNwrpShift;
    store_row(0, (optcr_ & 0xFC) | (optcr_ & 0xFF00));
    if (params_.has_optcr1) {
      store_row(1, (nwrp & 0xFF) | (((optcr_ >> 30) & 3) << 14));
      store_row(2, optcr1_);
      store_row(3, optcr1_ >> 16);
    } else {
      store_row(1, nwrp & 0xFFF);
    }
  }

  unsigned psize() const { return (cr_ & kCrPsize) >> kCrPsizeShift; }

  void start_erase() {
    const bool ser = (cr_ & kCrSer) != 0;
    const bool mer = (cr_ & kCrMer) != 0;
    // RM0090 3.6.3 note: with both MER and SER set neither erase is performed.
    if (ser == mer) return;
    // RM0090 3.7.3 Table "Access versus read protection level": in debug mode at level 1
    // neither a sector nor a mass erase is allowed; only the RDP regression erases.
    if (debug_protected()) {
      flag_error(kSrWrperr);
      return;
    }
    const auto& sizes = ctx_.chip.sector_sizes;
    if (mer) {
      for (std::uint32_t s = 0; s < sizes.size(); ++s) {
        if (sector_protected(s)) {
          flag_error(kSrWrperr);
          return;
        }
      }
      flash_detail::erase_all(ctx_);
      begin(params_.mass_erase[psize()]);
      return;
    }
    const std::uint32_t snb = (cr_ & kCrSnb) >> kCrSnbShift;
    if (snb >= sizes.size()) return;  // no such sector on this part
    if (sector_protected(snb)) {
      flag_error(kSrWrperr);
      return;
    }
    std::fill_n(ctx_.flash.begin() + sector_start_[snb], sizes[snb], std::uint8_t{0xFF});
    ctx_.counters.sectors_erased += 1;
    changed(sector_start_[snb], sizes[snb]);
    begin(sector_erase_time(sizes[snb]));
  }

  Picoseconds sector_erase_time(std::uint32_t size) const {
    for (const auto& entry : params_.sector_erase) {
      if (entry.size == size) return entry.by_psize[psize()];
    }
    return params_.sector_erase.back().by_psize[psize()];
  }

  // RM0090 3.6.4 note / RM0385 3.3.7 note: programming can only clear bits; a 1 written
  // over a 0 stays 0 until the sector is erased. No error flag reports it.
  BusResponse program(std::uint32_t offset, std::uint64_t data, unsigned size) {
    if (debug_protected() || sector_protected(sector_of(offset))) return flag_error(kSrWrperr);
    for (unsigned i = 0; i < size; ++i) {
      ctx_.flash[offset + i] &= static_cast<std::uint8_t>(data >> (8 * i));
    }
    ctx_.counters.bytes_programmed += size;
    changed(offset, size);
    begin(params_.program[psize()]);
    return {};
  }

  std::uint32_t sector_of(std::uint32_t offset) const {
    const auto it = std::upper_bound(sector_start_.begin(), sector_start_.end(), offset);
    return static_cast<std::uint32_t>(it - sector_start_.begin()) - 1;
  }

  bool sector_protected(std::uint32_t sector) const {
    // nWRP: 0 means protected (RM0090 3.7.3 / RM0385 3.4.3).
    return ((active_nwrp_ >> sector) & 1) == 0;
  }

  // RM0090 3.9.4: OPERR accompanies any error flag when ERRIE is set.
  BusResponse flag_error(std::uint32_t flag) {
    sr_ |= flag;
    if (cr_ & kCrErrie) sr_ |= kSrOperr;
    return {};
  }

  void begin(Picoseconds duration) {
    op_active_ = true;
    busy_until_ = ctx_.clock.now() + duration;
  }

  // Completion is evaluated lazily whenever the controller is looked at.
  void settle() {
    while (op_active_ && ctx_.clock.now() >= busy_until_) {
      op_active_ = false;
      cr_ &= ~kCrStrt;
      optcr_ &= ~kOptcrOptstrt;
      // RM0090 3.9.4 / RM0385 3.7.4: EOP is set only when EOPIE is enabled.
      if (cr_ & kCrEopie) sr_ |= kSrEop;
      // Stalled register writes land now; one of them may start the next operation.
      while (!op_active_ && !pending_writes_.empty()) {
        const WordWrite w = pending_writes_.front();
        pending_writes_.erase(pending_writes_.begin());
        write_control(w);
      }
    }
  }

  void changed(std::uint32_t offset, std::uint32_t length) {
    flash_detail::notify_changed(ctx_, offset, length);
  }

  // Option-byte storage layout (chip.cpp): 64-bit rows whose low half holds the value and
  // high half its complement. F4 (RM0090 3.7.1 Table 16): row 0 = USER | RDP << 8, row 1 =
  // nWRP[11:0]. F7 (RM0385 3.4.1 Table 5): row 0 = USER | RDP << 8, row 1 = nWRP[7:0] |
  // IWDG_STDBY << 14 | IWDG_STOP << 15, row 2 = BOOT_ADD0, row 3 = BOOT_ADD1.
  void load_option_bytes() {
    const auto& ob = ctx_.option_bytes;
    const std::uint32_t user = ob[0];
    const std::uint32_t rdp = ob[1];
    rdp_level_ = rdp == kRdpLevel0   ? ReadProtection::level0
                 : rdp == kRdpLevel2 ? ReadProtection::level2
                                     : ReadProtection::level1;
    const std::uint32_t row1 = load_le(ob, 8, 2);
    std::uint32_t optcr = kOptcrOptlock | (user << 0) | (rdp << 8);
    if (params_.has_optcr1) {
      active_nwrp_ = row1 & 0xFF;
      optcr |= (active_nwrp_ << 16) | (((row1 >> 14) & 3) << 30);
      optcr1_ = load_le(ob, 16, 2) | (load_le(ob, 24, 2) << 16);
    } else {
      active_nwrp_ = row1 & 0xFFF;
      optcr |= active_nwrp_ << 16;
      optcr1_ = 0;
    }
    optcr_ = (optcr & (params_.optcr_writable | kOptcrOptlock));
  }

  FlashContext ctx_;
  F4Params params_;
  std::vector<std::uint32_t> sector_start_;
  flash_detail::KeySequence keys_{flash_detail::kKey1, flash_detail::kKey2,
                                  flash_detail::KeySequence::WhileUnlocked::lock_up};
  flash_detail::KeySequence option_keys_{kOptKey1, kOptKey2,
                                         flash_detail::KeySequence::WhileUnlocked::lock_up};
  std::uint32_t acr_ = 0;
  std::uint32_t sr_ = 0;
  std::uint32_t cr_ = kCrLock;
  std::uint32_t optcr_ = 0;
  std::uint32_t optcr1_ = 0;
  std::uint32_t active_nwrp_ = 0;  // loaded at reset; OPTCR edits do not take effect
  ReadProtection rdp_level_ = ReadProtection::level0;  // likewise
  std::vector<WordWrite> pending_writes_;              // FLASH_CR/OPTCR writes held by BSY
  std::optional<std::pair<std::uint32_t, std::uint32_t>> x64_low_;  // offset, value
  bool op_active_ = false;
  Picoseconds busy_until_ = 0;
};

}  // namespace

std::unique_ptr<FlashController> flash_detail::make_f4(const FlashContext& ctx) {
  return std::make_unique<FlashF4>(ctx);
}

}  // namespace probefarm::sim
