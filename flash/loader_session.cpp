#include "flash/loader_session.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "firmware/loader/loader_abi.h"
#include "flash/loader.hpp"
#include "flash/stm32_flash.hpp"
#include "flash/target.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

using Clock = std::chrono::steady_clock;

// struct pf_program field offsets (loader_abi.h: ten 32-bit fields in order).
constexpr std::uint32_t kPfWriteOffset = 32;
constexpr std::uint32_t kPfReadOffset = 36;
constexpr std::uint32_t kPfSize = 40;
// struct pf_crc_range: four 32-bit fields.
constexpr std::uint32_t kPfCrcRangeSize = 16;
static_assert(sizeof(pf_crc_range) == kPfCrcRangeSize);
static_assert(offsetof(pf_program, write_offset) == kPfWriteOffset);
static_assert(offsetof(pf_program, read_offset) == kPfReadOffset);
static_assert(sizeof(pf_program) == kPfSize);

// The loader's own stack: its entries use a few dozen bytes; the rest is headroom.
constexpr std::uint32_t kStackSize = 1024;
constexpr std::uint32_t kMinRing = 1024;
// Per ring write. Small chunks let the loader start programming early and program one
// chunk while the next crosses USB (on a CMSIS-DAP v1 HID probe the upload is as slow as the
// programming). A probe with native memory commands (ST-Link) pays a USB command for every
// queued register access of a round trip (publish, progress poll), so it takes bigger ones.
constexpr std::uint32_t kChunk = 1024;
constexpr std::uint32_t kNativeChunk = 4 * 1024;

// The loader gives up after this many polls of an unchanged write_offset (loader_abi.h):
// several seconds at 8 MHz, still a second or more at 216 MHz, far beyond one round trip.
constexpr std::uint32_t kIdleLoops = 20'000'000;
// Host side: no read_offset progress for this long means the loader is stuck.
constexpr auto kStall = std::chrono::seconds(5);

std::string hex(std::uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", value);
  return buf;
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t offset, std::uint32_t value) {
  for (unsigned i = 0; i < 4; ++i)
    out[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint32_t floor_pow2(std::uint32_t n) {
  std::uint32_t p = 1;
  while (p <= n / 2)
    p *= 2;
  return p;
}

}  // namespace

LoaderSession::LoaderSession(Target& target, std::uint32_t max_ring) : target_(target) {
  const ChipInfo& chip = target.chip();
  const Loader& l = loader();
  const std::uint64_t ram_end = std::uint64_t{chip.ram_base} + chip.ram_size;
  params_ = (l.end + 7) & ~7u;
  ring_ = params_ + kPfSize;  // kPfSize is a multiple of 8: the ring stays 8-byte aligned
  stack_top_ = static_cast<std::uint32_t>(ram_end & ~std::uint64_t{7});
  const std::uint64_t room = stack_top_ > ring_ + kStackSize ? stack_top_ - kStackSize - ring_ : 0;
  if (l.base < chip.ram_base || room < kMinRing) {
    throw Error(ErrorCategory::usage,
                chip.name + ": " + std::to_string(chip.ram_size) + " bytes of RAM at " +
                    hex(chip.ram_base) + " cannot hold the flash loader (" +
                    std::to_string(l.end - l.base) + " bytes at " + hex(l.base) +
                    "), a ring buffer and a stack",
                "this chip is not supported by the programmer");
  }
  // Beyond 64 KiB (the default cap) the probe, not the ring, limits throughput.
  ring_size_ = floor_pow2(std::min(std::max(max_ring, kMinRing), static_cast<std::uint32_t>(room)));

  protocol::CortexM& core = target.core();
  if (!core.is_halted()) core.halt();
  // The loader must not be interrupted into the firmware's handlers: PRIMASK = 1, with
  // CONTROL = 0 (privileged, MSP) (ARMv7-M ARM B1.4.3, C1.6.3 REGSEL 0b10100).
  core.write_register(protocol::CoreRegister::control_faultmask_basepri_primask, 1);
  target.memory().write(l.base, l.image);
  core_runs_ = core.runs();
}

bool LoaderSession::reusable() {
  protocol::CortexM& core = target_.core();
  if (core.runs() != core_runs_) return false;
  try {
    if (!core.is_halted()) return false;
    const Loader& l = loader();
    return crc32(l.base, static_cast<std::uint32_t>(l.image.size())) == flash::crc32(l.image);
  } catch (const Error&) {
    // A corrupt image may fault or never return: then it is simply loaded again.
    try {
      if (!core.is_halted()) core.halt();
    } catch (const Error&) {
    }
    return false;
  }
}

namespace {

// A table-driven CRC takes well under 16 cycles per byte; at the slowest reset clock here
// (8 MHz HSI) that is 2 us per byte. Four times that, plus the USB round trips.
std::chrono::milliseconds crc_timeout(std::uint64_t bytes) {
  return std::chrono::milliseconds(5000 + bytes * 8 / 1000);
}

}  // namespace

std::uint32_t LoaderSession::crc32(std::uint32_t address, std::uint32_t length,
                                   std::uint32_t crc_in) {
  if (length == 0) return crc_in;
  const Loader& l = loader();
  protocol::AlgorithmCall call;
  call.entry = l.crc32_entry;
  call.args = {address, length, crc_in, std::nullopt};
  call.stack_top = stack_top_;
  call.return_bkpt = l.bkpt;
  return target_.core().run_algorithm(call, crc_timeout(length));
}

std::vector<std::uint32_t> LoaderSession::crc32_many(std::span<const CrcRequest> requests) {
  std::vector<std::uint32_t> out(requests.size());
  if (requests.size() == 1 && !requests[0].chain) {
    // One range: arguments in registers, no table to write and read back.
    out[0] = crc32(requests[0].address, requests[0].length, requests[0].crc_in);
    return out;
  }
  const Loader& l = loader();
  protocol::MemAp& mem = target_.memory();
  // The table goes where the ring would be: the two are never in use at the same time.
  const std::size_t capacity = ring_size_ / kPfCrcRangeSize;
  for (std::size_t first = 0; first < requests.size();) {
    const std::size_t count = std::min(capacity, requests.size() - first);
    std::vector<std::uint8_t> table(count * kPfCrcRangeSize);
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const CrcRequest& r = requests[first + i];
      const auto at = static_cast<std::uint32_t>(i * kPfCrcRangeSize);
      // A chain across two tables continues from the result the host already has.
      const bool chain_here = r.chain && i > 0;
      const std::uint32_t crc_in = !r.chain ? r.crc_in : (i == 0 && first > 0) ? out[first - 1] : 0;
      put32(table, at + 0, r.address);
      put32(table, at + 4, r.length);
      put32(table, at + 8, crc_in);
      put32(table, at + 12, chain_here ? PF_CRC_CHAIN : 0);
      bytes += r.length;
    }
    mem.write(ring_, table);
    protocol::AlgorithmCall call;
    call.entry = l.crc32_ranges_entry;
    call.args = {ring_, static_cast<std::uint32_t>(count), std::nullopt, std::nullopt};
    call.stack_top = stack_top_;
    call.return_bkpt = l.bkpt;
    const std::uint32_t result = target_.core().run_algorithm(call, crc_timeout(bytes));
    if (result != 0) {
      throw Error(ErrorCategory::internal,
                  "the flash loader rejected a CRC table of " + std::to_string(count) +
                      " entries (result " + hex(result) + ")",
                  "this is a bug in probefarm; please report it");
    }
    mem.read(ring_, table);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t at = i * kPfCrcRangeSize + 8;
      out[first + i] = table[at] | std::uint32_t{table[at + 1]} << 8 |
                       std::uint32_t{table[at + 2]} << 16 | std::uint32_t{table[at + 3]} << 24;
    }
    first += count;
  }
  return out;
}

void LoaderSession::program(std::uint32_t address, std::span<const std::uint8_t> data,
                            unsigned psize, const std::function<void(std::uint64_t)>& on_progress) {
  if (data.empty()) return;
  const ChipInfo& chip = target_.chip();
  const Loader& l = loader();
  protocol::MemAp& mem = target_.memory();
  protocol::CortexM& core = target_.core();
  const auto length = static_cast<std::uint32_t>(data.size());

  // Parameter block and the first ring-full of data in one write (they are contiguous).
  const std::uint32_t max_chunk =
      target_.probe().native_memory() != nullptr ? kNativeChunk : kChunk;
  const std::uint32_t prefill = std::min({length, ring_size_, max_chunk});
  std::vector<std::uint8_t> head(kPfSize + prefill);
  put32(head, 0, chip.flash_regs);
  put32(head, 4, chip.style == FlashStyle::f1 ? PF_STYLE_F1 : PF_STYLE_F4);
  put32(head, 8, psize);
  put32(head, 12, address);
  put32(head, 16, length);
  put32(head, 20, ring_);
  put32(head, 24, ring_size_);
  put32(head, 28, kIdleLoops);
  put32(head, kPfWriteOffset, prefill);
  put32(head, kPfReadOffset, 0);
  std::copy_n(data.begin(), prefill, head.begin() + kPfSize);
  mem.write(params_, head);

  protocol::AlgorithmCall call;
  call.entry = l.program_entry;
  call.args = {params_, std::nullopt, std::nullopt, std::nullopt};
  call.stack_top = stack_top_;
  call.return_bkpt = l.bkpt;
  core.start_algorithm(call);

  // The ring: `written` bytes are in RAM, `published` of them announced in write_offset,
  // `done` confirmed programmed by read_offset. Each round trip publishes what the
  // previous one wrote, reads read_offset and writes the next chunk, all in one flush
  // (MemAp::write sends the queued accesses with its own). DHCSR rides along when the
  // loader may have returned (no progress last round, or nothing left for it): read before
  // read_offset, so that once it shows the core halted the read_offset after it is final
  // and no separate completion poll is needed.
  std::uint32_t written = prefill;
  std::uint32_t published = prefill;
  std::uint32_t done = 0;
  auto last_progress = Clock::now();
  bool progressed_last = true;  // the first round: the loader was just started
  for (;;) {
    std::uint32_t read_offset = done;
    std::uint32_t status = 0;
    const bool check_status = !progressed_last || done >= published;
    if (published < written) mem.queue_write32(params_ + kPfWriteOffset, written);
    const std::uint32_t now_published = written;
    if (check_status) core.queue_status_read(&status);
    mem.queue_read32(params_ + kPfReadOffset, &read_offset);
    const std::uint32_t in_flight = written - done;
    std::uint32_t n = std::min({length - written, ring_size_ - in_flight, max_chunk});
    const std::uint32_t pos = written & (ring_size_ - 1);
    n = std::min(n, ring_size_ - pos);
    // Keep ring writes word-sized until the last one: positions stay 4-byte aligned.
    if (written + n < length) n &= ~3u;
    if (n > 0) {
      mem.write(ring_ + pos, data.subspan(written, n));
      written += n;
    } else {
      mem.flush();
    }
    published = now_published;

    const bool progressed = read_offset > done;
    progressed_last = progressed;
    if (progressed) {
      done = read_offset;
      last_progress = Clock::now();
      if (on_progress) on_progress(done);
    }
    // Halted: the loader has returned, all done or stopped on an error (finish tells).
    if (check_status && protocol::CortexM::halted_in(status)) break;
    if (!progressed && Clock::now() - last_progress > kStall) {
      core.halt();
      throw Error(ErrorCategory::timeout,
                  "flash loader " +
                      std::string(done >= length
                                      ? "did not return after programming " + hex(address) + ".." +
                                            hex(address + length - 1)
                                      : "made no progress for " +
                                            std::to_string(std::chrono::seconds(kStall).count()) +
                                            " s at " + hex(address + done)),
                  "power-cycle the target and retry; lower the SWD speed");
    }
  }

  const std::uint32_t result = core.finish_algorithm(call);
  if (result == 0) return;
  const std::uint32_t at = address + mem.read32(params_ + kPfReadOffset);
  const std::string where = "programming at " + hex(at);
  if (result & PF_ERROR_TIMEOUT) {
    throw Error(ErrorCategory::timeout, where + ": flash stayed busy (BSY) in the loader",
                "power-cycle the target; check its supply voltage");
  }
  if (result & (PF_ERROR_STARVED | PF_ERROR_ARGUMENT)) {
    throw Error(ErrorCategory::internal,
                where + ": the loader " +
                    ((result & PF_ERROR_STARVED) ? "ran out of data" : "rejected its arguments") +
                    " (result " + hex(result) + ")",
                "this is a bug in probefarm; please report it");
  }
  Stm32Flash(mem, chip).throw_flash_error(result, where);
}

}  // namespace probefarm::flash
