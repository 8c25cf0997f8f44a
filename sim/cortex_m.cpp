#include "cortex_m.hpp"

#include <unicorn/unicorn.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace probefarm::sim {
namespace {

// ARMv7-M ARM C1.6.2 DHCSR.
constexpr std::uint32_t kDbgKey = 0xA05F0000;
constexpr std::uint32_t kCDebugEn = 1u << 0;
constexpr std::uint32_t kCHalt = 1u << 1;
constexpr std::uint32_t kCStep = 1u << 2;
constexpr std::uint32_t kCMaskInts = 1u << 3;
constexpr std::uint32_t kCSnapStall = 1u << 5;
constexpr std::uint32_t kSRegRdy = 1u << 16;
constexpr std::uint32_t kSHalt = 1u << 17;
constexpr std::uint32_t kSSleep = 1u << 18;
constexpr std::uint32_t kSLockup = 1u << 19;
constexpr std::uint32_t kSRetireSt = 1u << 24;
constexpr std::uint32_t kSResetSt = 1u << 25;

// C1.6.1 DFSR.
constexpr std::uint32_t kDfsrHalted = 1u << 0;
constexpr std::uint32_t kDfsrBkpt = 1u << 1;
constexpr std::uint32_t kDfsrDwtTrap = 1u << 2;
constexpr std::uint32_t kDfsrVCatch = 1u << 3;

// C1.6.5 DEMCR.
constexpr std::uint32_t kVcCoreReset = 1u << 0;
constexpr std::uint32_t kTrcEna = 1u << 24;

// B3.2.6 AIRCR.
constexpr std::uint32_t kVectKey = 0x05FA0000;
constexpr std::uint32_t kVectKeyStat = 0xFA050000;
constexpr std::uint32_t kVectReset = 1u << 0;
constexpr std::uint32_t kSysResetReq = 1u << 2;

// B3.2.2 System control block and C1.6 debug register addresses.
constexpr std::uint32_t kCpuid = 0xE000ED00;
constexpr std::uint32_t kAircr = 0xE000ED0C;
constexpr std::uint32_t kDfsr = 0xE000ED30;
constexpr std::uint32_t kDhcsr = 0xE000EDF0;
constexpr std::uint32_t kDcrsr = 0xE000EDF4;
constexpr std::uint32_t kDcrdr = 0xE000EDF8;
constexpr std::uint32_t kDemcr = 0xE000EDFC;
constexpr std::uint32_t kMvfr0 = 0xE000EF40;
constexpr std::uint32_t kMvfr1 = 0xE000EF44;
constexpr std::uint32_t kMvfr2 = 0xE000EF48;

constexpr std::uint32_t kItmBase = 0xE0000000;
constexpr std::uint32_t kDwtBase = 0xE0001000;
constexpr std::uint32_t kFpbBase = 0xE0002000;
constexpr std::uint32_t kScsBase = 0xE000E000;
constexpr std::uint32_t kTpiuBase = 0xE0040000;
constexpr std::uint32_t kRomTable = 0xE00FF000;

// Chunk of instructions between clock updates; small enough that a debugger access
// between chunks sees the core's progress at fine grain, large enough to amortise
// unicorn's start-up cost.
constexpr std::uint64_t kChunkInstructions = 20000;

// CoreSight component identification (ARM IHI 0029 CoreSight Architecture, B2.2):
// CIDR class nibble and peripheral ID of each component. Part numbers from the
// Cortex-M3 (DDI 0337), Cortex-M4 (DDI 0439) and Cortex-M7 (DDI 0489) TRMs.
struct ComponentId {
  std::uint32_t base;
  std::uint32_t cid_class;  // 0x1 ROM table, 0xE generic IP, 0x9 CoreSight
  std::uint16_t part;
  std::uint8_t jep106_id;
  std::uint8_t jep106_cont;
};

std::uint32_t component_id_register(const ComponentId& c, std::uint32_t offset) {
  // PIDR4 0xFD0, PIDR0-3 0xFE0-0xFEC, CIDR0-3 0xFF0-0xFFC.
  switch (offset) {
    case 0xFD0:
      return c.jep106_cont & 0xF;
    case 0xFE0:
      return c.part & 0xFF;
    case 0xFE4:
      return ((c.part >> 8) & 0xF) | ((c.jep106_id & 0xF) << 4);
    case 0xFE8:
      return ((c.jep106_id >> 4) & 0x7) | 0x8;  // JEDEC-assigned designer
    case 0xFEC:
      return 0;
    case 0xFF0:
      return 0x0D;
    case 0xFF4:
      return (c.cid_class << 4) & 0xF0;
    case 0xFF8:
      return 0x05;
    case 0xFFC:
      return 0xB1;
    default:
      return 0;
  }
}

std::uint32_t lane_read(std::uint32_t word, std::uint32_t addr, unsigned size) {
  const unsigned shift = (addr & 3) * 8;
  const std::uint32_t mask = size == 4 ? 0xFFFFFFFF : (1u << (size * 8)) - 1;
  return (word >> shift) & mask;
}

std::uint32_t lane_merge(std::uint32_t word, std::uint32_t addr, std::uint32_t value,
                         unsigned size) {
  if (size == 4) return value;
  const unsigned shift = (addr & 3) * 8;
  const std::uint32_t mask = ((1u << (size * 8)) - 1) << shift;
  return (word & ~mask) | ((value << shift) & mask);
}

void check(uc_err err, const char* what) {
  if (err != UC_ERR_OK) throw std::runtime_error(std::string(what) + ": " + uc_strerror(err));
}

}  // namespace

struct CortexM::Impl {
  uc_engine* uc = nullptr;
  uc_hook code_hook = 0;
  uc_hook interrupt_hook = 0;
  std::vector<uc_hook> watch_hooks;
  struct FlashMapping {
    std::uint32_t base;
    std::span<std::uint8_t> memory;
    FlashWrite on_write;
  };
  std::vector<std::unique_ptr<FlashMapping>> flash;
  struct IoMapping {
    CortexM* core;
    std::uint32_t base;
    IoRead read;
    IoWrite write;
  };
  std::vector<std::unique_ptr<IoMapping>> io;
  // Bytes the flash controller decided for a CPU store; unicorn writes the raw store
  // value into the mapped flash after the hook, so these are put back afterwards.
  struct Fixup {
    std::uint8_t* where;
    std::uint32_t value;
    unsigned size;
  };
  std::vector<Fixup> fixups;
  // Ranges written behind the CPU's back since it last ran: [begin, end).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> stale;
  bool flush_all = true;
  std::unordered_map<std::uint32_t, std::uint32_t> scs_store;  // unmodelled SCS registers
  std::uint32_t pc = 0;                                        // valid while not emulating

  static void on_code(uc_engine* uc, std::uint64_t addr, std::uint32_t, void* user) {
    auto* core = static_cast<CortexM*>(user);
    if (core->executed_ >= core->budget_) {
      core->stop_reason_ = StopReason::budget;
      uc_emu_stop(uc);
      return;
    }
    if (core->deferred_stop_ != StopReason::none) {
      core->stop_reason_ = core->deferred_stop_;
      core->deferred_stop_ = StopReason::none;
      uc_emu_stop(uc);
      return;
    }
    if ((core->dhcsr_ctrl_ & kCDebugEn) && core->breakpoint_at(static_cast<std::uint32_t>(addr))) {
      core->stop_reason_ = StopReason::breakpoint;
      uc_emu_stop(uc);
      return;
    }
    ++core->executed_;
  }

  static void on_interrupt(uc_engine* uc, std::uint32_t intno, void* user) {
    auto* core = static_cast<CortexM*>(user);
    // unicorn's EXCP_BKPT is 7; anything else (UDF, SVC, faults) has no handler model
    // and is treated as a lockup.
    core->stop_reason_ = intno == 7 ? StopReason::bkpt_instruction : StopReason::fault;
    if (core->executed_ > 0) --core->executed_;  // the BKPT did not retire
    uc_emu_stop(uc);
  }

  static bool on_flash_store(uc_engine*, uc_mem_type, std::uint64_t addr, int size,
                             std::int64_t value, void* user) {
    auto* core = static_cast<CortexM*>(user);
    for (auto& mapping : core->impl_->flash) {
      if (addr < mapping->base || addr >= mapping->base + mapping->memory.size()) continue;
      core->sync_clock();
      const auto a = static_cast<std::uint32_t>(addr);
      const auto v = static_cast<std::uint32_t>(value);
      BusResponse r = mapping->on_write(a, v, static_cast<unsigned>(size));
      // The AHB stalls the store until the controller is free (RM0008 3.3.3: a write
      // while BSY is held until the ongoing operation ends).
      for (int tries = 0; r.status == BusStatus::busy && tries < 1000; ++tries) {
        const Picoseconds now = core->env_.clock.now();
        if (r.busy_until > now) core->stall_ += r.busy_until - now;
        core->sync_clock();
        r = mapping->on_write(a, v, static_cast<unsigned>(size));
      }
      std::uint8_t* where = mapping->memory.data() + (a - mapping->base);
      std::uint32_t keep = 0;
      std::copy_n(where, size, reinterpret_cast<std::uint8_t*>(&keep));
      // Stopping here would make unicorn replay the store, so the raw value unicorn is
      // about to write stays in the mirror until the chunk ends (finish of execute()).
      core->impl_->fixups.push_back({where, keep, static_cast<unsigned>(size)});
      return true;
    }
    return false;
  }

  static void on_watch(uc_engine*, uc_mem_type, std::uint64_t addr, int size, std::int64_t,
                       void* user) {
    auto* core = static_cast<CortexM*>(user);
    if (!(core->dhcsr_ctrl_ & kCDebugEn)) return;
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t function = core->dwt_function_[i] & 0xF;
      if (function < 5 || function > 7) continue;
      const std::uint32_t mask = (1u << (core->dwt_mask_[i] & 0x1F)) - 1;
      const std::uint32_t lo = core->dwt_comp_[i] & ~mask;
      const std::uint32_t a = static_cast<std::uint32_t>(addr);
      if (a + static_cast<std::uint32_t>(size) <= lo || a > (lo | mask)) continue;
      core->dwt_function_[i] |= 1u << 24;  // MATCHED
      // Halt after the access completes (the DWT halt is imprecise): stopping inside a
      // memory hook would make unicorn replay the instruction.
      core->deferred_stop_ = StopReason::watchpoint;
    }
  }

  static std::uint64_t io_read(uc_engine*, std::uint64_t offset, unsigned size, void* user) {
    auto* m = static_cast<IoMapping*>(user);
    m->core->sync_clock();
    return m->read(m->base + static_cast<std::uint32_t>(offset), size);
  }

  static void io_write(uc_engine*, std::uint64_t offset, unsigned size, std::uint64_t value,
                       void* user) {
    auto* m = static_cast<IoMapping*>(user);
    m->core->sync_clock();
    m->write(m->base + static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(value), size);
  }

  std::uint32_t reg(int id) const {
    std::uint32_t v = 0;
    uc_reg_read(uc, id, &v);
    return v;
  }
  void set_reg(int id, std::uint32_t v) { uc_reg_write(uc, id, &v); }
};

CortexM::CortexM(Environment env) : env_(std::move(env)), impl_(std::make_unique<Impl>()) {
  check(uc_open(UC_ARCH_ARM, static_cast<uc_mode>(UC_MODE_THUMB | UC_MODE_MCLASS), &impl_->uc),
        "uc_open");
  const int model = env_.chip.core == CoreKind::cortex_m3    ? UC_CPU_ARM_CORTEX_M3
                    : env_.chip.core == CoreKind::cortex_m4f ? UC_CPU_ARM_CORTEX_M4
                                                             : UC_CPU_ARM_CORTEX_M7;
  check(uc_ctl_set_cpu_model(impl_->uc, model), "uc_ctl_set_cpu_model");
  check(uc_hook_add(impl_->uc, &impl_->code_hook, UC_HOOK_CODE,
                    reinterpret_cast<void*>(&Impl::on_code), this, 1, 0),
        "uc_hook_add(code)");
  check(uc_hook_add(impl_->uc, &impl_->interrupt_hook, UC_HOOK_INTR,
                    reinterpret_cast<void*>(&Impl::on_interrupt), this, 1, 0),
        "uc_hook_add(intr)");
  // FPB: ARMv7-M ARM C1.11. Cortex-M3/M4 implement FPB revision 0 with 6 instruction and
  // 2 literal comparators; the Cortex-M7 implements revision 1 with 8 instruction
  // comparators (DDI 0489 "FPB programmers' model").
  fp_ctrl_ = env_.chip.core == CoreKind::cortex_m7 ? (1u << 28) | (8u << 4) : (2u << 8) | (6u << 4);
  // DWT: 4 comparators on all three cores (TRMs, "DWT programmers' model").
  dwt_ctrl_ = 4u << 28;
}

CortexM::~CortexM() {
  uc_close(impl_->uc);
}

void CortexM::map_ram(std::uint32_t base, std::span<std::uint8_t> memory) {
  check(uc_mem_map_ptr(impl_->uc, base, memory.size(), UC_PROT_ALL, memory.data()),
        "uc_mem_map_ptr(ram)");
}

void CortexM::map_flash(std::uint32_t base, std::span<std::uint8_t> memory, FlashWrite on_write) {
  check(uc_mem_map_ptr(impl_->uc, base, memory.size(), UC_PROT_READ | UC_PROT_EXEC, memory.data()),
        "uc_mem_map_ptr(flash)");
  impl_->flash.push_back(
      std::make_unique<Impl::FlashMapping>(Impl::FlashMapping{base, memory, std::move(on_write)}));
  if (impl_->flash.size() == 1) {
    uc_hook hook;
    check(uc_hook_add(impl_->uc, &hook, UC_HOOK_MEM_WRITE_PROT,
                      reinterpret_cast<void*>(&Impl::on_flash_store), this, 1, 0),
          "uc_hook_add(flash)");
  }
}

void CortexM::map_io(std::uint32_t base, std::uint32_t size, IoRead read, IoWrite write) {
  impl_->io.push_back(std::make_unique<Impl::IoMapping>(
      Impl::IoMapping{this, base, std::move(read), std::move(write)}));
  check(uc_mmio_map(impl_->uc, base, size, &Impl::io_read, impl_->io.back().get(), &Impl::io_write,
                    impl_->io.back().get()),
        "uc_mmio_map");
}

std::uint32_t CortexM::pc() const {
  return impl_->reg(UC_ARM_REG_PC);
}

bool CortexM::breakpoint_at(std::uint32_t addr) const {
  if (!(fp_ctrl_ & 1)) return false;
  const bool rev1 = (fp_ctrl_ >> 28) != 0;
  const unsigned code_comparators = ((fp_ctrl_ >> 8) & 0x70) | ((fp_ctrl_ >> 4) & 0xF);
  for (unsigned i = 0; i < code_comparators && i < 8; ++i) {
    const std::uint32_t comp = fp_comp_[i];
    if (!(comp & 1)) continue;
    if (rev1) {
      // C1.11.5, FPB revision 1: BPADDR[31:1], BE is bit 0.
      if ((comp & ~1u) == addr) return true;
      continue;
    }
    // FPB revision 0: COMP[28:2] word address in the Code region; REPLACE selects the
    // half-word(s) that break (01 lower, 10 upper, 11 both; 00 is a remap, not a break).
    if (addr >= 0x20000000) continue;
    const std::uint32_t word = comp & 0x1FFFFFFC;
    const std::uint32_t replace = comp >> 30;
    if ((replace & 1) && addr == word) return true;
    if ((replace & 2) && addr == word + 2) return true;
  }
  return false;
}

void CortexM::sync_clock() {
  env_.clock.advance_to(chunk_start_ + cycles_to_ps(executed_, chunk_hz_) + stall_);
}

void CortexM::run_until(Picoseconds until) {
  while (running() && env_.clock.now() < until) {
    const std::uint32_t hz = std::max<std::uint32_t>(env_.core_hz(), 1);
    // Clamp the span so that span * hz cannot overflow 64 bits.
    const Picoseconds span = std::min<Picoseconds>(until - env_.clock.now(), 10 * kMillisecond);
    const std::uint64_t cycles = span * hz / kSecond + 1;
    const bool ok = execute(std::min(cycles, kChunkInstructions));
    if (!ok) {
      // No fault-handler model: an access to nothing, an undefined instruction or an
      // exception escalates to lockup (ARMv7-M ARM B1.5.15), as a core without a usable
      // HardFault handler would end up.
      state_ = State::lockup;
      return;
    }
    switch (stop_reason_) {
      case StopReason::bkpt_instruction:
        if (dhcsr_ctrl_ & kCDebugEn) {
          halt(kDfsrBkpt);
        } else {
          state_ = State::lockup;  // BKPT without a debugger escalates to HardFault
        }
        return;
      case StopReason::breakpoint:
        halt(kDfsrBkpt);
        return;
      case StopReason::watchpoint:
        halt(kDfsrDwtTrap);
        return;
      case StopReason::none:
        if (executed_ < budget_) {
          // unicorn returns early on WFI/WFE. There are no interrupt sources in the
          // model, so the core sleeps until the debugger halts it.
          state_ = State::sleeping;
          env_.clock.advance_to(until);
          return;
        }
        break;
      default:
        break;
    }
    if (pending_system_reset_) {
      pending_system_reset_ = false;
      env_.system_reset_request();
    }
  }
}

void CortexM::invalidate_code(std::uint32_t addr, std::uint32_t length) {
  auto& stale = impl_->stale;
  const std::uint64_t end = std::uint64_t{addr} + length;
  // Debuggers write memory sequentially: extend the last range rather than keep many.
  if (!stale.empty() && addr <= stale.back().second && end >= stale.back().first) {
    stale.back().first = std::min<std::uint64_t>(stale.back().first, addr);
    stale.back().second = std::max(stale.back().second, end);
    return;
  }
  if (stale.size() >= 64) {
    impl_->flush_all = true;
    stale.clear();
    return;
  }
  stale.emplace_back(addr, end);
}

void CortexM::drop_stale_code() {
  // Dropping only the written ranges keeps the rest of the translation cache: a full
  // flush costs milliseconds and a debugger writes RAM while loaders run.
  if (impl_->flush_all) {
    uc_ctl(impl_->uc, UC_CTL_WRITE(UC_CTL_TB_FLUSH, 0));
  } else {
    for (const auto& [begin, end] : impl_->stale)
      uc_ctl_remove_cache(impl_->uc, begin, end);
  }
  impl_->flush_all = false;
  impl_->stale.clear();
}

bool CortexM::execute(std::uint64_t budget) {
  drop_stale_code();
  if (watch_hooks_dirty_) update_watchpoint_hooks();
  chunk_hz_ = std::max<std::uint32_t>(env_.core_hz(), 1);
  chunk_start_ = env_.clock.now();
  budget_ = budget;
  executed_ = 0;
  stall_ = 0;
  stop_reason_ = StopReason::none;
  in_emulation_ = true;
  const uc_err err = uc_emu_start(impl_->uc, impl_->reg(UC_ARM_REG_PC) | 1, 0xFFFFFFFF, 0, 0);
  in_emulation_ = false;
  if (deferred_stop_ != StopReason::none) {
    stop_reason_ = deferred_stop_;
    deferred_stop_ = StopReason::none;
  }
  sync_clock();
  for (const auto& f : impl_->fixups)
    std::copy_n(reinterpret_cast<const std::uint8_t*>(&f.value), f.size, f.where);
  impl_->fixups.clear();  // the controller already reported the range as changed
  if (executed_ > 0) s_retire_ = true;
  if ((dwt_ctrl_ & 1) && (demcr_ & kTrcEna)) dwt_cyccnt_ += static_cast<std::uint32_t>(executed_);
  return err == UC_ERR_OK && stop_reason_ != StopReason::fault;
}

void CortexM::halt(std::uint32_t dfsr_reason) {
  state_ = State::halted;
  dfsr_ |= dfsr_reason;
  dhcsr_ctrl_ |= kCHalt;
}

void CortexM::resume() {
  if (state_ == State::halted || state_ == State::sleeping) state_ = State::running;
}

// --- Private peripheral bus -------------------------------------------------------------

std::uint32_t CortexM::ppb_read(std::uint32_t addr, unsigned size) {
  const std::uint32_t word_addr = addr & ~3u;
  std::uint32_t word = 0;
  const ComponentId* component = nullptr;
  const bool m3 = env_.chip.core == CoreKind::cortex_m3;
  const bool m7 = env_.chip.core == CoreKind::cortex_m7;
  // Arm JEP106: identity 0x3B, continuation 4. ST: identity 0x20, continuation 0.
  const ComponentId components[] = {
      {kScsBase, 0xE, static_cast<std::uint16_t>(m3 ? 0x000 : 0x00C), 0x3B, 4},
      {kDwtBase, 0xE, 0x002, 0x3B, 4},
      {kFpbBase, 0xE, static_cast<std::uint16_t>(m7 ? 0x00E : 0x003), 0x3B, 4},
      {kItmBase, 0xE, 0x001, 0x3B, 4},
      {kTpiuBase, 0x9,
       static_cast<std::uint16_t>(m3   ? 0x923
                                  : m7 ? 0x9A9
                                       : 0x9A1),
       0x3B, 4},
      {kRomTable, 0x1, static_cast<std::uint16_t>(env_.chip.dbgmcu_idcode & 0xFFF), 0x20, 0},
  };
  for (const auto& c : components) {
    if (word_addr >= c.base + 0xFD0 && word_addr < c.base + 0x1000) component = &c;
  }
  if (component) {
    word = component_id_register(*component, word_addr - component->base);
  } else if (word_addr >= kRomTable && word_addr < kRomTable + 0xFD0) {
    // ROM table entries (ADIv5.2 D3.4): signed offsets from the table, present + 32-bit
    // format. SCS, DWT, FPB, ITM, TPIU, then the end marker.
    const std::uint32_t entries[] = {kScsBase, kDwtBase, kFpbBase, kItmBase, kTpiuBase};
    const std::uint32_t index = (word_addr - kRomTable) / 4;
    if (index < 5) word = ((entries[index] - kRomTable) & 0xFFFFF000) | 0x3;
    if (word_addr == kRomTable + 0xFCC) word = 1;  // MEMTYPE: system memory present
  } else if (word_addr >= kScsBase && word_addr < kScsBase + 0x1000) {
    word = scs_read(word_addr);
  } else if (word_addr >= kDwtBase && word_addr < kDwtBase + 0x1000) {
    word = dwt_read(word_addr - kDwtBase);
  } else if (word_addr >= kFpbBase && word_addr < kFpbBase + 0x1000) {
    word = fpb_read(word_addr - kFpbBase);
  } else {
    auto it = impl_->scs_store.find(word_addr);
    word = it == impl_->scs_store.end() ? 0 : it->second;
  }
  return lane_read(word, addr, size);
}

void CortexM::ppb_write(std::uint32_t addr, std::uint32_t value, unsigned size) {
  const std::uint32_t word_addr = addr & ~3u;
  if (size != 4) {
    // Sub-word writes to debug registers: merge into the current value (registers with
    // read side effects are only ever written as words by debuggers).
    value = lane_merge(ppb_read(word_addr, 4), addr, value, size);
  }
  if (word_addr >= kScsBase && word_addr < kScsBase + 0x1000) {
    scs_write(word_addr, value);
  } else if (word_addr >= kDwtBase && word_addr < kDwtBase + 0x1000) {
    dwt_write(word_addr - kDwtBase, value);
  } else if (word_addr >= kFpbBase && word_addr < kFpbBase + 0x1000) {
    fpb_write(word_addr - kFpbBase, value);
  } else if (word_addr < kRomTable) {
    impl_->scs_store[word_addr] = value;  // ITM, TPIU, ETM: stored, no behaviour
  }
}

std::uint32_t CortexM::scs_read(std::uint32_t addr) {
  const bool fpu = env_.chip.core != CoreKind::cortex_m3;
  switch (addr) {
    case kCpuid:
      return env_.chip.cpuid;
    case kAircr: {
      auto it = impl_->scs_store.find(kAircr);
      return kVectKeyStat | ((it == impl_->scs_store.end() ? 0 : it->second) & 0x700);
    }
    case kDfsr:
      return dfsr_;
    case kDhcsr: {
      std::uint32_t v = dhcsr_ctrl_ & (kCDebugEn | kCHalt | kCStep | kCMaskInts | kCSnapStall);
      if (s_regrdy_) v |= kSRegRdy;
      if (state_ == State::halted) v |= kSHalt;
      if (state_ == State::sleeping) v |= kSSleep;
      if (state_ == State::lockup) v |= kSLockup;
      if (s_retire_) v |= kSRetireSt;
      if (s_reset_ || reset_held_) v |= kSResetSt;
      // S_RETIRE_ST and S_RESET_ST are cleared by the read (C1.6.2).
      s_retire_ = false;
      s_reset_ = false;
      return v;
    }
    case kDcrsr:
      return 0;
    case kDcrdr:
      return dcrdr_;
    case kDemcr:
      return demcr_;
    // Floating-point feature registers (B4.6): Cortex-M4F and M7 single-precision
    // FPv4/FPv5 values from the TRMs; zero on the Cortex-M3.
    case kMvfr0:
      return fpu ? 0x10110021 : 0;
    case kMvfr1:
      return fpu ? 0x11000011 : 0;
    case kMvfr2:
      return env_.chip.core == CoreKind::cortex_m7 ? 0x00000040 : 0;
    default: {
      auto it = impl_->scs_store.find(addr);
      return it == impl_->scs_store.end() ? 0 : it->second;
    }
  }
}

void CortexM::scs_write(std::uint32_t addr, std::uint32_t value) {
  switch (addr) {
    case kCpuid:
    case kMvfr0:
    case kMvfr1:
    case kMvfr2:
      return;  // read-only
    case kAircr:
      if ((value & 0xFFFF0000) != kVectKey) return;  // writes without VECTKEY are ignored
      impl_->scs_store[kAircr] = value & 0x700;      // PRIGROUP
      if (value & kSysResetReq) {
        if (in_emulation_) {
          pending_system_reset_ = true;
          deferred_stop_ = StopReason::reset;
        } else {
          env_.system_reset_request();
        }
      } else if (value & kVectReset) {
        if (!in_emulation_) core_reset();
      }
      return;
    case kDfsr:
      dfsr_ &= ~value;
      return;  // write-one-to-clear
    case kDhcsr:
      write_dhcsr(value);
      return;
    case kDcrsr:
      register_transfer(value);
      return;
    case kDcrdr:
      dcrdr_ = value;
      return;
    case kDemcr:
      demcr_ = value & 0x010F07F1;
      return;
    default:
      // NVIC_IPRn and SHPRn: 4 implemented priority bits per field on STM32, the low
      // nibble reads as zero (PM0056/PM0214/PM0253 4.2.7 and 4.4.8).
      if ((addr >= 0xE000E400 && addr < 0xE000E4F0) || (addr >= 0xE000ED18 && addr < 0xE000ED24)) {
        value &= 0xF0F0F0F0;
      }
      impl_->scs_store[addr] = value;
      return;
  }
}

void CortexM::write_dhcsr(std::uint32_t value) {
  // C1.6.2: writes without DBGKEY in [31:16] are ignored; C_DEBUGEN can only be changed
  // by the debugger (the core itself cannot write it, which this model ignores).
  if ((value & 0xFFFF0000) != kDbgKey) return;
  const std::uint32_t ctrl = value & (kCDebugEn | kCHalt | kCStep | kCMaskInts | kCSnapStall);
  dhcsr_ctrl_ = ctrl;
  if (!(ctrl & kCDebugEn)) {
    dhcsr_ctrl_ = 0;
    resume();
    return;
  }
  if (ctrl & kCHalt) {
    if (state_ == State::running || state_ == State::sleeping) halt(kDfsrHalted);
    if (state_ == State::lockup) state_ = State::halted;
    return;
  }
  if (state_ != State::halted) return;
  if (ctrl & kCStep) {
    // Single step: exactly one instruction, then halt again with DFSR.HALTED.
    state_ = State::running;
    const bool ok = execute(1);
    if (!ok) {
      state_ = State::lockup;
    } else if (stop_reason_ == StopReason::bkpt_instruction ||
               stop_reason_ == StopReason::breakpoint) {
      halt(kDfsrBkpt);
    } else if (stop_reason_ == StopReason::watchpoint) {
      halt(kDfsrDwtTrap | kDfsrHalted);
    } else {
      halt(kDfsrHalted);
    }
    if (pending_system_reset_) {
      pending_system_reset_ = false;
      env_.system_reset_request();
    }
    return;
  }
  resume();
}

void CortexM::register_transfer(std::uint32_t dcrsr) {
  // C1.6.3 DCRSR: REGSEL[6:0], REGWnR bit 16. Transfers only happen in Debug state.
  if (state_ != State::halted) {
    s_regrdy_ = false;
    return;
  }
  s_regrdy_ = true;
  const std::uint32_t regsel = dcrsr & 0x7F;
  const bool write = dcrsr & (1u << 16);
  const bool fpu = env_.chip.core != CoreKind::cortex_m3;
  int id = -1;
  if (regsel <= 12) {
    id = UC_ARM_REG_R0 + static_cast<int>(regsel);
  } else if (regsel == 13) {
    id = UC_ARM_REG_SP;
  } else if (regsel == 14) {
    id = UC_ARM_REG_LR;
  } else if (regsel == 15) {
    id = UC_ARM_REG_PC;
  } else if (regsel == 16) {
    id = UC_ARM_REG_XPSR;
  } else if (regsel == 17 || regsel == 18 || regsel == 20) {
    special_register_transfer(regsel, write);
    return;
  } else if (fpu && regsel == 0x21) {
    id = UC_ARM_REG_FPSCR;
  } else if (fpu && regsel >= 0x40 && regsel <= 0x5F) {
    id = UC_ARM_REG_S0 + static_cast<int>(regsel - 0x40);
  }
  if (id < 0) return;  // reserved selector: DCRDR is UNKNOWN, leave it
  if (write) {
    std::uint32_t v = dcrdr_;
    if (id == UC_ARM_REG_PC) v &= ~1u;
    impl_->set_reg(id, v);
    if (id == UC_ARM_REG_XPSR) impl_->set_reg(UC_ARM_REG_XPSR_NZCVQG, v);
  } else {
    dcrdr_ = impl_->reg(id);
    if (id == UC_ARM_REG_XPSR) dcrdr_ |= 1u << 24;  // EPSR.T: the core only runs Thumb
  }
}

void CortexM::special_register_transfer(std::uint32_t regsel, bool write) {
  // DCRSR transfers are debugger accesses and ignore the core's privilege (C1.6.3), but
  // unicorn reaches these registers through its MSR/MRS logic, which obeys CONTROL.nPRIV.
  // Handler mode is always privileged: enter it for the access and restore xPSR after.
  const std::uint32_t xpsr = impl_->reg(UC_ARM_REG_XPSR);
  impl_->set_reg(UC_ARM_REG_XPSR, (xpsr & ~0x1FFu) | 3);
  const bool fpu = env_.chip.core != CoreKind::cortex_m3;
  // STM32s implement 4 priority bits: BASEPRI[3:0] read as zero (PM0214 2.1.3).
  if (regsel == 17 || regsel == 18) {
    const int id = regsel == 17 ? UC_ARM_REG_MSP : UC_ARM_REG_PSP;
    if (write) {
      impl_->set_reg(id, dcrdr_ & ~3u);
    } else {
      dcrdr_ = impl_->reg(id);
    }
  } else if (write) {
    // CONTROL[31:24], FAULTMASK[23:16], BASEPRI[15:8], PRIMASK[7:0].
    impl_->set_reg(UC_ARM_REG_PRIMASK, dcrdr_ & 1);
    impl_->set_reg(UC_ARM_REG_BASEPRI, (dcrdr_ >> 8) & 0xF0);
    impl_->set_reg(UC_ARM_REG_FAULTMASK, (dcrdr_ >> 16) & 1);
    impl_->set_reg(UC_ARM_REG_CONTROL, 0);
  } else {
    dcrdr_ = (impl_->reg(UC_ARM_REG_PRIMASK) & 1) | ((impl_->reg(UC_ARM_REG_BASEPRI) & 0xF0) << 8) |
             ((impl_->reg(UC_ARM_REG_FAULTMASK) & 1) << 16) |
             ((impl_->reg(UC_ARM_REG_CONTROL) & 7) << 24);
  }
  impl_->set_reg(UC_ARM_REG_XPSR, xpsr);
  // SPSEL is only written in Thread mode, so CONTROL goes last, from privileged Thread mode.
  if (write && regsel == 20) impl_->set_reg(UC_ARM_REG_CONTROL, (dcrdr_ >> 24) & (fpu ? 7 : 3));
}

std::uint32_t CortexM::dwt_read(std::uint32_t offset) {
  if (offset == 0x000) return dwt_ctrl_;
  if (offset == 0x004) return dwt_cyccnt_;
  if (offset == 0x01C) return state_ == State::running ? pc() : 0xFFFFFFFF;  // PCSR
  if (offset >= 0x020 && offset < 0x060) {
    const unsigned n = (offset - 0x020) / 16;
    switch ((offset - 0x020) % 16) {
      case 0x0:
        return dwt_comp_[n];
      case 0x4:
        return dwt_mask_[n];
      case 0x8: {
        const std::uint32_t v = dwt_function_[n];
        dwt_function_[n] &= ~(1u << 24);  // MATCHED clears on read (C1.8.17)
        return v;
      }
      default:
        return 0;
    }
  }
  auto it = impl_->scs_store.find(kDwtBase + offset);
  return it == impl_->scs_store.end() ? 0 : it->second;
}

void CortexM::dwt_write(std::uint32_t offset, std::uint32_t value) {
  if (offset == 0x000) {
    dwt_ctrl_ = (dwt_ctrl_ & 0xFFFF0000) | (value & 0xFFFF);
  } else if (offset == 0x004) {
    dwt_cyccnt_ = value;
  } else if (offset >= 0x020 && offset < 0x060) {
    const unsigned n = (offset - 0x020) / 16;
    switch ((offset - 0x020) % 16) {
      case 0x0:
        dwt_comp_[n] = value;
        break;
      case 0x4:
        dwt_mask_[n] = value & 0x1F;
        break;
      case 0x8:
        dwt_function_[n] = (dwt_function_[n] & (1u << 24)) | (value & 0x000F0FFF);
        break;
      default:
        break;
    }
    watch_hooks_dirty_ = true;
  } else {
    impl_->scs_store[kDwtBase + offset] = value;
  }
}

void CortexM::update_watchpoint_hooks() {
  watch_hooks_dirty_ = false;
  for (uc_hook h : impl_->watch_hooks)
    uc_hook_del(impl_->uc, h);
  impl_->watch_hooks.clear();
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t function = dwt_function_[i] & 0xF;
    if (function < 5 || function > 7) continue;
    const std::uint32_t mask = (1u << (dwt_mask_[i] & 0x1F)) - 1;
    const std::uint32_t lo = dwt_comp_[i] & ~mask;
    int type = 0;
    if (function & 1) type |= UC_HOOK_MEM_READ;
    if (function & 2) type |= UC_HOOK_MEM_WRITE;
    if (function == 7) type = UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE;
    uc_hook h;
    if (uc_hook_add(impl_->uc, &h, type, reinterpret_cast<void*>(&Impl::on_watch), this, lo,
                    lo | mask) == UC_ERR_OK) {
      impl_->watch_hooks.push_back(h);
    }
  }
}

std::uint32_t CortexM::fpb_read(std::uint32_t offset) {
  if (offset == 0x000) return fp_ctrl_;
  if (offset == 0x004) return 0;  // FP_REMAP: no remap support
  if (offset >= 0x008 && offset < 0x028) return fp_comp_[(offset - 0x008) / 4];
  return 0;
}

void CortexM::fpb_write(std::uint32_t offset, std::uint32_t value) {
  if (offset == 0x000) {
    // C1.11.3: the write is ignored unless KEY (bit 1) is written as 1.
    if (value & 2) fp_ctrl_ = (fp_ctrl_ & ~1u) | (value & 1);
  } else if (offset >= 0x008 && offset < 0x028) {
    fp_comp_[(offset - 0x008) / 4] = value;
  }
}

// --- Reset ------------------------------------------------------------------------------

void CortexM::core_reset() {
  // B1.5.5 reset behaviour: SP_main from the vector table entry 0, PC from entry 1 (EPSR.T
  // from its bit 0), LR UNKNOWN (0xFFFFFFFF here), special registers cleared. The boot
  // address is the flash alias at 0 (BOOT0 low) or, on the F7, BOOT_ADD0 = 0x0080 ->
  // 0x00200000 (RM0385 2.4).
  const std::uint32_t boot = env_.chip.flash_style == FlashStyle::f7 ? 0x00200000 : 0x00000000;
  std::uint32_t vectors[2] = {0, 0};
  uc_mem_read(impl_->uc, boot, vectors, sizeof vectors);
  for (int r = UC_ARM_REG_R0; r <= UC_ARM_REG_R12; ++r)
    impl_->set_reg(r, 0);
  impl_->set_reg(UC_ARM_REG_CONTROL, 0);
  impl_->set_reg(UC_ARM_REG_PRIMASK, 0);
  impl_->set_reg(UC_ARM_REG_FAULTMASK, 0);
  impl_->set_reg(UC_ARM_REG_BASEPRI, 0);
  impl_->set_reg(UC_ARM_REG_PSP, 0);
  impl_->set_reg(UC_ARM_REG_MSP, vectors[0] & ~3u);
  impl_->set_reg(UC_ARM_REG_LR, 0xFFFFFFFF);
  impl_->set_reg(UC_ARM_REG_XPSR, 1u << 24);
  impl_->set_reg(UC_ARM_REG_PC, vectors[1] & ~1u);
  // System control space registers outside the debug domain return to reset values.
  for (auto it = impl_->scs_store.begin(); it != impl_->scs_store.end();) {
    it = (it->first >= kScsBase && it->first < kScsBase + 0x1000) ? impl_->scs_store.erase(it)
                                                                  : std::next(it);
  }
  impl_->flush_all = true;
  s_reset_ = true;
  dhcsr_ctrl_ &= ~(kCHalt | kCStep);
  state_ = State::running;
  if ((demcr_ & kVcCoreReset) && (dhcsr_ctrl_ & kCDebugEn)) halt(kDfsrVCatch);
}

void CortexM::set_reset_held(bool held) {
  if (held == reset_held_) return;
  reset_held_ = held;
  if (!held) core_reset();
}

void CortexM::debug_power_on_reset() {
  dhcsr_ctrl_ = 0;
  dfsr_ = 0;
  demcr_ = 0;
  dcrdr_ = 0;
  fp_ctrl_ &= ~1u;
  std::fill(std::begin(fp_comp_), std::end(fp_comp_), 0);
  dwt_ctrl_ &= 0xFFFF0000;
  dwt_cyccnt_ = 0;
  std::fill(std::begin(dwt_comp_), std::end(dwt_comp_), 0);
  std::fill(std::begin(dwt_mask_), std::end(dwt_mask_), 0);
  std::fill(std::begin(dwt_function_), std::end(dwt_function_), 0);
  watch_hooks_dirty_ = true;
  impl_->scs_store.clear();
}

}  // namespace probefarm::sim
