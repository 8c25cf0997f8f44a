// MEM-AP memory access (ARM IHI 0031 ADIv5.2, chapter C2): CSW/TAR caching, TAR
// auto-increment within 1 KiB blocks, byte-lane placement of sub-word accesses, batching,
// and the probe's native memory commands where it has them.
#include <cstdio>
#include <string>

#include "probe/error.hpp"
#include "protocol/dap.hpp"

namespace probefarm::protocol {
namespace {

// ADIv5.2 C2.6 MEM-AP registers.
constexpr std::uint8_t kCsw = 0x00;
constexpr std::uint8_t kTar = 0x04;

// C2.6 "CSW": Size [2:0] (0 byte, 1 halfword, 2 word), AddrInc [5:4] (0b01 single),
// Mode [11:8]; DeviceEn [6] and TrInProg [7] are read-only. Bits [31:12] (DbgSwEnable,
// Prot, SPIDEN, Type) are kept as the AP reset them: on a Cortex-M AHB-AP they select a
// privileged data access (Cortex-M4 TRM DDI 0439 "AHB-AP").
constexpr std::uint32_t kCswKeepMask = 0xFFFFF000;
constexpr std::uint32_t kCswAddrIncSingle = 0x10;

// C2.2.2: TAR auto-increment is only guaranteed within TAR[9:0]; a block transfer starts
// again with a TAR write at every 1 KiB boundary.
constexpr std::uint32_t kIncrementBlock = 1024;

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

std::string describe(const char* op, std::uint32_t address, std::size_t bytes) {
  std::string s = std::string(op) + " of " + hex32(address);
  if (bytes != 4) s += " (" + std::to_string(bytes) + " bytes)";
  return s;
}

unsigned size_code(unsigned size_bytes) {
  return size_bytes == 1 ? 0 : size_bytes == 2 ? 1 : 2;
}

}  // namespace

MemAp::MemAp(Dap& dap, std::uint8_t ap) : dap_(dap), ap_(ap) {}

void MemAp::forget_cache() {
  csw_valid_ = false;
  tar_valid_ = false;
}

void MemAp::sync_cache() {
  if (generation_ != dap_.generation()) {
    forget_cache();
    generation_ = dap_.generation();
  }
  if (!csw_base_valid_) {
    std::uint32_t reset = dap_.csw_at_connect(ap_);
    if (reset == 0) {
      // Not read at connect (the Dap did not see this AP as a MEM-AP): read it now.
      dap_.queue_ap_read(ap_, kCsw, &reset);
      dap_.flush("MEM-AP CSW read");
      generation_ = dap_.generation();
    }
    csw_base_ = reset & kCswKeepMask;
    csw_base_valid_ = true;
  }
}

std::uint32_t MemAp::csw_for(unsigned size_bytes) {
  return csw_base_ | kCswAddrIncSingle | size_code(size_bytes);
}

// CSW and TAR for an access of `size_bytes` at `address`, written only when the cached
// values differ.
void MemAp::queue_select(std::uint32_t address, unsigned size_bytes) {
  sync_cache();
  const std::uint32_t csw = csw_for(size_bytes);
  if (!csw_valid_ || csw_ != csw) {
    dap_.queue_ap_write(ap_, kCsw, csw);
    csw_ = csw;
    csw_valid_ = true;
  }
  if (!tar_valid_ || tar_ != address) {
    dap_.queue_ap_write(ap_, kTar, address);
    tar_ = address;
    tar_valid_ = true;
  }
}

// TAR after `bytes` of auto-increment from `address`. Where the increment reaches a 1 KiB
// boundary the AP may wrap or carry (implementation defined above 10 bits): unknown.
void MemAp::advance_tar(std::uint32_t address, std::uint32_t bytes) {
  const std::uint32_t next = address + bytes;
  tar_ = next;
  tar_valid_ = (next % kIncrementBlock) != 0;
}

void MemAp::queue_single_read(std::uint32_t address, unsigned size_bytes, std::uint32_t* raw) {
  queue_select(address, size_bytes);
  dap_.queue_memory_read(ap_, csw_, address, size_bytes, std::span<std::uint32_t>(raw, 1));
  advance_tar(address, size_bytes);
}

void MemAp::queue_single_write(std::uint32_t address, unsigned size_bytes, std::uint32_t value) {
  queue_select(address, size_bytes);
  // C2.2.6 byte lanes: a byte or halfword travels on the lanes its address selects.
  const std::uint32_t lane_value = value << (8 * (address & 3));
  auto& buffer = queued_data_.emplace_back(1, lane_value);
  dap_.queue_memory_write(ap_, csw_, address, size_bytes, buffer);
  advance_tar(address, size_bytes);
}

void MemAp::run(const std::string& what) {
  try {
    dap_.flush(what.c_str());
  } catch (...) {
    queued_data_.clear();
    forget_cache();
    throw;
  }
  queued_data_.clear();
}

// --- Synchronous single accesses -----------------------------------------------------------

std::uint32_t MemAp::read32(std::uint32_t address) {
  std::uint32_t v = 0;
  queue_read32(address, &v);
  run(describe("read", address, 4));
  return v;
}

void MemAp::write32(std::uint32_t address, std::uint32_t value) {
  queue_write32(address, value);
  run(describe("write", address, 4));
}

std::uint16_t MemAp::read16(std::uint32_t address) {
  if (address & 1) throw Error(ErrorCategory::usage, "unaligned 16-bit read at " + hex32(address));
  std::uint32_t raw = 0;
  queue_single_read(address, 2, &raw);
  run(describe("read", address, 2));
  return static_cast<std::uint16_t>(raw >> (8 * (address & 2)));
}

void MemAp::write16(std::uint32_t address, std::uint16_t value) {
  if (address & 1) throw Error(ErrorCategory::usage, "unaligned 16-bit write at " + hex32(address));
  queue_single_write(address, 2, value);
  run(describe("write", address, 2));
}

std::uint8_t MemAp::read8(std::uint32_t address) {
  std::uint32_t raw = 0;
  queue_single_read(address, 1, &raw);
  run(describe("read", address, 1));
  return static_cast<std::uint8_t>(raw >> (8 * (address & 3)));
}

void MemAp::write8(std::uint32_t address, std::uint8_t value) {
  queue_single_write(address, 1, value);
  run(describe("write", address, 1));
}

// --- Batching ----------------------------------------------------------------------------

void MemAp::queue_read32(std::uint32_t address, std::uint32_t* out) {
  if (address & 3) throw Error(ErrorCategory::usage, "unaligned 32-bit read at " + hex32(address));
  queue_single_read(address, 4, out);
}

void MemAp::queue_write32(std::uint32_t address, std::uint32_t value) {
  if (address & 3) throw Error(ErrorCategory::usage, "unaligned 32-bit write at " + hex32(address));
  queue_single_write(address, 4, value);
}

void MemAp::flush() {
  run("queued memory access");
}

// --- Blocks --------------------------------------------------------------------------------

void MemAp::read(std::uint32_t address, std::span<std::uint8_t> out) {
  if (out.empty()) return;
  if (dap_.probe().native_memory() != nullptr) return native_read(address, out);
  // Raw DRW words for every access, decoded after the flush.
  struct Piece {
    std::uint32_t address;
    unsigned size;       // bytes per access
    std::size_t offset;  // into `out`
    std::size_t count;   // accesses
    std::size_t first;   // index into `raw`
  };
  std::vector<Piece> pieces;
  std::vector<std::uint32_t> raw(out.size());  // at most one word per byte
  std::size_t used = 0;
  std::uint32_t a = address;
  std::size_t off = 0;
  while (off < out.size()) {
    const std::size_t left = out.size() - off;
    if ((a & 3) == 0 && left >= 4) {
      const std::size_t room = (kIncrementBlock - a % kIncrementBlock) / 4;
      const std::size_t n = std::min(left / 4, room);
      queue_select(a, 4);
      dap_.queue_memory_read(ap_, csw_, a, 4, std::span<std::uint32_t>(&raw[used], n));
      advance_tar(a, static_cast<std::uint32_t>(4 * n));
      pieces.push_back({a, 4, off, n, used});
      used += n;
      a += static_cast<std::uint32_t>(4 * n);
      off += 4 * n;
    } else {
      const unsigned size = ((a & 1) == 0 && left >= 2) ? 2 : 1;
      queue_single_read(a, size, &raw[used]);
      pieces.push_back({a, size, off, 1, used});
      used += 1;
      a += size;
      off += size;
    }
  }
  run(describe("read", address, out.size()));
  for (const Piece& p : pieces) {
    for (std::size_t k = 0; k < p.count; ++k) {
      const std::uint32_t at = p.address + static_cast<std::uint32_t>(k * p.size);
      const std::uint32_t v = raw[p.first + k] >> (8 * (at & 3));
      for (unsigned b = 0; b < p.size; ++b)
        out[p.offset + k * p.size + b] = static_cast<std::uint8_t>(v >> (8 * b));
    }
  }
}

void MemAp::write(std::uint32_t address, std::span<const std::uint8_t> data) {
  if (data.empty()) return;
  if (dap_.probe().native_memory() != nullptr) return native_write(address, data);
  std::uint32_t a = address;
  std::size_t off = 0;
  while (off < data.size()) {
    const std::size_t left = data.size() - off;
    if ((a & 3) == 0 && left >= 4) {
      const std::size_t room = (kIncrementBlock - a % kIncrementBlock) / 4;
      const std::size_t n = std::min(left / 4, room);
      auto& words = queued_data_.emplace_back(n);
      for (std::size_t k = 0; k < n; ++k) {
        const std::uint8_t* p = &data[off + 4 * k];
        words[k] =
            p[0] | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
      }
      queue_select(a, 4);
      dap_.queue_memory_write(ap_, csw_, a, 4, words);
      advance_tar(a, static_cast<std::uint32_t>(4 * n));
      a += static_cast<std::uint32_t>(4 * n);
      off += 4 * n;
    } else if ((a & 1) == 0 && left >= 2) {
      queue_single_write(a, 2, data[off] | std::uint32_t{data[off + 1]} << 8);
      a += 2;
      off += 2;
    } else {
      queue_single_write(a, 1, data[off]);
      a += 1;
      off += 1;
    }
  }
  run(describe("write", address, data.size()));
}

// The probe's own memory commands take the widest access the alignment allows, like the
// TAR/DRW path; they move CSW and TAR behind our back, so the caches are dropped.
void MemAp::native_read(std::uint32_t address, std::span<std::uint8_t> out) {
  if (!dap_.record_.empty()) run("queued memory access");
  probe::NativeMemory& native = *dap_.probe().native_memory();
  forget_cache();
  std::uint32_t a = address;
  std::size_t off = 0;
  while (off < out.size()) {
    const std::size_t left = out.size() - off;
    unsigned width = 8;
    std::size_t n = 1;
    if ((a & 3) == 0 && left >= 4) {
      width = 32;
      n = left & ~std::size_t{3};
    } else if ((a & 1) == 0 && left >= 2) {
      width = 16;
      n = 2;
    }
    native.read(ap_, a, out.subspan(off, n), width);
    a += static_cast<std::uint32_t>(n);
    off += n;
  }
}

void MemAp::native_write(std::uint32_t address, std::span<const std::uint8_t> data) {
  if (!dap_.record_.empty()) run("queued memory access");
  probe::NativeMemory& native = *dap_.probe().native_memory();
  forget_cache();
  std::uint32_t a = address;
  std::size_t off = 0;
  while (off < data.size()) {
    const std::size_t left = data.size() - off;
    unsigned width = 8;
    std::size_t n = 1;
    if ((a & 3) == 0 && left >= 4) {
      width = 32;
      n = left & ~std::size_t{3};
    } else if ((a & 1) == 0 && left >= 2) {
      width = 16;
      n = 2;
    }
    native.write(ap_, a, data.subspan(off, n), width);
    a += static_cast<std::uint32_t>(n);
    off += n;
  }
}

}  // namespace probefarm::protocol
