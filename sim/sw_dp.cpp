#include "sw_dp.hpp"

#include <array>

#include "mem_ap.hpp"

namespace probefarm::sim {
namespace {

// The AHB-AP of the Cortex-M3 and Cortex-M4 increments TAR across a 4 KiB block (Cortex-M3
// TRM DDI 0337 and Cortex-M4 TRM DDI 0439, "AHB-AP"; ADIv5.2 C2.2.2 only guarantees 1 KiB,
// which is what the Cortex-M7's AHB-AP provides).
std::uint32_t ahb_ap_increment_block(const ChipInfo& chip) {
  return chip.core == CoreKind::cortex_m7 ? 1024 : 4096;
}

// CTRL/STAT bits, ADIv5.2 B2.2 "CTRL/STAT".
constexpr std::uint32_t kOrunDetect = 1u << 0;
constexpr std::uint32_t kStickyOrun = 1u << 1;
constexpr std::uint32_t kTrnModeMask = 3u << 2;
constexpr std::uint32_t kStickyCmp = 1u << 4;
constexpr std::uint32_t kStickyErr = 1u << 5;
constexpr std::uint32_t kReadOk = 1u << 6;
constexpr std::uint32_t kWDataErr = 1u << 7;
constexpr std::uint32_t kMaskLaneMask = 0xFu << 8;
constexpr std::uint32_t kTrnCntMask = 0xFFFu << 12;
constexpr std::uint32_t kCdbgRstReq = 1u << 26;
constexpr std::uint32_t kCdbgRstAck = 1u << 27;
constexpr std::uint32_t kCdbgPwrUpReq = 1u << 28;
constexpr std::uint32_t kCdbgPwrUpAck = 1u << 29;
constexpr std::uint32_t kCsysPwrUpReq = 1u << 30;
constexpr std::uint32_t kCsysPwrUpAck = 1u << 31;
constexpr std::uint32_t kStickyFlags = kStickyOrun | kStickyCmp | kStickyErr | kWDataErr;
// Bits a CTRL/STAT write sets. On a SW-DP the sticky flags are read-only and are cleared
// through ABORT (B2.2 "CTRL/STAT", "ABORT").
constexpr std::uint32_t kCtrlWritable = kOrunDetect | kTrnModeMask | kMaskLaneMask | kTrnCntMask |
                                        kCdbgRstReq | kCdbgPwrUpReq | kCsysPwrUpReq;

// ABORT bits, ADIv5.2 B2.2 "ABORT".
constexpr std::uint32_t kDapAbort = 1u << 0;
constexpr std::uint32_t kStkCmpClr = 1u << 1;
constexpr std::uint32_t kStkErrClr = 1u << 2;
constexpr std::uint32_t kWdErrClr = 1u << 3;
constexpr std::uint32_t kOrunErrClr = 1u << 4;

// DPv2 registers behind DPBANKSEL at address 0x4 (B2.2): DLCR reads with bit 6 RES1 and
// TURNROUND = 0 (one cycle); DLPIDR PROTVSN = 1 (SWD protocol version 2), TINSTANCE = 0;
// EVENTSTAT.EA = 1: no event requires attention.
constexpr std::uint32_t kDlcrReset = 0x00000040;
constexpr std::uint32_t kDlcrWritable = 0x00000300;
constexpr std::uint32_t kDlpidr = 0x00000001;
constexpr std::uint32_t kEventStat = 0x00000001;

// SWJ-DP sequences, ADIv5.2 B5.2 (JTAG-to-SWD / SWD-to-JTAG switching) and B5.3
// (dormant state, selection alert, activation codes).
// All are sent LSB first.
constexpr unsigned kLineResetOnes = 50;
constexpr std::uint16_t kJtagToSwd = 0xE79E;
constexpr std::uint16_t kSwdToJtag = 0xE73C;
constexpr std::uint16_t kSwdToDormant = 0xE3BC;
constexpr std::uint32_t kJtagToDormant = 0x33BBBBBA;  // 31 bits
constexpr unsigned kJtagToDormantBits = 31;
// Selection alert 0x19BC0EA2_E3DDAFE9_86852D95_6209F392, 128 bits.
constexpr std::array<std::uint64_t, 2> kSelectionAlert = {0x86852D956209F392ull,
                                                          0x19BC0EA2E3DDAFE9ull};
constexpr std::uint8_t kSwdActivation = 0x1A;   // 8 bits, after 4 low cycles
constexpr std::uint8_t kJtagActivation = 0x0A;  // 12 bits (0x00A), after 4 low cycles

class SwDpImpl final : public SwDp {
 public:
  SwDpImpl(const ChipInfo& chip, DebugBus& bus, const VirtualClock& clock)
      : chip_(chip), clock_(clock), ap_(chip.ap_idr, bus, ahb_ap_increment_block(chip)) {}

  void sequence(const std::uint8_t* bits, unsigned count) override {
    if (!pins_connected_) return;
    for (unsigned i = 0; i < count; ++i)
      push_bit((bits[i / 8] >> (i % 8)) & 1);
  }

  SwdResult transfer(bool ap, bool read, unsigned addr, std::uint32_t wdata,
                     bool wdata_parity_ok) override;

  void power_on_reset() override {
    mode_ = Mode::jtag;
    link_ = Link::needs_line_reset;
    history_len_ = 0;
    ones_ = 0;
    ctrl_stat_ = 0;
    select_ = 0;
    dlcr_ = kDlcrReset;
    rdbuff_ = 0;
    resend_ = 0;
    busy_until_ = 0;
    pending_is_read_ = false;
    ap_.reset();
  }

  void set_pins_connected(bool connected) override { pins_connected_ = connected; }
  void inject_wait(unsigned packets) override { injected_waits_ = packets; }

  bool debug_powered() const override { return (ctrl_stat_ & kCdbgPwrUpAck) != 0; }

 private:
  enum class Mode { jtag, swd, dormant };
  // ADIv5.2 B4.3.3 "Connection and line reset sequence": after the switch to SWD a line reset is
  // needed; after a line reset the first packet must be a DPIDR read, anything else is a protocol
  // error that locks the DP out (no response) until the next line reset.
  enum class Link { needs_line_reset, reset, locked_out, active };

  void push_bit(bool bit);
  bool bit_ago(unsigned ago) const {
    return history_[(history_pos_ + kHistory - 1 - ago) % kHistory] != 0;
  }
  // True if the last `n` bits (+ `skip` more recent ones) are `pattern`, sent LSB first.
  bool ends_with(std::uint64_t pattern, unsigned n, unsigned skip = 0) const {
    if (history_len_ < n + skip) return false;
    for (unsigned i = 0; i < n; ++i) {
      if (bit_ago(skip + n - 1 - i) != (((pattern >> i) & 1) != 0)) return false;
    }
    return true;
  }
  bool ones_before(unsigned n_ones, unsigned skip) const {
    if (history_len_ < n_ones + skip) return false;
    for (unsigned i = 0; i < n_ones; ++i) {
      if (!bit_ago(skip + i)) return false;
    }
    return true;
  }
  bool dormant_wakeup(std::uint64_t code, unsigned code_bits) const {
    unsigned skip = code_bits;
    if (!ends_with(code, code_bits)) return false;
    if (!ends_with(0, 4, skip)) return false;
    skip += 4;
    if (!ends_with(kSelectionAlert[1], 64, skip)) return false;
    skip += 64;
    if (!ends_with(kSelectionAlert[0], 64, skip)) return false;
    skip += 64;
    return ones_before(8, skip);
  }

  void line_reset() {
    link_ = Link::reset;
    select_ &= ~0xFu;  // B4.3.3: a line reset selects DP bank 0
  }

  SwdResult dp_read(unsigned addr);
  SwdResult dp_write(unsigned addr, std::uint32_t value);
  SwdResult ap_access(bool read, unsigned addr, std::uint32_t wdata);
  // Finishes the AP access that was stalled on the bus; false while it is still stalled.
  bool complete_pending();
  void finish_ap(bool read, const ApResponse& r);
  bool dpv2() const { return chip_.targetid != 0; }
  unsigned dpbanksel() const { return dpv2() ? (select_ & 0xF) : 0; }

  SwdResult ack(SwdAck a) {
    // ADIv5.2 B4 "Overrun detection": with ORUNDETECT, any WAIT or FAULT sets STICKYORUN.
    if ((a == SwdAck::wait || a == SwdAck::fault) && (ctrl_stat_ & kOrunDetect)) {
      ctrl_stat_ |= kStickyOrun;
    }
    SwdResult r;
    r.ack = a;
    return r;
  }

  static constexpr unsigned kHistory = 160;  // covers the 148-bit dormant wake-up

  const ChipInfo& chip_;
  const VirtualClock& clock_;
  MemAp ap_;

  Mode mode_ = Mode::jtag;
  Link link_ = Link::needs_line_reset;
  std::array<std::uint8_t, kHistory> history_{};
  unsigned history_pos_ = 0;
  unsigned history_len_ = 0;
  unsigned ones_ = 0;

  std::uint32_t ctrl_stat_ = 0;
  std::uint32_t select_ = 0;
  std::uint32_t dlcr_ = kDlcrReset;
  std::uint32_t rdbuff_ = 0;  // result of the last AP read (posted)
  std::uint32_t resend_ = 0;  // data returned by the last AP or RDBUFF read
  Picoseconds busy_until_ = 0;
  bool pending_is_read_ = false;
  bool pins_connected_ = true;
  unsigned injected_waits_ = 0;
};

void SwDpImpl::push_bit(bool bit) {
  history_[history_pos_] = bit ? 1 : 0;
  history_pos_ = (history_pos_ + 1) % kHistory;
  if (history_len_ < kHistory) ++history_len_;
  ones_ = bit ? ones_ + 1 : 0;

  switch (mode_) {
    case Mode::jtag:
      // B5.2: >= 50 TMS-high cycles put the TAP in Test-Logic-Reset, then 0xE79E.
      if (ends_with(kJtagToSwd, 16) && ones_before(kLineResetOnes, 16)) {
        mode_ = Mode::swd;
        link_ = Link::needs_line_reset;
        ones_ = 0;  // the line reset that must follow counts from here
      } else if (ends_with(kJtagToDormant, kJtagToDormantBits) &&
                 ones_before(5, kJtagToDormantBits)) {
        mode_ = Mode::dormant;
      }
      break;
    case Mode::swd:
      if (ones_ == kLineResetOnes) {
        line_reset();  // B4.3.3: 50 or more SWDIO-high cycles
      } else if (ends_with(kSwdToJtag, 16) && ones_before(kLineResetOnes, 16)) {
        mode_ = Mode::jtag;
      } else if (ends_with(kSwdToDormant, 16) && ones_before(kLineResetOnes, 16)) {
        mode_ = Mode::dormant;
      }
      break;
    case Mode::dormant:
      if (dormant_wakeup(kSwdActivation, 8)) {
        mode_ = Mode::swd;
        link_ = Link::needs_line_reset;
        ones_ = 0;
      } else if (dormant_wakeup(kJtagActivation, 12)) {
        mode_ = Mode::jtag;
      }
      break;
  }
}

SwdResult SwDpImpl::transfer(bool ap, bool read, unsigned addr, std::uint32_t wdata,
                             bool wdata_parity_ok) {
  // A packet contains low bits (start/stop): it ends any run of ones on the line.
  history_len_ = 0;
  ones_ = 0;
  addr &= 0xC;
  if (!pins_connected_ || mode_ != Mode::swd) return {};  // nobody drives SWDIO
  switch (link_) {
    case Link::needs_line_reset:
    case Link::locked_out:
      return {};
    case Link::reset:
      // A TARGETSEL write (DPv2) leaves the DP in the reset state, unanswered.
      if (dpv2() && !ap && !read && addr == 0xC) return {};
      if (ap || !read || addr != 0) {
        link_ = Link::locked_out;  // protocol error: no response (B4.3.3)
        return {};
      }
      link_ = Link::active;
      break;
    case Link::active:
      break;
  }
  // TARGETSEL (DPv2 write to 0xC) is never acknowledged by the target (B4.3, multi-drop); a
  // single-drop DP has nothing to select.
  if (dpv2() && !ap && !read && addr == 0xC) return {};

  // ADIv5.2 B4 (WAIT and FAULT responses): DPIDR read, CTRL/STAT read and ABORT write
  // always complete at once, even
  // while an AP access is stalled or a sticky flag is set. The model extends this to
  // every DP read at 0x4 (the DPv2 identification/status banks).
  bool exempt = !ap && ((read && (addr == 0x0 || addr == 0x4)) || (!read && addr == 0x0));
  if (!exempt) {
    if (injected_waits_ > 0) {
      --injected_waits_;
      return ack(SwdAck::wait);
    }
    // CTRL/STAT.READOK reflects whether the last AP or RDBUFF read was answered OK.
    bool posted_read = read && (ap || addr == 0xC);
    if (ap_.in_progress() && !complete_pending()) {
      if (posted_read) ctrl_stat_ &= ~kReadOk;
      return ack(SwdAck::wait);
    }
    if (ctrl_stat_ & kStickyFlags) {
      if (posted_read) ctrl_stat_ &= ~kReadOk;
      return ack(SwdAck::fault);
    }
  }
  if (!read && !wdata_parity_ok) {
    // ADIv5.2 B4 "write data parity": the ACK (OK) went out before the data; the bad
    // data is discarded and WDATAERR set.
    ctrl_stat_ |= kWDataErr;
    SwdResult r;
    r.ack = SwdAck::ok;
    return r;
  }
  if (ap) return ap_access(read, addr, wdata);
  return read ? dp_read(addr) : dp_write(addr, wdata);
}

bool SwDpImpl::complete_pending() {
  if (clock_.now() < busy_until_) return false;
  ApResponse r = ap_.resume();
  if (r.status == BusStatus::busy) {
    busy_until_ = r.busy_until;
    return false;
  }
  finish_ap(pending_is_read_, r);
  return true;
}

void SwDpImpl::finish_ap(bool read, const ApResponse& r) {
  if (r.status == BusStatus::error) {
    ctrl_stat_ |= kStickyErr;
    if (read) rdbuff_ = 0;
    return;
  }
  if (read) rdbuff_ = r.data;
}

SwdResult SwDpImpl::ap_access(bool read, unsigned addr, std::uint32_t wdata) {
  unsigned apsel = select_ >> 24;
  unsigned reg = (select_ & 0xF0) | addr;
  SwdResult res;
  res.ack = SwdAck::ok;
  if (read) {
    // ADIv5.2 B4 (SW-DP posted AP reads): the ACK phase returns the result of the previous AP read,
    // and this read's result is collected from RDBUFF or by the next AP read.
    res.data = rdbuff_;
    resend_ = res.data;
    ctrl_stat_ |= kReadOk;
  }
  if (apsel != 0) {
    // No AP at this APSEL: reads return 0 (IDR = 0 tells the debugger so), writes ignored.
    if (read) rdbuff_ = 0;
    return res;
  }
  ApResponse r = read ? ap_.read(reg) : ap_.write(reg, wdata);
  if (r.status == BusStatus::busy) {
    busy_until_ = r.busy_until;
    pending_is_read_ = read;
  } else {
    finish_ap(read, r);
  }
  return res;
}

SwdResult SwDpImpl::dp_read(unsigned addr) {
  SwdResult res;
  res.ack = SwdAck::ok;
  switch (addr) {
    case 0x0:
      res.data = chip_.dpidr;
      break;
    case 0x4:
      switch (dpbanksel()) {
        case 0:
          res.data = ctrl_stat_;
          break;
        case 1:
          res.data = dlcr_;
          break;
        case 2:
          res.data = chip_.targetid;
          break;
        case 3:
          res.data = kDlpidr;
          break;
        case 4:
          res.data = kEventStat;
          break;
        default:
          res.data = 0;
          break;
      }
      break;
    case 0x8:
      res.data = resend_;  // B2.2 RESEND: repeat the last AP/RDBUFF read data
      break;
    case 0xC:
      // B2.2 RDBUFF: the posted result of the last AP read, without a new AP access.
      res.data = rdbuff_;
      resend_ = res.data;
      ctrl_stat_ |= kReadOk;
      break;
  }
  return res;
}

SwdResult SwDpImpl::dp_write(unsigned addr, std::uint32_t value) {
  SwdResult res;
  res.ack = SwdAck::ok;
  switch (addr) {
    case 0x0:
      if (value & kDapAbort) ap_.abort();
      if (value & kStkCmpClr) ctrl_stat_ &= ~kStickyCmp;
      if (value & kStkErrClr) ctrl_stat_ &= ~kStickyErr;
      if (value & kWdErrClr) ctrl_stat_ &= ~kWDataErr;
      if (value & kOrunErrClr) ctrl_stat_ &= ~kStickyOrun;
      break;
    case 0x4:
      if (dpbanksel() == 0) {
        ctrl_stat_ = (ctrl_stat_ & ~kCtrlWritable) | (value & kCtrlWritable);
        // The power and reset controllers of these chips acknowledge at once.
        ctrl_stat_ &= ~(kCdbgPwrUpAck | kCsysPwrUpAck | kCdbgRstAck);
        if (ctrl_stat_ & kCdbgPwrUpReq) ctrl_stat_ |= kCdbgPwrUpAck;
        if (ctrl_stat_ & kCsysPwrUpReq) ctrl_stat_ |= kCsysPwrUpAck;
        if (ctrl_stat_ & kCdbgRstReq) ctrl_stat_ |= kCdbgRstAck;
      } else if (dpbanksel() == 1) {
        dlcr_ = kDlcrReset | (value & kDlcrWritable);
      }
      break;
    case 0x8:
      select_ = value;
      break;
    case 0xC:
      break;  // DPv1: RDBUFF is read-only, writes are ignored
  }
  return res;
}

}  // namespace

std::unique_ptr<SwDp> make_sw_dp(const ChipInfo& chip, DebugBus& bus, const VirtualClock& clock) {
  return std::make_unique<SwDpImpl>(chip, bus, clock);
}

}  // namespace probefarm::sim
