// protocol::CortexM on simulated boards running the demo firmware (firmware/demo), through
// SimDapProbe: identification, run control, registers, resets, algorithm runs, FPB
// breakpoints and DWT watchpoints.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/sim_dap_probe.hpp"
#include "probe/error.hpp"
#include "protocol/cortex_m.hpp"
#include "protocol/dap.hpp"

namespace probefarm::protocol {
namespace {

using test::SimDapProbe;
using test::SimTarget;

constexpr std::uint32_t kDemoCounter = 0x20002000;  // firmware/demo/demo.h
constexpr std::uint32_t kCode = 0x20000100;         // scratch code in SRAM
constexpr std::uint32_t kStackTop = 0x20001800;
constexpr std::uint32_t kDemcr = 0xE000EDFC;

std::uint32_t le32(const std::vector<std::uint8_t>& d, std::size_t off) {
  return d[off] | std::uint32_t{d[off + 1]} << 8 | std::uint32_t{d[off + 2]} << 16 |
         std::uint32_t{d[off + 3]} << 24;
}

struct Expect {
  const char* chip;
  const char* name;
  bool fpu;
  unsigned breakpoints;
};

class CortexMChip : public ::testing::TestWithParam<Expect> {
 protected:
  CortexMChip()
      : image_(test::demo_firmware(GetParam().chip)),
        target_(GetParam().chip, image_),
        probe_(target_.board()),
        dap_(probe_) {}

  void SetUp() override {
    ASSERT_FALSE(image_.empty()) << "demo firmware for " << GetParam().chip;
    ASSERT_NO_THROW(dap_.connect());
    mem_ = std::make_unique<MemAp>(dap_, dap_.system_ap().index);
    core_ = std::make_unique<CortexM>(*mem_);
    core_->examine();
  }

  // The reset vector (vector table word 1, Thumb bit dropped) as the core sees it: the F7
  // boots from the ITCM alias of the flash (RM0385 2.4).
  std::uint32_t reset_vector() const { return le32(image_, 4) & ~1u; }
  bool in_demo_code(std::uint32_t pc) const {
    const std::uint32_t base = pc >= 0x08000000 ? 0x08000000 : pc >= 0x00200000 ? 0x00200000 : 0;
    return pc >= base && pc < base + image_.size();
  }
  // Lets the target run for a while (each probe round trip advances its clock).
  void let_run(unsigned polls) {
    for (unsigned i = 0; i < polls; ++i)
      ASSERT_FALSE(core_->is_halted());
  }
  bool wait_halt(unsigned polls) {
    for (unsigned i = 0; i < polls; ++i) {
      if (core_->is_halted()) return true;
    }
    return false;
  }
  void load_thumb(std::uint32_t addr, const std::vector<std::uint16_t>& code) {
    std::vector<std::uint8_t> bytes;
    for (std::uint16_t h : code) {
      bytes.push_back(static_cast<std::uint8_t>(h));
      bytes.push_back(static_cast<std::uint8_t>(h >> 8));
    }
    mem_->write(addr, bytes);
  }

  std::vector<std::uint8_t> image_;
  SimTarget target_;
  SimDapProbe probe_;
  Dap dap_;
  std::unique_ptr<MemAp> mem_;
  std::unique_ptr<CortexM> core_;
};

TEST_P(CortexMChip, ExamineNamesTheCore) {
  const CoreIdentity& id = core_->identity();
  EXPECT_EQ(id.cpuid, target_.board().chip().cpuid);
  EXPECT_EQ(id.name, GetParam().name);
  EXPECT_EQ(id.has_fpu, GetParam().fpu);
  EXPECT_EQ(id.breakpoints, GetParam().breakpoints);
  EXPECT_EQ(id.watchpoints, 4u);
  EXPECT_NE(mem_->read32(0xE000EDF0) & 1u, 0u) << "C_DEBUGEN set";
  EXPECT_FALSE(core_->is_halted()) << "examine does not halt";
}

TEST_P(CortexMChip, HaltStepResume) {
  let_run(3);
  core_->halt();
  EXPECT_TRUE(core_->is_halted());
  EXPECT_TRUE(core_->halt_reason().halted_request);
  const std::uint32_t counter = mem_->read32(kDemoCounter);
  const std::uint32_t pc = core_->read_register(CoreRegister::pc);
  EXPECT_TRUE(in_demo_code(pc)) << std::hex << pc;
  // Halted: time passes, the counter does not move.
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(mem_->read32(kDemoCounter), counter);
  core_->step();
  EXPECT_TRUE(core_->is_halted());
  EXPECT_TRUE(core_->halt_reason().halted_request);
  const std::uint32_t pc2 = core_->read_register(CoreRegister::pc);
  EXPECT_NE(pc2, pc) << "one instruction executed";
  EXPECT_TRUE(in_demo_code(pc2));
  core_->resume();
  let_run(3);
  EXPECT_GT(mem_->read32(kDemoCounter), counter);
}

TEST_P(CortexMChip, RegisterReadWrite) {
  EXPECT_THROW(
      {
        try {
          core_->read_register(CoreRegister::r0);
        } catch (const Error& e) {
          EXPECT_EQ(e.category(), ErrorCategory::usage);
          throw;
        }
      },
      Error);
  core_->halt();
  for (unsigned r = 0; r <= 12; ++r)
    core_->write_register(static_cast<CoreRegister>(r), 0x10203000u + r);
  for (unsigned r = 0; r <= 12; ++r)
    EXPECT_EQ(core_->read_register(static_cast<CoreRegister>(r)), 0x10203000u + r) << "r" << r;
  core_->write_register(CoreRegister::lr, 0x08000123);
  EXPECT_EQ(core_->read_register(CoreRegister::lr), 0x08000123u);
  core_->write_register(CoreRegister::msp, 0x20001000);
  EXPECT_EQ(core_->read_register(CoreRegister::msp), 0x20001000u);
  EXPECT_EQ(core_->read_register(CoreRegister::sp), 0x20001000u) << "SP is MSP in Thread mode";
  core_->write_register(CoreRegister::psp, 0x20000800);
  EXPECT_EQ(core_->read_register(CoreRegister::psp), 0x20000800u);
  EXPECT_NE(core_->read_register(CoreRegister::xpsr) & 0x01000000u, 0u) << "EPSR.T";
}

// Register transfers go through the MEM-AP's banked registers (BD0..BD2): after the halt
// check, three AP accesses per register (DCRDR, DCRSR, DHCSR) and no TAR write between
// them, in one flush.
TEST_P(CortexMChip, RegisterWritesAreBatchedThroughBankedRegisters) {
  core_->halt();
  probe_.reset_stats();
  for (unsigned r = 0; r <= 7; ++r)
    core_->write_register(static_cast<CoreRegister>(r), 0xCAFE0000u + r);
  // Eight single writes: per write one halt-check flush (CSW/TAR at most + DRW) and one
  // flush of the transfer.
  EXPECT_EQ(probe_.stats().flushes, 16u);
  EXPECT_LE(probe_.stats().operations, 8u * (3 + 3));
  probe_.reset_stats();
  EXPECT_EQ(core_->read_register(CoreRegister::r5), 0xCAFE0005u);
  EXPECT_EQ(probe_.stats().flushes, 2u);
  EXPECT_LE(probe_.stats().operations, 3u + 3u);
}

// runs() counts what lets the core execute code of its own; algorithm runs do not.
TEST_P(CortexMChip, RunsCountsResumesStepsAndResetsNotAlgorithms) {
  core_->halt();
  const std::uint64_t before = core_->runs();
  load_thumb(kCode, {0x1840, 0x4770, 0xBE00});
  AlgorithmCall call;
  call.entry = kCode;
  call.args = {1u, 2u, std::nullopt, std::nullopt};
  call.stack_top = kStackTop;
  call.return_bkpt = kCode + 4;
  EXPECT_EQ(core_->run_algorithm(call, std::chrono::milliseconds(500)), 3u);
  EXPECT_EQ(core_->runs(), before);
  core_->step();
  EXPECT_EQ(core_->runs(), before + 1);
  core_->resume();
  EXPECT_EQ(core_->runs(), before + 2);
  core_->reset(ResetKind::sysresetreq, true);
  EXPECT_EQ(core_->runs(), before + 3);
}

// Every reset kind, with and without halt. Before each, the core is parked in an
// infinite loop in SRAM: after the reset it must be at the reset vector (halt) or back in
// the demo, counting (no halt).
TEST_P(CortexMChip, ResetKinds) {
  for (ResetKind kind : {ResetKind::sysresetreq, ResetKind::vectreset, ResetKind::hardware}) {
    for (bool halt : {true, false}) {
      SCOPED_TRACE(std::string("kind ") + std::to_string(static_cast<int>(kind)) +
                   (halt ? " halt" : " run"));
      core_->halt();
      load_thumb(kCode, {0xE7FE});  // b .
      core_->write_register(CoreRegister::pc, kCode);
      core_->resume();
      let_run(2);
      core_->halt();
      ASSERT_EQ(core_->read_register(CoreRegister::pc), kCode);
      core_->resume();
      const std::uint64_t pulses = probe_.stats().nrst_pulses;
      ASSERT_NO_THROW(core_->reset(kind, halt));
      EXPECT_EQ(probe_.stats().nrst_pulses, pulses + (kind == ResetKind::hardware ? 1 : 0));
      EXPECT_EQ(mem_->read32(kDemcr) & 1u, 0u) << "VC_CORERESET cleared again";
      if (halt) {
        EXPECT_TRUE(core_->is_halted());
        EXPECT_TRUE(core_->halt_reason().vector_catch);
        EXPECT_EQ(core_->read_register(CoreRegister::pc), reset_vector());
        EXPECT_EQ(core_->read_register(CoreRegister::msp), le32(image_, 0));
        core_->resume();
      }
      let_run(3);
      core_->halt();
      const std::uint32_t pc = core_->read_register(CoreRegister::pc);
      EXPECT_TRUE(in_demo_code(pc)) << std::hex << pc;
      const std::uint32_t before = mem_->read32(kDemoCounter);
      core_->resume();
      let_run(3);
      EXPECT_NE(mem_->read32(kDemoCounter), before) << "demo running";
    }
  }
}

// Connect under reset (catch_reset / finish_reset_catch): with the SWD-OFF jumper fitted the
// demo takes the SWD pins after reset, so a plain reset-and-run loses the DAP; with nRST
// held while the catch is armed, the core halts at the reset vector with the pins still
// SWD, and VC_CORERESET is cleared again.
TEST_P(CortexMChip, ResetCatchUnderNrstHaltsBeforeTheFirmwareRuns) {
  target_.board().set_swd_off_jumper(true);
  probe_.set_nrst(true);
  const std::uint32_t demcr = core_->catch_reset();
  EXPECT_EQ(demcr & 1u, 0u);
  probe_.set_nrst(false);
  ASSERT_NO_THROW(core_->finish_reset_catch(demcr));
  EXPECT_TRUE(target_.board().swd_pins_connected()) << "the firmware ran and took the pins";
  EXPECT_TRUE(core_->is_halted());
  EXPECT_TRUE(core_->halt_reason().vector_catch);
  EXPECT_EQ(core_->read_register(CoreRegister::pc), reset_vector());
  EXPECT_EQ(mem_->read32(kDemcr) & 1u, 0u) << "VC_CORERESET cleared again";

  // Without the catch, the same firmware takes the pins: the DAP stops answering, and the
  // error suggests connecting under reset.
  try {
    core_->resume();
    for (int i = 0; i < 3; ++i)
      core_->is_halted();
    ADD_FAILURE() << "the DAP answered with the SWD pins off";
  } catch (const Error& e) {
    EXPECT_FALSE(target_.board().swd_pins_connected());
    EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
    EXPECT_NE(e.hint().find("--connect-under-reset"), std::string::npos) << e.hint();
  }
  target_.board().set_swd_off_jumper(false);
}

// adds r0, r0, r1; bx lr — returning into a BKPT.
TEST_P(CortexMChip, RunAlgorithmReturnsR0) {
  core_->halt();
  load_thumb(kCode, {0x1840, 0x4770, 0xBE00});
  AlgorithmCall call;
  call.entry = kCode;
  call.args = {40u, 2u, std::nullopt, std::nullopt};
  call.stack_top = kStackTop;
  call.return_bkpt = kCode + 4;
  EXPECT_EQ(core_->run_algorithm(call, std::chrono::milliseconds(500)), 42u);
  EXPECT_TRUE(core_->is_halted());
  EXPECT_TRUE(core_->halt_reason().breakpoint);
  EXPECT_EQ(core_->read_register(CoreRegister::msp), kStackTop);
  // Unset arguments are left alone: r1 keeps the value it had.
  call.args = {7u, std::nullopt, std::nullopt, std::nullopt};
  EXPECT_EQ(core_->run_algorithm(call, std::chrono::milliseconds(500)), 9u);
  // Non-blocking form.
  call.args = {100u, 23u, std::nullopt, std::nullopt};
  core_->start_algorithm(call);
  ASSERT_TRUE(wait_halt(50));
  EXPECT_TRUE(core_->algorithm_done());
  EXPECT_EQ(core_->finish_algorithm(call), 123u);
}

TEST_P(CortexMChip, AlgorithmTimeoutHaltsTheCore) {
  core_->halt();
  load_thumb(kCode, {0xE7FE, 0xBE00});  // b . (never returns)
  AlgorithmCall call;
  call.entry = kCode;
  call.stack_top = kStackTop;
  call.return_bkpt = kCode + 2;
  try {
    core_->run_algorithm(call, std::chrono::milliseconds(50));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::timeout);
    EXPECT_NE(std::string(e.message()).find("0x20000100"), std::string::npos) << e.message();
  }
  EXPECT_TRUE(core_->is_halted());
  EXPECT_EQ(core_->read_register(CoreRegister::pc), kCode);
}

TEST_P(CortexMChip, AlgorithmStoppingElsewhereIsAnError) {
  core_->halt();
  load_thumb(kCode, {0xBE01, 0xBE00});  // bkpt 1 at the entry, return bkpt after it
  AlgorithmCall call;
  call.entry = kCode;
  call.stack_top = kStackTop;
  call.return_bkpt = kCode + 2;
  try {
    core_->run_algorithm(call, std::chrono::milliseconds(500));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
    EXPECT_NE(std::string(e.message()).find("PC 0x20000100"), std::string::npos) << e.message();
  }
}

// An FPB breakpoint on the demo's main loop: the running firmware hits it; resuming steps
// over it and the next loop iteration hits it again.
TEST_P(CortexMChip, BreakpointOnDemoCode) {
  let_run(3);
  core_->halt();
  const std::uint32_t pc = core_->read_register(CoreRegister::pc);
  ASSERT_TRUE(in_demo_code(pc));
  core_->set_breakpoint(pc);
  core_->resume();
  ASSERT_TRUE(wait_halt(20));
  EXPECT_TRUE(core_->halt_reason().breakpoint);
  EXPECT_EQ(core_->read_register(CoreRegister::pc), pc);
  // The address may be in the pattern loop (16 passes per counter step): after 20 hits
  // the outer loop has gone round at least once, which proves resume steps over the
  // breakpoint instead of stopping on it again in place.
  const std::uint32_t counter = mem_->read32(kDemoCounter);
  for (int hit = 0; hit < 20; ++hit) {
    core_->resume();
    ASSERT_TRUE(wait_halt(20));
    ASSERT_TRUE(core_->halt_reason().breakpoint);
    ASSERT_EQ(core_->read_register(CoreRegister::pc), pc);
  }
  const std::uint32_t after = mem_->read32(kDemoCounter);
  EXPECT_GT(after, counter);
  EXPECT_LE(after, counter + 2) << "stopped on every pass";
  // Step from the breakpoint: one instruction, not stuck on it.
  core_->step();
  EXPECT_NE(core_->read_register(CoreRegister::pc), pc);
  core_->clear_breakpoint(pc);
  core_->resume();
  let_run(5);
}

TEST_P(CortexMChip, BreakpointsRunOut) {
  const unsigned n = core_->identity().breakpoints;
  for (unsigned i = 0; i < n; ++i)
    core_->set_breakpoint(0x08000100 + 2 * i);
  try {
    core_->set_breakpoint(0x08000400);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::usage);
  }
  core_->clear_breakpoint(0x08000100);
  EXPECT_NO_THROW(core_->set_breakpoint(0x08000400));
}

// A DWT write watchpoint on demo_counter halts the core with DFSR.DWTTRAP.
TEST_P(CortexMChip, WatchpointOnDemoCounter) {
  let_run(3);
  core_->set_watchpoint(kDemoCounter, 4, WatchKind::write);
  ASSERT_TRUE(wait_halt(20));
  const HaltReason why = core_->halt_reason();
  EXPECT_TRUE(why.watchpoint);
  EXPECT_FALSE(why.breakpoint);
  const std::uint32_t counter = mem_->read32(kDemoCounter);
  core_->resume();
  ASSERT_TRUE(wait_halt(20));
  EXPECT_TRUE(core_->halt_reason().watchpoint);
  EXPECT_EQ(mem_->read32(kDemoCounter), counter + 1);
  core_->clear_watchpoint(kDemoCounter);
  // A read watchpoint on a word the demo only writes never fires.
  core_->set_watchpoint(kDemoCounter + 4, 4, WatchKind::read);
  core_->resume();
  let_run(5);
  EXPECT_THROW(core_->set_watchpoint(kDemoCounter + 2, 4, WatchKind::read), Error);
}

INSTANTIATE_TEST_SUITE_P(ProtocolCortexM, CortexMChip,
                         ::testing::Values(Expect{"stm32f103c8", "Cortex-M3 r1p1", false, 6},
                                           Expect{"stm32f407vg", "Cortex-M4 r0p1", true, 6},
                                           Expect{"stm32f746ng", "Cortex-M7 r1p0", true, 8}),
                         [](const ::testing::TestParamInfo<Expect>& info) {
                           return std::string(info.param.chip);
                         });

}  // namespace
}  // namespace probefarm::protocol
