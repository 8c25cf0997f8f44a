// The ST-Link firmware's SWD engine: DP and AP register access, memory transfers through
// the MEM-AP (ADIv5.2 C2: CSW, TAR, DRW, posted reads), RW_MISC sequences, and how the
// target's WAIT and FAULT answers become the status codes a host reads.
#include <algorithm>

#include "mem_ap.hpp"
#include "stlink_engine.hpp"

namespace probefarm::sim::stlink {
namespace {

// DP register addresses, ADIv5.2 B2.2.
constexpr unsigned kDpAbort = 0x0;
constexpr unsigned kDpCtrlStat = 0x4;
constexpr unsigned kDpSelect = 0x8;
constexpr unsigned kDpRdbuff = 0xC;
// CTRL/STAT sticky flags and the ABORT bits that clear them (B2.2 "CTRL/STAT", "ABORT").
constexpr std::uint32_t kStickyOrun = 1u << 1;
constexpr std::uint32_t kWDataErr = 1u << 7;
constexpr std::uint32_t kAbortClearAll = 0x1E;  // STKCMPCLR | STKERRCLR | WDERRCLR | ORUNERRCLR

// CSW (ADIv5.2 C2.6): AddrInc = single, Size = byte/halfword/word. Bits 31:8 come from the
// command; a command that leaves them 0 gets the AHB-AP's reset value (privileged data
// access, Cortex-M3/M4 TRM "AHB-AP").
constexpr std::uint32_t kCswAddrIncSingle = 0x10;
constexpr std::uint32_t kCswDefaultHigh = MemAp::kCswReset & 0xFFFFFF00;
// TAR auto-increment is only guaranteed within 1 KiB (ADIv5.2 C2.2.2): the firmware
// writes TAR again at every 1 KiB boundary of a transfer.
constexpr std::uint32_t kTarBlock = 1024;

std::uint32_t get32(std::span<const std::uint8_t> b, std::size_t at) {
  return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
}

unsigned item_size(std::uint8_t command) {
  switch (command) {
    case kReadMem8:
    case kWriteMem8:
      return 1;
    case kReadMem16:
    case kWriteMem16:
      return 2;
    default:
      return 4;
  }
}

}  // namespace

void Engine::begin(bool recover) {
  st_ = kOk;
  recover_ = recover;
}

bool Engine::xfer(bool ap, bool read, unsigned addr, std::uint32_t wdata, std::uint32_t* rdata) {
  if (st_ != kOk) return false;
  // WAIT has been retried by the time the answer comes back (SwdHost); the status names
  // the port of the packet that got the answer.
  const SwdResult r = swd_.packet(ap, read, addr, wdata);
  switch (r.ack) {
    case SwdAck::ok:
      if (read && !r.parity_ok) {
        st_ = ap ? kApParityError : kDpParityError;
        return false;
      }
      if (rdata) *rdata = r.data;
      return true;
    case SwdAck::wait:
      st_ = ap ? kApWait : kDpWait;
      return false;
    case SwdAck::fault:
      fault(ap);
      return false;
    default:
      st_ = ap ? kApError : kDpError;  // nobody answered, or an invalid ACK
      return false;
  }
}

void Engine::fault(bool ap) {
  st_ = ap ? kApFault : kDpFault;
  if (!recover_) return;
  // A FAULT means a sticky flag is set (ADIv5.2 B4, WAIT and FAULT responses). The firmware reads
  // CTRL/STAT to tell a write-data parity error or an overrun from a bus error, then clears the
  // flags through ABORT so that the next command starts clean. CTRL/STAT and ABORT never answer
  // WAIT or FAULT themselves; CTRL/STAT needs DP bank 0.
  if (!select_valid_ || (select_ & 0xF) != 0) {
    const std::uint32_t bank0 = select_valid_ ? (select_ & ~0xFu) : 0;
    select_valid_ = swd_.packet(false, false, kDpSelect, bank0).ack == SwdAck::ok;
    select_ = bank0;
  }
  const SwdResult cs = swd_.packet(false, true, kDpCtrlStat);
  if (cs.ack == SwdAck::ok) {
    if (cs.data & kWDataErr)
      st_ = kApWdataError;
    else if (cs.data & kStickyOrun)
      st_ = kApStickyOrunError;
  }
  swd_.packet(false, false, kDpAbort, kAbortClearAll);
}

bool Engine::select(unsigned apsel, unsigned apbank, unsigned dpbank) {
  const std::uint32_t want = (apsel & 0xFFu) << 24 | (apbank & 0xF0u) | (dpbank & 0xFu);
  if (select_valid_ && select_ == want) return st_ == kOk;
  if (!xfer(false, false, kDpSelect, want, nullptr)) {
    select_valid_ = false;
    return false;
  }
  select_ = want;
  select_valid_ = true;
  return true;
}

bool Engine::dp_read(unsigned reg, std::uint32_t& value) {
  const unsigned addr = reg & 0xC;
  // Only address 0x4 is banked (ADIv5.2 B2.2: CTRL/STAT, DLCR, TARGETID, DLPIDR, EVENTSTAT).
  if (addr == kDpCtrlStat &&
      !select(select_valid_ ? select_ >> 24 : 0, select_valid_ ? select_ & 0xF0 : 0, reg >> 4)) {
    return false;
  }
  return xfer(false, true, addr, 0, &value);
}

bool Engine::dp_write(unsigned reg, std::uint32_t value) {
  const unsigned addr = reg & 0xC;
  if (addr == kDpSelect) {
    // The host selects for itself; the firmware keeps track for its own accesses.
    if (!xfer(false, false, kDpSelect, value, nullptr)) {
      select_valid_ = false;
      return false;
    }
    select_ = value;
    select_valid_ = true;
    return true;
  }
  if (addr == kDpCtrlStat &&
      !select(select_valid_ ? select_ >> 24 : 0, select_valid_ ? select_ & 0xF0 : 0, reg >> 4)) {
    return false;
  }
  return xfer(false, false, addr, value, nullptr);
}

bool Engine::ap_read(unsigned apsel, unsigned reg, std::uint32_t& value) {
  // An AP read is posted (ADIv5.2 B4, SW-DP posted AP reads): its data comes with the next AP read
  // or from RDBUFF.
  return select(apsel, reg & 0xF0, 0) && xfer(true, true, reg & 0xC, 0, nullptr) &&
         xfer(false, true, kDpRdbuff, 0, &value);
}

bool Engine::ap_write(unsigned apsel, unsigned reg, std::uint32_t value) {
  return select(apsel, reg & 0xF0, 0) && xfer(true, false, reg & 0xC, value, nullptr);
}

std::uint32_t Engine::csw_for(const MemOp& op) const {
  const std::uint32_t high = (op.csw & 0xFFFFFF00) != 0 ? op.csw & 0xFFFFFF00 : kCswDefaultHigh;
  const std::uint32_t size = op.size == 1 ? 0 : op.size == 2 ? 1 : 2;
  return high | (op.increment ? kCswAddrIncSingle : 0) | size;
}

void Engine::mem_read(const MemOp& op, std::size_t len, Bytes& out) {
  const std::size_t n = len / op.size;
  if (n == 0) return;
  if (!ap_write(op.ap, MemAp::kCsw, csw_for(op))) {
    failed_addr_ = op.addr;
    return;
  }
  for (std::size_t i = 0; i < n;) {
    const std::uint32_t start =
        op.addr + static_cast<std::uint32_t>(op.increment ? i * op.size : 0);
    std::size_t chunk = n - i;
    if (op.increment)
      chunk = std::min<std::size_t>(chunk, (kTarBlock - start % kTarBlock) / op.size);
    if (!ap_write(op.ap, MemAp::kTar, start) || !xfer(true, true, MemAp::kDrw, 0, nullptr)) {
      failed_addr_ = start;
      return;
    }
    // Each further DRW read returns the item before it, RDBUFF the last one. A failure
    // shows on the packet after the access that failed.
    for (std::size_t k = 1; k <= chunk; ++k) {
      const bool last = k == chunk;
      const std::uint32_t item =
          start + static_cast<std::uint32_t>(op.increment ? (k - 1) * op.size : 0);
      std::uint32_t v = 0;
      if (!xfer(!last, true, last ? kDpRdbuff : MemAp::kDrw, 0, &v)) {
        failed_addr_ = item;
        return;
      }
      // Byte lanes follow the address (ADIv5.2 C2.2 byte lanes).
      const unsigned lane = (item & 3) * 8;
      for (unsigned b = 0; b < op.size; ++b)
        out[(i + k - 1) * op.size + b] = static_cast<std::uint8_t>(v >> (lane + 8 * b));
    }
    i += chunk;
  }
}

void Engine::mem_write(const MemOp& op, std::span<const std::uint8_t> data) {
  const std::size_t n = data.size() / op.size;
  if (n == 0) return;
  // Writes are posted too: a failure shows on the packet after the write that failed.
  bool in_flight = false;
  std::uint32_t in_flight_addr = 0;
  auto failed_at = [&](std::uint32_t here) { failed_addr_ = in_flight ? in_flight_addr : here; };
  if (!ap_write(op.ap, MemAp::kCsw, csw_for(op))) {
    failed_at(op.addr);
    return;
  }
  for (std::size_t i = 0; i < n;) {
    const std::uint32_t start =
        op.addr + static_cast<std::uint32_t>(op.increment ? i * op.size : 0);
    std::size_t chunk = n - i;
    if (op.increment)
      chunk = std::min<std::size_t>(chunk, (kTarBlock - start % kTarBlock) / op.size);
    if (!ap_write(op.ap, MemAp::kTar, start)) {
      failed_at(start);
      return;
    }
    for (std::size_t k = 0; k < chunk; ++k) {
      const std::uint32_t item = start + static_cast<std::uint32_t>(op.increment ? k * op.size : 0);
      std::uint32_t v = 0;
      for (unsigned b = 0; b < op.size; ++b)
        v |= std::uint32_t{data[(i + k) * op.size + b]} << (8 * b);
      if (!xfer(true, false, MemAp::kDrw, v << ((item & 3) * 8), nullptr)) {
        failed_at(item);
        return;
      }
      in_flight = true;
      in_flight_addr = item;
    }
    i += chunk;
  }
  // RDBUFF answers WAIT until the last write has completed and FAULT if it failed.
  std::uint32_t ignored = 0;
  if (!xfer(false, true, kDpRdbuff, 0, &ignored)) failed_at(in_flight_addr);
}

bool Engine::mem_word_read(std::uint32_t addr, std::uint32_t& value) {
  Bytes b(4, 0);
  mem_read(MemOp{.ap = 0, .csw = 0, .addr = addr, .size = 4, .increment = true}, 4, b);
  value = get32(b, 0);
  return st_ == kOk;
}

bool Engine::mem_word_write(std::uint32_t addr, std::uint32_t value) {
  Bytes b(4, 0);
  put32(b, 0, value);
  mem_write(MemOp{.ap = 0, .csw = 0, .addr = addr, .size = 4, .increment = true}, b);
  return st_ == kOk;
}

std::uint8_t Engine::check_memory_command(const Command& c, std::size_t max_len) {
  const unsigned size = item_size(c.u8(1));
  const std::size_t len = c.u16(6);
  if (len > max_len) return kCmdError;
  if (c.u32(2) % size != 0 || len % size != 0) return kAlignmentError;
  if (!open_aps_[c.u8(8)]) return kBadAp;
  return kOk;
}

std::optional<Bytes> Engine::memory_read_command(const Command& c) {
  // Address (4), length in bytes (2), AP number (1), CSW bits 31:8 (3). The reply is the
  // data alone; its status is fetched with GETLASTRWSTATUS(2).
  const unsigned size = item_size(c.u8(1));
  const std::size_t len = c.u16(6);
  const MemOp op{.ap = c.u8(8),
                 .csw = c.u32(8) & 0xFFFFFF00,
                 .addr = c.u32(2),
                 .size = size,
                 .increment = c.u8(1) != kReadMem32NoInc};
  Bytes out(len, 0);
  fault_addr_ = 0;
  last_rw_ = check_memory_command(c, size == 1 ? max_rw8() : kMaxRw16_32);
  if (last_rw_ == kOk) {
    begin(true);
    mem_read(op, len, out);
    last_rw_ = st_;
    if (st_ != kOk) fault_addr_ = failed_addr_;
  }
  // A single byte goes out as two: the firmware never sends a one-byte packet.
  if (size == 1 && len == 1) out.resize(2, 0);
  return out;
}

void Engine::memory_write_command(const Command& c, std::span<const std::uint8_t> data) {
  const unsigned size = item_size(c.u8(1));
  const MemOp op{.ap = c.u8(8),
                 .csw = c.u32(8) & 0xFFFFFF00,
                 .addr = c.u32(2),
                 .size = size,
                 .increment = c.u8(1) != kWriteMem32NoInc};
  fault_addr_ = 0;
  // Over-long data phases are taken in full (the host sends them anyway) and dropped.
  last_rw_ = check_memory_command(c, size == 1 ? max_rw8() : kMaxRw16_32);
  if (last_rw_ != kOk) return;
  begin(true);
  mem_write(op, data);
  last_rw_ = st_;
  if (st_ != kOk) fault_addr_ = failed_addr_;
}

Bytes Engine::read_dap_reg(unsigned port, unsigned addr) {
  // Raw register access for a host that runs the DAP itself: WAIT and FAULT are
  // reported, sticky flags are the host's to clear.
  begin(false);
  std::uint32_t v = 0;
  if (port == kDpPort)
    dp_read(addr & 0xFF, v);
  else if (port > 0xFF || (!open_aps_[port] && (addr & 0xFF) != MemAp::kIdr))
    st_ = kBadAp;  // the IDR may be read before INIT_AP, to find out what the AP is
  else
    ap_read(port, addr & 0xFC, v);
  Bytes r(8, 0);
  r[0] = st_;
  put32(r, 4, v);
  return r;
}

Bytes Engine::write_dap_reg(unsigned port, unsigned addr, std::uint32_t value) {
  begin(false);
  if (port == kDpPort)
    dp_write(addr & 0xFF, value);
  else if (port > 0xFF || !open_aps_[port])
    st_ = kBadAp;
  else
    ap_write(port, addr & 0xFC, value);
  return {st_, 0};
}

Bytes Engine::init_ap(unsigned apsel) {
  open_aps_.set(apsel);
  return {kOk, 0};
}

Bytes Engine::close_ap(unsigned apsel) {
  if (!open_aps_[apsel]) return {kBadAp, 0};
  open_aps_.reset(apsel);
  return {kOk, 0};
}

void Engine::rw_misc(std::uint32_t items, std::span<const std::uint8_t> data) {
  // A list of 32-bit accesses run in one go. Each item answers a value and a status;
  // items run independently (a failed one does not stop the rest).
  const std::size_t values_at = (items + 3) / 4 * 4;
  misc_results_.assign(8 * std::size_t{items}, 0);
  unsigned ap = 0;
  std::uint32_t address = 0;
  for (std::uint32_t i = 0; i < items; ++i) {
    const std::uint32_t value = get32(data, values_at + 4 * i);
    std::uint32_t result = 0;
    std::uint8_t status = kOk;
    switch (data[i]) {
      case kMiscApNum:
        if (value > 0xFF)
          status = kBadAp;
        else
          ap = value;
        break;
      case kMiscAddress:
        address = value;
        break;
      case kMiscRead:
      case kMiscWrite: {
        if (!open_aps_[ap]) {
          status = kBadAp;
          break;
        }
        const bool read = data[i] == kMiscRead;
        const MemOp op{
            .ap = ap, .csw = 0, .addr = read ? value : address, .size = 4, .increment = true};
        Bytes b(4, 0);
        begin(true);
        if (read) {
          mem_read(op, 4, b);
          result = get32(b, 0);
        } else {
          put32(b, 0, value);
          mem_write(op, b);
        }
        status = st_;
        break;
      }
      default:
        status = kUnknownCommand;
        break;
    }
    put32(misc_results_, 4 * i, result);
    put32(misc_results_, 4 * (std::size_t{items} + i), status);
  }
}

Bytes Engine::rw_misc_results() {
  Bytes r = std::move(misc_results_);
  misc_results_.clear();
  return r;
}

}  // namespace probefarm::sim::stlink
