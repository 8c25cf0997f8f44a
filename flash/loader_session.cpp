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
constexpr std::uint32_t kTarBlock = 1024;
constexpr std::uint32_t kMinRing = 1024;
// Per ring write. Small chunks let the loader start programming early and program one
// chunk while the next crosses USB (on a CMSIS-DAP v1 HID probe the upload is as slow as the
// programming). A probe with native memory commands (ST-Link) pays a USB command for every
// queued register access of a round trip (publish, progress poll), so it takes bigger ones.
constexpr std::uint32_t kChunk = 1024;
// On an ST-Link a round trip's register accesses cost a USB command each, while the data of
// a chunk costs one per KiB (WRITEMEM splits at the 1 KiB TAR auto-increment boundary), so
// bigger chunks carry fewer of those commands per byte. The first chunk stays small so
// that the loader starts early.
constexpr std::uint32_t kNativeChunk = 16 * 1024;
constexpr std::uint32_t kNativeFirstChunk = 4 * 1024;

// The loader gives up after this many polls of an unchanged write_offset (loader_abi.h):
// about 20 s at 216 MHz, minutes at 8 MHz. A host can stall for seconds between chunks (a
// loaded CI machine, a hub re-enumerating a neighbour), and a run must survive that; a
// loader that is really stuck is noticed by the host (kStall), which never relies on this
// bound. It only keeps a loader whose host vanished from spinning forever.
constexpr std::uint32_t kIdleLoops = 400'000'000;
// CRCs shorter than this run at the clock the core has: at 8 MHz a CRC of 16 KiB takes
// about as long (~10 ms) as the handful of full-speed USB round trips that switching the
// clock up and back costs.
constexpr std::uint64_t kFastClockMinBytes = 16 * 1024;
// Host side: no read_offset progress for this long, over at least this many polls, means the
// loader is stuck. The poll count keeps a slow link (a simulator serving many boards, a
// probe on a busy hub) from passing for a stuck loader: each poll is a round trip in which
// a live loader moves on; on a fast link the time decides.
constexpr auto kStall = std::chrono::seconds(5);
constexpr unsigned kStallPolls = 200;

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
  // The ring starts on a 1 KiB boundary, the parameter block right below it: a probe's
  // memory commands split at the TAR auto-increment boundary (1 KiB, ADIv5.2 C2.2.2), so
  // an unaligned ring costs one more command per ring write.
  ring_ = (l.end + kPfSize + kTarBlock - 1) & ~(kTarBlock - 1);
  params_ = ring_ - kPfSize;
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
  if (fast_crc_ && length >= kFastClockMinBytes) raise_clock();
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
  std::uint64_t total = 0;
  for (const CrcRequest& r : requests)
    total += r.length;
  if (fast_crc_ && total >= kFastClockMinBytes) raise_clock();
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
                            unsigned psize, const std::function<void(std::uint64_t)>& on_progress,
                            bool verified_after) {
  if (data.empty()) return;
  // The loader's few dozen cycles per unit between two programming operations (erased-unit
  // check, store, DSB, BSY poll, EOP clear, read_offset) add up at the reset clock: ~2 us
  // per 16 us F4/F7 word at 16 MHz, ~4 us per 52.5 us F1/F3 half-word at 8 MHz. Measured
  // (bench/README.md): F407 1 MiB 4.89 -> 4.33 s. So programming runs at the raised clock
  // too when the operation allows it.
  if (fast_crc_) raise_clock();
  const ChipInfo& chip = target_.chip();
  const Loader& l = loader();
  protocol::MemAp& mem = target_.memory();
  protocol::CortexM& core = target_.core();
  const auto length = static_cast<std::uint32_t>(data.size());

  // Parameter block and the first ring-full of data in one write (they are contiguous).
  const std::uint32_t max_chunk =
      target_.probe().native_memory() != nullptr ? kNativeChunk : kChunk;
  const std::uint32_t prefill =
      std::min({length, ring_size_, std::min(max_chunk, kNativeFirstChunk)});
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
  unsigned polls_since_progress = 0;
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
      mem.write(ring_ + pos, data.subspan(written, n),
                verified_after ? protocol::MemAp::WriteCheck::at_end
                               : protocol::MemAp::WriteCheck::each_command);
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
      polls_since_progress = 0;
      if (on_progress) on_progress(done);
    } else {
      ++polls_since_progress;
    }
    // Halted: the loader has returned, all done or stopped on an error (finish tells).
    if (check_status && protocol::CortexM::halted_in(status)) break;
    if (!progressed && polls_since_progress >= kStallPolls &&
        Clock::now() - last_progress > kStall) {
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

// ---- Core clock --------------------------------------------------------------------------
namespace probefarm::flash {
namespace {

// RCC and FLASH_ACR (RM0008 7.3.1/7.3.2 and 3.3.3 "FLASH_ACR"; RM0316 9.4.1/9.4.2 and
// 4.5.1; RM0090 7.3.1-7.3.3 and 3.9.1; RM0385 5.3.1-5.3.3 and 3.7.1).
constexpr std::uint32_t kRccF1 = 0x40021000;  // F1/F3: CR 0x00, CFGR 0x04
constexpr std::uint32_t kRccF4 = 0x40023800;  // F4/F7: CR 0x00, PLLCFGR 0x04, CFGR 0x08
constexpr std::uint32_t kCrPllon = 1u << 24;
constexpr std::uint32_t kCrPllrdy = 1u << 25;
constexpr std::uint32_t kCfgrSw = 3u;
constexpr std::uint32_t kCfgrSwPll = 2u;
constexpr std::uint32_t kCfgrSwsShift = 2;
constexpr std::uint32_t kCfgrSws = 3u << kCfgrSwsShift;
constexpr auto kClockDeadline = std::chrono::milliseconds(500);

struct ClockPlan {
  bool supported = true;            // false: the line's limits are not covered here
  std::uint32_t rcc = 0, cfgr = 0;  // register addresses
  std::uint32_t pllcfgr = 0;        // 0 on F1/F3
  std::uint32_t acr = 0;
  std::uint32_t acr_latency_mask = 0, acr_latency = 0;
  std::uint32_t cfgr_mask = 0, cfgr_value = 0;        // PLL source/multiplier, APB prescalers
  std::uint32_t pllcfgr_mask = 0, pllcfgr_value = 0;  // F4/F7: PLLM, PLLN, PLLP, PLLSRC
};

ClockPlan clock_plan(const ChipInfo& chip) {
  ClockPlan p;
  // The F100 value line runs at 24 MHz at most (RM0041 7.2), barely above HSI: not worth
  // a switch.
  if (chip.dev_id == 0x420 || chip.dev_id == 0x428) p.supported = false;
  if (chip.style == FlashStyle::f1) {
    // F1/F3: PLL input HSI/2 = 4 MHz (PLLSRC = 0) x16 (PLLMUL = 0b1110) = 64 MHz, the most
    // HSI allows (RM0008 7.2.3, RM0316 9.2.4 Figure 13 for the F303xB/C). APB1 must stay
    // <= 36 MHz: PPRE1 = /2 (0b100). FLASH_ACR LATENCY = 2 wait states for 48 < SYSCLK <=
    // 72 MHz (RM0008 3.3.3, RM0316 4.5.1).
    p.rcc = kRccF1;
    p.cfgr = kRccF1 + 0x04;
    p.acr = chip.flash_regs + 0x00;
    p.acr_latency_mask = 0x7;
    p.acr_latency = 2;
    p.cfgr_mask = (1u << 16) | (1u << 17) | (0xFu << 18) | (7u << 8);
    p.cfgr_value = (0xEu << 18) | (4u << 8);
    return p;
  }
  // F4/F7: HSI 16 MHz / PLLM 8 = 2 MHz VCO input (the value RM0090 7.3.2 recommends), x PLLN,
  // / PLLP 2 (0b00); PLLSRC = HSI (bit 22 clear); PLLQ left as it is. F4: PLLN 168 ->
  // 168 MHz, the F407's maximum; F7: PLLN 180 -> 180 MHz, the most without over-drive
  // (RM0385 5.1.4), so PWR need not be touched. APB1 /4 (<= 42 / 54 MHz), APB2 /2 (<= 84 /
  // 108 MHz): PPRE1 = 0b101, PPRE2 = 0b100. Wait states at 2.7-3.6 V: 5 for 150 < HCLK <=
  // 168 (RM0090 3.5.1 Table 10) and for 150 < HCLK <= 180 (RM0385 3.3.2 Table 7).
  // F401 and F411 come out of reset in voltage scale 2 (84 MHz at most, RM0368 5.4.1 /
  // RM0383 5.4.1 PWR_CR VOS reset value): PLLN 84 -> 84 MHz, 2 wait states there (RM0368
  // 3.5.1 Table 5, RM0383 3.5.1 Table 5: 60/64 < HCLK <= 84/90 MHz at 2.7-3.6 V).
  const bool scale2 = chip.dev_id == 0x423 || chip.dev_id == 0x431;
  const std::uint32_t plln = scale2 ? 84 : chip.family == Family::f7 ? 180 : 168;
  p.rcc = kRccF4;
  p.cfgr = kRccF4 + 0x08;
  p.pllcfgr = kRccF4 + 0x04;
  p.acr = chip.flash_regs + 0x00;
  p.acr_latency_mask = 0xF;
  p.acr_latency = scale2 ? 2 : 5;
  p.cfgr_mask = (7u << 10) | (7u << 13);
  p.cfgr_value = (5u << 10) | (4u << 13);
  p.pllcfgr_mask = 0x3Fu | (0x1FFu << 6) | (3u << 16) | (1u << 22);
  p.pllcfgr_value = 8u | (plln << 6);
  return p;
}

// Polls `address` until (value & mask) == want, with a deadline.
void poll_until(protocol::MemAp& mem, std::uint32_t address, std::uint32_t mask, std::uint32_t want,
                const char* what) {
  const auto deadline = Clock::now() + kClockDeadline;
  for (;;) {
    if ((mem.read32(address) & mask) == want) return;
    if (Clock::now() > deadline) {
      throw Error(ErrorCategory::timeout, std::string("the clock controller (RCC) did not ") + what,
                  "power-cycle the target and retry");
    }
  }
}

}  // namespace

void LoaderSession::raise_clock() {
  if (saved_clock_.raised) return;
  const ClockPlan p = clock_plan(target_.chip());
  if (!p.supported) return;
  protocol::MemAp& mem = target_.memory();
  SavedClock s;
  mem.queue_read32(p.rcc, &s.cr);
  mem.queue_read32(p.cfgr, &s.cfgr);
  if (p.pllcfgr) mem.queue_read32(p.pllcfgr, &s.pllcfgr);
  mem.queue_read32(p.acr, &s.acr);
  mem.flush();
  // Firmware (or a debugger script) set the clock up: keep it.
  if ((s.cfgr & kCfgrSws) != 0 || (s.cr & kCrPllon) != 0) return;
  saved_clock_ = s;
  saved_clock_.raised = true;
  // Wait states first, read back so that they are known to be in force before the clock
  // goes up (RM0090 3.5.1 "Increasing the CPU frequency"); the PLL is configured and
  // started in the same round trip, since nothing runs from it yet.
  const std::uint32_t cfgr = (s.cfgr & ~p.cfgr_mask) | p.cfgr_value;
  std::uint32_t acr = 0, cr = 0;
  mem.queue_write32(p.acr, (s.acr & ~p.acr_latency_mask) | p.acr_latency);
  mem.queue_read32(p.acr, &acr);
  if (p.pllcfgr) mem.queue_write32(p.pllcfgr, (s.pllcfgr & ~p.pllcfgr_mask) | p.pllcfgr_value);
  mem.queue_write32(p.cfgr, cfgr);
  mem.queue_write32(p.rcc, s.cr | kCrPllon);
  mem.queue_read32(p.rcc, &cr);
  mem.flush();
  if ((acr & p.acr_latency_mask) != p.acr_latency)
    poll_until(mem, p.acr, p.acr_latency_mask, p.acr_latency, "accept the flash wait states");
  if ((cr & kCrPllrdy) == 0) poll_until(mem, p.rcc, kCrPllrdy, kCrPllrdy, "lock its PLL");
  std::uint32_t switched = 0;
  mem.queue_write32(p.cfgr, (cfgr & ~kCfgrSw) | kCfgrSwPll);
  mem.queue_read32(p.cfgr, &switched);
  mem.flush();
  if ((switched & kCfgrSws) != kCfgrSwPll << kCfgrSwsShift)
    poll_until(mem, p.cfgr, kCfgrSws, kCfgrSwPll << kCfgrSwsShift, "switch SYSCLK to the PLL");
}

void LoaderSession::restore_clock() {
  if (!saved_clock_.raised) return;
  saved_clock_.raised = false;
  const SavedClock& s = saved_clock_;
  const ClockPlan p = clock_plan(target_.chip());
  protocol::MemAp& mem = target_.memory();
  // Back to HSI first (CFGR as raise_clock left it, with the saved SW), then the PLL off
  // and its settings, then the wait states (RM0090 3.5.1 "Decreasing the CPU frequency":
  // the wait states after the clock).
  const std::uint32_t cfgr = (s.cfgr & ~p.cfgr_mask) | p.cfgr_value;
  std::uint32_t switched = 0;
  mem.queue_write32(p.cfgr, (cfgr & ~kCfgrSw) | (s.cfgr & kCfgrSw));
  mem.queue_read32(p.cfgr, &switched);
  mem.flush();
  if ((switched & kCfgrSws) != (s.cfgr & kCfgrSws))
    poll_until(mem, p.cfgr, kCfgrSws, s.cfgr & kCfgrSws, "switch SYSCLK back to HSI");
  mem.queue_write32(p.rcc, s.cr);
  mem.queue_write32(p.cfgr, s.cfgr);
  if (p.pllcfgr) mem.queue_write32(p.pllcfgr, s.pllcfgr);
  mem.queue_write32(p.acr, s.acr);
  mem.flush();
}

void LoaderSession::set_fast_crc(bool on) {
  fast_crc_ = on;
  if (!on) restore_clock();
}

}  // namespace probefarm::flash
