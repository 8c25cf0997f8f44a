#include "mem_ap.hpp"

namespace probefarm::sim {
namespace {

// CSW fields, ADIv5.2 C2.6 "CSW".
constexpr std::uint32_t kCswSizeMask = 0x7;
constexpr std::uint32_t kCswAddrIncMask = 0x30;
constexpr std::uint32_t kCswAddrIncSingle = 0x10;
constexpr std::uint32_t kCswDeviceEn = 1u << 6;
constexpr std::uint32_t kCswTrInProg = 1u << 7;
// DbgSwEnable (31) and Prot (30:24) are stored as written; Mode (11:8) stays 0 because
// only basic mode is implemented (barrier support is optional, C2.6 "CSW").
constexpr std::uint32_t kCswStoredMask = 0xFF000000;

unsigned size_bytes(std::uint32_t csw) {
  return 1u << (csw & kCswSizeMask);
}

}  // namespace

MemAp::MemAp(std::uint32_t idr, DebugBus& bus, std::uint32_t increment_block)
    : idr_(idr), bus_(bus), increment_block_(increment_block) {}

void MemAp::reset() {
  csw_ = kCswReset;
  tar_ = 0;
  pending_ = {};
}

std::uint32_t MemAp::csw_value() const {
  return csw_ | kCswDeviceEn | (pending_.active ? kCswTrInProg : 0);
}

ApResponse MemAp::read(unsigned reg) {
  switch (reg) {
    case kCsw:
      return {BusStatus::ok, csw_value(), 0};
    case kTar:
      return {BusStatus::ok, tar_, 0};
    case kDrw:
      return data_access(reg, true, 0);
    case kCfg:
      return {BusStatus::ok, 0, 0};  // C2.6 "CFG": little-endian, no large address/data
    case kBase:
      return {BusStatus::ok, kBaseValue, 0};
    case kIdr:
      return {BusStatus::ok, idr_, 0};
    default:
      if (reg >= kBd0 && reg <= kBd3) return data_access(reg, true, 0);
      return {BusStatus::ok, 0, 0};  // reserved registers read as zero
  }
}

ApResponse MemAp::write(unsigned reg, std::uint32_t value) {
  switch (reg) {
    case kCsw: {
      std::uint32_t next = (csw_ & ~kCswStoredMask) | (value & kCswStoredMask);
      // C2.6 "CSW": Size values other than byte/halfword/word are reserved and packed
      // transfers (AddrInc = 0b10) are optional. This AP supports neither, so such a
      // write keeps the previous size and turns AddrInc off. Debuggers detect packed
      // support by reading AddrInc back.
      if ((value & kCswSizeMask) <= 2) {
        next = (next & ~kCswSizeMask) | (value & kCswSizeMask);
      }
      std::uint32_t inc = value & kCswAddrIncMask;
      next = (next & ~kCswAddrIncMask) | (inc == kCswAddrIncSingle ? inc : 0);
      csw_ = next;
      return {};
    }
    case kTar:
      tar_ = value;
      return {};
    case kDrw:
      return data_access(reg, false, value);
    default:
      if (reg >= kBd0 && reg <= kBd3) return data_access(reg, false, value);
      return {};  // read-only and reserved registers ignore writes
  }
}

ApResponse MemAp::data_access(unsigned reg, bool read, std::uint32_t value) {
  unsigned size = size_bytes(csw_);
  std::uint32_t addr = tar_;
  bool drw = reg == kDrw;
  if (!drw) {
    // C2.6 "BDn": accesses address TAR[31:4] with bits [3:2] = n and never increment TAR.
    addr = (tar_ & ~0xFu) | (reg - kBd0);
  }
  // Unaligned halfword/word addresses are aligned down: the AHB-AP of these cores only
  // issues aligned transfers. Byte lanes follow the address (C2.2 byte lanes).
  addr &= ~(size - 1);
  Pending p;
  p.active = true;
  p.read = read;
  p.addr = addr;
  p.size = size;
  p.lane_shift = (addr & 3) * 8;
  std::uint32_t mask = size == 4 ? 0xFFFFFFFFu : ((1u << (8 * size)) - 1);
  p.value = (value >> p.lane_shift) & mask;
  p.increment = drw && (csw_ & kCswAddrIncMask) == kCswAddrIncSingle;
  pending_ = p;
  return perform();
}

ApResponse MemAp::resume() {
  if (!pending_.active) return {};
  return perform();
}

ApResponse MemAp::perform() {
  BusResponse r = pending_.read ? bus_.read(pending_.addr, pending_.size)
                                : bus_.write(pending_.addr, pending_.value, pending_.size);
  if (r.status == BusStatus::busy) return {BusStatus::busy, 0, r.busy_until};
  pending_.active = false;
  if (r.status == BusStatus::error) return {BusStatus::error, 0, 0};
  if (pending_.increment) {
    // C2.2.2: automatic address increment is only guaranteed on TAR[9:0]; beyond the
    // implementation's block the address wraps within it.
    const std::uint32_t block_mask = increment_block_ - 1;
    tar_ = (tar_ & ~block_mask) | ((tar_ + pending_.size) & block_mask);
  }
  std::uint32_t mask = pending_.size == 4 ? 0xFFFFFFFFu : ((1u << (8 * pending_.size)) - 1);
  std::uint32_t data = pending_.read ? (r.value & mask) << pending_.lane_shift : 0;
  return {BusStatus::ok, data, 0};
}

}  // namespace probefarm::sim
