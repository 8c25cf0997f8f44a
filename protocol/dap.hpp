#pragma once
// ADIv5 Debug Access Port above any probe (ARM IHI 0031, "ADIv5.2"): the debug power-up
// handshake, AP discovery, sticky-error recovery, and MEM-AP memory access with CSW/TAR
// caching, TAR auto-increment wrap handling and batching.
//
// Batching: MemAp::queue_* add operations to the probe's queue and MemAp::flush() sends
// them at once; the synchronous calls (read32, write, …) are queue + flush. A failed flush
// clears the sticky flags (ABORT), forgets the cached CSW/TAR and throws Error naming the
// address, so the next call starts clean.
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "probe/dap_probe.hpp"

namespace probefarm::protocol {

// ADIv5.2 C2.6 IDR fields that matter here.
struct ApInfo {
  std::uint8_t index = 0;
  std::uint32_t idr = 0;
  std::uint32_t base = 0;  // BASE (ROM table address), MEM-APs only
  bool is_mem_ap = false;
  bool is_ahb = false;  // AMBA AHB-AP (IDR TYPE 1)
};

class Dap {
 public:
  explicit Dap(probe::DapProbe& probe);

  // probe connect (line reset, DPIDR), clear sticky errors, CDBGPWRUPREQ|CSYSPWRUPREQ and
  // wait for both ACKs (bounded), then discover the APs. Throws Error
  // (target_not_responding) with a hint about power, wiring and SWD being disabled.
  void connect();
  std::uint32_t dpidr() const { return dpidr_; }
  const std::vector<ApInfo>& aps() const { return aps_; }
  // The first AHB MEM-AP (the system bus on Cortex-M). Throws if there is none.
  const ApInfo& system_ap() const;

  probe::DapProbe& probe() { return probe_; }

  // Reads CTRL/STAT, writes ABORT to clear STICKYERR/STICKYCMP/STICKYORUN/WDERR
  // (ADIv5.2 B2.2.1) and returns the CTRL/STAT read before clearing.
  std::uint32_t clear_sticky_errors();

  // Flushes the probe queue, retrying WAIT (bounded: `wait_budget`) from the first
  // operation that did not complete... Callers of the probe queue should use this rather
  // than probe().flush(). Throws Error: target_not_responding (no ACK / FAULT, after
  // clearing the sticky flags), timeout (WAIT past the budget), probe_io.
  // `what` names the operation for messages ("read of 0x08000000").
  void flush(const char* what);

  // Additions (protocol/README.md): the probe queue with a record kept by the Dap, so that
  // flush() can re-issue what a WAIT left undone. Operations queued straight on probe()
  // are sent by flush() too, but a WAIT among them cannot be re-issued (Error(timeout)).
  void queue_dp_read(std::uint8_t addr, std::uint32_t* out, std::uint8_t bank = 0);
  void queue_dp_write(std::uint8_t addr, std::uint32_t value, std::uint8_t bank = 0);
  void queue_ap_read(std::uint8_t ap, std::uint8_t addr, std::uint32_t* out);
  void queue_ap_write(std::uint8_t ap, std::uint8_t addr, std::uint32_t value);

  // Bumped whenever AP state cached above the Dap (MemAp's CSW/TAR) may no longer match
  // the hardware: a failed flush, a reconnect, invalidate().
  std::uint64_t generation() const { return generation_; }
  void invalidate() { ++generation_; }
  // CSW as the AP reported it at connect (its reset value); 0 if it is not a MEM-AP.
  std::uint32_t csw_at_connect(std::uint8_t ap) const;
  // Re-checks CTRL/STAT and powers the debug domain up again if a reset dropped it
  // (clears sticky flags first). Returns true if a re-power-up was needed.
  bool ensure_powered();

 private:
  friend class MemAp;
  // One queued operation; DRW/BDn accesses of a MemAp also carry the memory address and
  // CSW they use, so that a re-issue can set CSW and TAR first and errors name the address.
  struct Op {
    enum class Kind : std::uint8_t { dp_read, dp_write, ap_read, ap_write } kind;
    std::uint8_t ap = 0;
    std::uint8_t addr = 0;
    std::uint8_t bank = 0;
    std::uint32_t value = 0;
    std::uint32_t* out = nullptr;
    bool has_memory = false;
    std::uint32_t csw = 0;
    std::uint32_t address = 0;
  };
  // MemAp's data accesses: `count` DRW accesses starting at `address`, `step` bytes apart,
  // sent as one probe block.
  void queue_memory_read(std::uint8_t ap, std::uint32_t csw, std::uint32_t address,
                         std::uint32_t step, std::span<std::uint32_t> out);
  void queue_memory_write(std::uint8_t ap, std::uint32_t csw, std::uint32_t address,
                          std::uint32_t step, std::span<const std::uint32_t> data);
  // Records `op` (for a re-issue after WAIT) and queues it on the probe.
  void queue(const Op& op);
  // A DRW access of a MemAp at memory `address` through `csw`.
  static Op memory_op(Op::Kind kind, std::uint8_t ap, std::uint32_t csw, std::uint32_t address);
  void send(const Op& op);
  void requeue(std::size_t from);
  // Forgets the record and the re-issued write data (after a flush, or a failure).
  void drop_queue();
  void power_up();
  // flush without recovery: any failure throws at once (used during recovery itself).
  void flush_raw(const char* what);
  [[noreturn]] void fail(const char* what, probe::DapAck ack, const Op* failed);

  probe::DapProbe& probe_;
  std::uint32_t dpidr_ = 0;
  std::vector<ApInfo> aps_;
  std::vector<std::uint32_t> csw_reset_;  // by AP index
  std::vector<Op> record_;
  // Write data of re-issued blocks: must live until the probe flush that sends it.
  std::vector<std::vector<std::uint32_t>> requeued_data_;
  std::uint64_t generation_ = 0;
};

// Memory through one MEM-AP. Uses the probe's NativeMemory for block transfers when it
// has one (ST-Link), TAR/DRW otherwise.
class MemAp {
 public:
  MemAp(Dap& dap, std::uint8_t ap);

  Dap& dap() { return dap_; }
  std::uint8_t ap() const { return ap_; }

  std::uint32_t read32(std::uint32_t address);
  void write32(std::uint32_t address, std::uint32_t value);
  std::uint16_t read16(std::uint32_t address);
  void write16(std::uint32_t address, std::uint16_t value);
  std::uint8_t read8(std::uint32_t address);
  void write8(std::uint32_t address, std::uint8_t value);

  // Any address and size: widest accesses the alignment allows, block transfers that
  // restart TAR at every auto-increment wrap boundary (1 KiB, ADIv5.2 C2.2.2).
  // `check` matters on a probe with its own memory commands only (NativeMemory::write).
  using WriteCheck = probe::NativeMemory::WriteCheck;
  void read(std::uint32_t address, std::span<std::uint8_t> out);
  void write(std::uint32_t address, std::span<const std::uint8_t> data,
             WriteCheck check = WriteCheck::each_command);

  // Batching: nothing is sent until flush(). `out` must stay valid until then. On a probe
  // with single-access commands (native_single_access) every access costs a USB round
  // trip anyway, so these run at once, in order with what was queued before them.
  void queue_read32(std::uint32_t address, std::uint32_t* out);
  void queue_write32(std::uint32_t address, std::uint32_t value);
  void flush();

  // The probe's own single-access commands (ST-Link READDEBUG_32BIT, READREG, ...), which
  // reach AP 0 only; nullptr when there are none. Sends what is queued and forgets the
  // CSW/TAR caches, since those commands move TAR: call it right before each use.
  probe::NativeMemory* native_single_access();
  // Whether there are such commands, with no side effect.
  bool has_native_single_access() const;

 private:
  Dap& dap_;
  std::uint8_t ap_;
  // Cached CSW and TAR: what the AP holds, or unknown after a failure.
  bool csw_valid_ = false;
  std::uint32_t csw_ = 0;
  bool tar_valid_ = false;
  std::uint32_t tar_ = 0;

  // Additions kept private: the CSW bits kept from the AP's reset value, the Dap
  // generation the caches belong to, and write data queued until the next flush.
  std::uint32_t csw_for(unsigned size_bytes);
  void sync_cache();
  void forget_cache();
  void queue_select(std::uint32_t address, unsigned size_bytes);
  void advance_tar(std::uint32_t address, std::uint32_t bytes);
  // DRW accesses of `size_bytes` each from `address`, one per element of `raw` / `lanes`
  // (write data already on its byte lanes; it must live in queued_data_ until the flush).
  void queue_reads(std::uint32_t address, unsigned size_bytes, std::span<std::uint32_t> raw);
  void queue_writes(std::uint32_t address, unsigned size_bytes,
                    std::span<const std::uint32_t> lanes);
  void queue_single_write(std::uint32_t address, unsigned size_bytes, std::uint32_t value);
  void run(const std::string& what);
  // One access of `size_bytes` sent at once; the read returns the value off its lanes.
  std::uint32_t read_single(std::uint32_t address, unsigned size_bytes);
  void write_single(std::uint32_t address, unsigned size_bytes, std::uint32_t value);
  // Sends what is queued and drops the CSW/TAR caches before the probe's own commands.
  probe::NativeMemory& begin_native();
  void native_read(std::uint32_t address, std::span<std::uint8_t> out);
  void native_write(std::uint32_t address, std::span<const std::uint8_t> data, WriteCheck check);
  std::uint64_t generation_ = 0;
  bool csw_base_valid_ = false;
  std::uint32_t csw_base_ = 0;
  std::vector<std::vector<std::uint32_t>> queued_data_;
};

}  // namespace probefarm::protocol
