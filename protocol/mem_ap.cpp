// MEM-AP memory access (ARM IHI 0031 ADIv5.2, chapter C2): CSW/TAR caching, TAR
// auto-increment within 1 KiB blocks, byte-lane placement of sub-word accesses, batching,
// and the probe's native memory commands where it has them.
#include <algorithm>
#include <string>

#include "probe/bytes.hpp"
#include "probe/error.hpp"
#include "protocol/dap.hpp"

namespace probefarm::protocol {
namespace {

using probe::hex32;

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

std::string describe(const char* op, std::uint32_t address, std::size_t bytes) {
  std::string s = std::string(op) + " of " + hex32(address);
  if (bytes != 4) s += " (" + std::to_string(bytes) + " bytes)";
  return s;
}

unsigned size_code(unsigned size_bytes) {
  return size_bytes == 1 ? 0 : size_bytes == 2 ? 1 : 2;
}

void check_aligned(std::uint32_t address, unsigned size_bytes, const char* op) {
  if (address % size_bytes == 0) return;
  throw Error(ErrorCategory::usage, "unaligned " + std::to_string(8 * size_bytes) + "-bit " + op +
                                        " at " + hex32(address));
}

// C2.2.6 byte lanes: a byte or halfword travels on the lanes its address selects.
std::uint32_t to_lanes(std::uint32_t address, std::uint32_t value) {
  return value << (8 * (address & 3));
}
std::uint32_t from_lanes(std::uint32_t address, std::uint32_t raw) {
  return raw >> (8 * (address & 3));
}

// `count` accesses of `size` bytes from `address`, for bytes [offset, offset + size * count)
// of the caller's buffer.
struct Run {
  std::uint32_t address;
  unsigned size;
  std::size_t offset;
  std::size_t count;
};

// Splits `length` bytes at `address` into the widest accesses the alignment allows: runs of
// words (ending at each 1 KiB auto-increment boundary when `tar_blocks`), single halfwords
// and bytes where the address or the length is not word-aligned.
template <class F>
void for_each_run(std::uint32_t address, std::size_t length, bool tar_blocks, F&& f) {
  for (std::size_t off = 0; off < length;) {
    const auto a = static_cast<std::uint32_t>(address + off);
    const std::size_t left = length - off;
    Run run{a, 1, off, 1};
    if ((a & 3) == 0 && left >= 4) {
      run.size = 4;
      run.count = left / 4;
      if (tar_blocks)
        run.count = std::min<std::size_t>(run.count, (kIncrementBlock - a % kIncrementBlock) / 4);
    } else if ((a & 1) == 0 && left >= 2) {
      run.size = 2;
    }
    f(run);
    off += run.size * run.count;
  }
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

void MemAp::queue_reads(std::uint32_t address, unsigned size_bytes, std::span<std::uint32_t> raw) {
  queue_select(address, size_bytes);
  dap_.queue_memory_read(ap_, csw_, address, size_bytes, raw);
  advance_tar(address, static_cast<std::uint32_t>(size_bytes * raw.size()));
}

void MemAp::queue_writes(std::uint32_t address, unsigned size_bytes,
                         std::span<const std::uint32_t> lanes) {
  queue_select(address, size_bytes);
  dap_.queue_memory_write(ap_, csw_, address, size_bytes, lanes);
  advance_tar(address, static_cast<std::uint32_t>(size_bytes * lanes.size()));
}

void MemAp::queue_single_write(std::uint32_t address, unsigned size_bytes, std::uint32_t value) {
  queue_writes(address, size_bytes, queued_data_.emplace_back(1, to_lanes(address, value)));
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

std::uint32_t MemAp::read_single(std::uint32_t address, unsigned size_bytes) {
  check_aligned(address, size_bytes, "read");
  if (size_bytes == 4 && has_native_single_access())
    return native_single_access()->read_word(address);
  std::uint32_t raw = 0;
  queue_reads(address, size_bytes, std::span(&raw, 1));
  run(describe("read", address, size_bytes));
  return from_lanes(address, raw);
}

void MemAp::write_single(std::uint32_t address, unsigned size_bytes, std::uint32_t value) {
  check_aligned(address, size_bytes, "write");
  if (size_bytes == 4 && has_native_single_access())
    return native_single_access()->write_word(address, value);
  queue_single_write(address, size_bytes, value);
  run(describe("write", address, size_bytes));
}

std::uint32_t MemAp::read32(std::uint32_t address) {
  return read_single(address, 4);
}
void MemAp::write32(std::uint32_t address, std::uint32_t value) {
  write_single(address, 4, value);
}
std::uint16_t MemAp::read16(std::uint32_t address) {
  return static_cast<std::uint16_t>(read_single(address, 2));
}
void MemAp::write16(std::uint32_t address, std::uint16_t value) {
  write_single(address, 2, value);
}
std::uint8_t MemAp::read8(std::uint32_t address) {
  return static_cast<std::uint8_t>(read_single(address, 1));
}
void MemAp::write8(std::uint32_t address, std::uint8_t value) {
  write_single(address, 1, value);
}

// --- Batching ----------------------------------------------------------------------------

void MemAp::queue_read32(std::uint32_t address, std::uint32_t* out) {
  if (has_native_single_access()) {
    *out = read32(address);
    return;
  }
  check_aligned(address, 4, "read");
  queue_reads(address, 4, std::span(out, 1));
}

void MemAp::queue_write32(std::uint32_t address, std::uint32_t value) {
  if (has_native_single_access()) return write32(address, value);
  check_aligned(address, 4, "write");
  queue_single_write(address, 4, value);
}

void MemAp::flush() {
  run("queued memory access");
}

// --- Blocks --------------------------------------------------------------------------------

void MemAp::read(std::uint32_t address, std::span<std::uint8_t> out) {
  if (out.empty()) return;
  if (dap_.probe().native_memory() != nullptr) return native_read(address, out);
  // Raw DRW words for every access (at most one per byte), decoded after the flush.
  std::vector<Run> runs;
  std::vector<std::uint32_t> raw(out.size());
  std::size_t used = 0;
  for_each_run(address, out.size(), true, [&](const Run& r) {
    queue_reads(r.address, r.size, std::span(raw).subspan(used, r.count));
    runs.push_back(r);
    used += r.count;
  });
  run(describe("read", address, out.size()));
  used = 0;
  for (const Run& r : runs) {
    for (std::size_t k = 0; k < r.count; ++k, ++used) {
      const std::uint32_t v =
          from_lanes(r.address + static_cast<std::uint32_t>(k * r.size), raw[used]);
      for (unsigned b = 0; b < r.size; ++b)
        out[r.offset + k * r.size + b] = static_cast<std::uint8_t>(v >> (8 * b));
    }
  }
}

void MemAp::write(std::uint32_t address, std::span<const std::uint8_t> data, WriteCheck check) {
  if (data.empty()) return;
  if (dap_.probe().native_memory() != nullptr) return native_write(address, data, check);
  for_each_run(address, data.size(), true, [&](const Run& r) {
    auto& lanes = queued_data_.emplace_back(r.count);
    for (std::size_t k = 0; k < r.count; ++k) {
      std::uint32_t value = 0;
      for (unsigned b = 0; b < r.size; ++b)
        value |= std::uint32_t{data[r.offset + k * r.size + b]} << (8 * b);
      lanes[k] = to_lanes(r.address + static_cast<std::uint32_t>(k * r.size), value);
    }
    queue_writes(r.address, r.size, lanes);
  });
  run(describe("write", address, data.size()));
}

// The probe's own memory commands take the widest access the alignment allows, like the
// TAR/DRW path (the driver splits at its own limits); they move CSW and TAR behind our
// back, so the caches are dropped.
probe::NativeMemory& MemAp::begin_native() {
  if (!dap_.record_.empty()) run("queued memory access");
  forget_cache();
  return *dap_.probe().native_memory();
}

void MemAp::native_read(std::uint32_t address, std::span<std::uint8_t> out) {
  probe::NativeMemory& native = begin_native();
  for_each_run(address, out.size(), false, [&](const Run& r) {
    native.read(ap_, r.address, out.subspan(r.offset, r.size * r.count), 8 * r.size);
  });
}

void MemAp::native_write(std::uint32_t address, std::span<const std::uint8_t> data,
                         WriteCheck check) {
  probe::NativeMemory& native = begin_native();
  for_each_run(address, data.size(), false, [&](const Run& r) {
    native.write(ap_, r.address, data.subspan(r.offset, r.size * r.count), 8 * r.size, check);
  });
}

bool MemAp::has_native_single_access() const {
  return ap_ == 0 && dap_.probe().native_memory() != nullptr;
}

probe::NativeMemory* MemAp::native_single_access() {
  return has_native_single_access() ? &begin_native() : nullptr;
}

}  // namespace probefarm::protocol
