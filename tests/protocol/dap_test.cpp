// protocol::Dap and protocol::MemAp against simulated boards through SimDapProbe.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "common/sim_dap_probe.hpp"
#include "probe/error.hpp"
#include "protocol/dap.hpp"
#include "sw_dp.hpp"

namespace probefarm::protocol {
namespace {

using test::SimDapProbe;
using test::SimTarget;

constexpr std::uint32_t kSram = 0x20000000;
// Unmapped on every simulated chip (FSMC bank 1 region, nothing fitted).
constexpr std::uint32_t kUnmapped = 0x60000000;

std::string chip_name(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

class DapChip : public ::testing::TestWithParam<const char*> {
 protected:
  DapChip() : target_(GetParam()), probe_(target_.board()), dap_(probe_) {}

  void SetUp() override {
    ASSERT_NO_THROW(dap_.connect());
    mem_ = std::make_unique<MemAp>(dap_, dap_.system_ap().index);
  }

  SimTarget target_;
  SimDapProbe probe_;
  Dap dap_;
  std::unique_ptr<MemAp> mem_;
};

// ADIv5.2 B2.2: DPIDR as the chip reports it; C2.6: one AHB-AP at APSEL 0 with the ROM
// table BASE of a Cortex-M (0xE00FF003), and no AP behind it (IDR 0 ends the scan).
TEST_P(DapChip, ConnectFindsDpAndAhbAp) {
  const sim::ChipInfo& chip = target_.board().chip();
  EXPECT_EQ(dap_.dpidr(), chip.dpidr);
  ASSERT_EQ(dap_.aps().size(), 1u);
  const ApInfo& ap = dap_.aps()[0];
  EXPECT_EQ(ap.index, 0u);
  EXPECT_EQ(ap.idr, chip.ap_idr);
  EXPECT_TRUE(ap.is_mem_ap);
  EXPECT_TRUE(ap.is_ahb);
  EXPECT_EQ(ap.base, 0xE00FF003u);
  EXPECT_EQ(&dap_.system_ap(), &dap_.aps()[0]);
  EXPECT_NE(dap_.csw_at_connect(0), 0u);
  EXPECT_TRUE(target_.board().swd().debug_powered());
  // CTRL/STAT: both power-up ACKs, no sticky flag.
  const std::uint32_t ctrl = dap_.clear_sticky_errors();
  EXPECT_EQ(ctrl & 0xF0000000u, 0xF0000000u);
  EXPECT_EQ(ctrl & 0xB2u, 0u);
}

TEST_P(DapChip, WordRoundTrip) {
  mem_->write32(kSram + 0x100, 0xDEADBEEF);
  EXPECT_EQ(mem_->read32(kSram + 0x100), 0xDEADBEEFu);
  mem_->write16(kSram + 0x102, 0x1234);
  EXPECT_EQ(mem_->read32(kSram + 0x100), 0x1234BEEFu);
  EXPECT_EQ(mem_->read16(kSram + 0x100), 0xBEEFu);
  EXPECT_EQ(mem_->read16(kSram + 0x102), 0x1234u);
  mem_->write8(kSram + 0x101, 0x55);
  mem_->write8(kSram + 0x103, 0xAA);
  EXPECT_EQ(mem_->read32(kSram + 0x100), 0xAA3455EFu);
  for (std::uint32_t i = 0; i < 4; ++i)
    EXPECT_EQ(mem_->read8(kSram + 0x100 + i), (0xAA3455EFu >> (8 * i)) & 0xFF) << i;
}

// Every start alignment and several lengths, across the 1 KiB TAR wrap at 0x20000400 and
// the 4 KiB one at 0x20001000; the bytes around the range must stay untouched.
TEST_P(DapChip, BlockRoundTripsAtOddAlignments) {
  const std::uint32_t guard_base = kSram + 0x300;
  std::vector<std::uint8_t> guard(0x1000, 0xA5);
  mem_->write(guard_base, guard);
  for (std::uint32_t start :
       {kSram + 0x3FD, kSram + 0x3FE, kSram + 0x3FF, kSram + 0x400, kSram + 0x3F1, kSram + 0xFFF}) {
    for (std::size_t length : {1u, 2u, 3u, 5u, 7u, 64u, 1031u, 2050u}) {
      if (start + length > guard_base + guard.size() - 16) continue;
      std::vector<std::uint8_t> data(length);
      std::iota(data.begin(), data.end(), static_cast<std::uint8_t>(start + length));
      mem_->write(start, data);
      std::vector<std::uint8_t> back(length + 8);
      mem_->read(start - 4, back);
      for (std::size_t k = 0; k < 4; ++k)
        ASSERT_EQ(back[k], 0xA5) << "below 0x" << std::hex << start << " len " << length;
      for (std::size_t k = 0; k < length; ++k)
        ASSERT_EQ(back[4 + k], data[k]) << "at 0x" << std::hex << start + k << " len " << length;
      for (std::size_t k = 0; k < 4; ++k)
        ASSERT_EQ(back[4 + length + k], 0xA5)
            << "above 0x" << std::hex << start << " len " << length;
      mem_->write(start, std::vector<std::uint8_t>(length, 0xA5));
    }
  }
}

// N queued writes and reads go out in one probe flush.
TEST_P(DapChip, QueuedAccessesShareOneFlush) {
  mem_->write32(kSram, 0);  // CSW written once
  probe_.reset_stats();
  for (std::uint32_t i = 0; i < 32; ++i)
    mem_->queue_write32(kSram + 0x800 + 4 * i, 0x1000 + i);
  std::vector<std::uint32_t> back(32);
  for (std::uint32_t i = 0; i < 32; ++i)
    mem_->queue_read32(kSram + 0x800 + 4 * i, &back[i]);
  EXPECT_EQ(probe_.stats().flushes, 0u);
  mem_->flush();
  EXPECT_EQ(probe_.stats().flushes, 1u);
  for (std::uint32_t i = 0; i < 32; ++i)
    EXPECT_EQ(back[i], 0x1000 + i);
}

// Sequential word accesses write TAR once (auto-increment), CSW not at all once cached;
// a change of access size rewrites CSW only.
TEST_P(DapChip, CswAndTarCaching) {
  mem_->write32(kSram, 0);
  probe_.reset_stats();
  for (std::uint32_t i = 0; i < 16; ++i)
    mem_->queue_write32(kSram + 0x40 + 4 * i, i);
  mem_->flush();
  EXPECT_EQ(probe_.stats().ap_writes, 16u + 1u) << "16 DRW + one TAR";
  probe_.reset_stats();
  EXPECT_EQ(mem_->read32(kSram + 0x80), 0u) << "TAR already there";
  EXPECT_EQ(probe_.stats().ap_writes, 0u);
  EXPECT_EQ(probe_.stats().ap_reads, 1u);
  probe_.reset_stats();
  mem_->write8(kSram + 0x84, 1);
  EXPECT_EQ(probe_.stats().ap_writes, 2u) << "CSW (size) + DRW, TAR followed";
  probe_.reset_stats();
  mem_->read32(kSram + 0x200);
  EXPECT_EQ(probe_.stats().ap_writes, 2u) << "CSW + TAR";
  // Block reads spanning a 1 KiB boundary: one TAR write per KiB block.
  std::vector<std::uint8_t> buf(2048);
  mem_->read32(kSram);
  probe_.reset_stats();
  mem_->read(kSram + 0x200, buf);
  EXPECT_EQ(probe_.stats().ap_writes, 3u) << "TAR at 0x200, 0x400, 0x800";
  EXPECT_EQ(probe_.stats().ap_reads, 512u);
  EXPECT_EQ(probe_.stats().flushes, 1u);
}

// WAIT beyond the probe's per-packet retries: Dap::flush re-issues from the failure point
// and the data still lands where it should.
TEST_P(DapChip, WaitIsRetried) {
  std::vector<std::uint8_t> data(256);
  std::iota(data.begin(), data.end(), 1);
  probe_.reset_stats();
  target_.board().swd().inject_wait(100);  // > the probe's 64 retries: two flushes at least
  mem_->write(kSram + 0x500, data);
  EXPECT_GE(probe_.stats().flushes, 2u);
  target_.board().swd().inject_wait(150);
  std::vector<std::uint8_t> back(256);
  mem_->read(kSram + 0x500, back);
  EXPECT_EQ(back, data);
  target_.board().swd().inject_wait(70);
  EXPECT_EQ(mem_->read32(kSram + 0x500), 0x04030201u);
}

TEST_P(DapChip, EndlessWaitIsATimeout) {
  target_.board().swd().inject_wait(1000000);
  try {
    mem_->read32(kSram);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::timeout);
    EXPECT_NE(std::string(e.message()).find("0x20000000"), std::string::npos) << e.message();
  }
  target_.board().swd().inject_wait(0);
  mem_->write32(kSram, 7);
  EXPECT_EQ(mem_->read32(kSram), 7u);
}

// FAULT: a bus error sets STICKYERR; the error names the address, the sticky flag is
// cleared, and the next access works (with CSW/TAR re-sent).
TEST_P(DapChip, FaultNamesAddressAndRecovers) {
  for (int round = 0; round < 2; ++round) {
    try {
      if (round == 0) {
        mem_->read32(kUnmapped);
      } else {
        mem_->write32(kUnmapped + 8, 1);
      }
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
      const std::string msg(e.message());
      EXPECT_NE(msg.find(round == 0 ? "0x60000000" : "0x60000008"), std::string::npos) << msg;
      EXPECT_NE(msg.find("STICKYERR"), std::string::npos) << msg;
    }
    mem_->write32(kSram + 4, 0x11223344);
    EXPECT_EQ(mem_->read32(kSram + 4), 0x11223344u);
  }
  // A fault in the middle of a batch: what came before it happened, what came after it
  // did not.
  mem_->write32(kSram + 0x14, 0);
  mem_->queue_write32(kSram + 0x10, 0xAAAA0001);
  mem_->queue_write32(kUnmapped, 2);
  mem_->queue_write32(kSram + 0x14, 0xAAAA0003);
  try {
    mem_->flush();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.message()).find("0x60000000"), std::string::npos) << e.message();
  }
  EXPECT_EQ(mem_->read32(kSram + 0x10), 0xAAAA0001u);
  EXPECT_EQ(mem_->read32(kSram + 0x14), 0u);
}

// A reset that dropped the debug power-up request (some chips reset the DP with the
// system) is noticed from CTRL/STAT and undone.
TEST_P(DapChip, EnsurePoweredRestoresPowerUp) {
  EXPECT_FALSE(dap_.ensure_powered());
  dap_.queue_dp_write(probe::kDpCtrlStat, 0);
  dap_.flush("power down");
  EXPECT_FALSE(target_.board().swd().debug_powered());
  EXPECT_TRUE(dap_.ensure_powered());
  EXPECT_TRUE(target_.board().swd().debug_powered());
  mem_->write32(kSram, 9);
  EXPECT_EQ(mem_->read32(kSram), 9u);
}

// Operations queued straight on the probe go out with Dap::flush too.
TEST_P(DapChip, FlushSendsDirectProbeQueue) {
  std::uint32_t idr = 0;
  std::uint32_t ctrl = 0;
  dap_.probe().queue_ap_read(0, 0xFC, &idr);
  dap_.probe().queue_dp_read(probe::kDpCtrlStat, &ctrl);
  dap_.flush("direct");
  EXPECT_EQ(idr, target_.board().chip().ap_idr);
  EXPECT_NE(ctrl & 0x20000000u, 0u);
  // A posted read's data must not leak into the next one.
  std::uint32_t a = 0, b = 0;
  mem_->write32(kSram, 0x1111);
  mem_->write32(kSram + 4, 0x2222);
  mem_->queue_read32(kSram, &a);
  mem_->queue_read32(kSram + 4, &b);
  mem_->flush();
  EXPECT_EQ(a, 0x1111u);
  EXPECT_EQ(b, 0x2222u);
}

// A sticky flag already set when the queue starts is the first operation's failure.
TEST_P(DapChip, NoResponseWhenPinsAreOff) {
  target_.board().swd().set_pins_connected(false);
  try {
    mem_->read32(kSram);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
    EXPECT_NE(e.hint().find("--connect-under-reset"), std::string::npos);
  }
  target_.board().swd().set_pins_connected(true);
  // The DP kept its state; the MemAp re-sends CSW/TAR after the failure.
  mem_->write32(kSram, 5);
  EXPECT_EQ(mem_->read32(kSram), 5u);
}

// A board of its own (each simulated board holds a large CPU emulator).
class NativeMemoryChip : public ::testing::TestWithParam<const char*> {};

// ST-Link style: the probe's own memory commands, with MemAp's caches dropped around them.
TEST_P(NativeMemoryChip, RoundTripsAndFaults) {
  SimTarget target(GetParam());
  SimDapProbe::Options options;
  options.native_memory = true;
  SimDapProbe probe(target.board(), options);
  Dap dap(probe);
  dap.connect();
  MemAp mem(dap, dap.system_ap().index);
  std::vector<std::uint8_t> data(1500);
  std::iota(data.begin(), data.end(), 3);
  mem.write(kSram + 0x3FF, data);
  mem.write32(kSram, 0x01020304);  // TAR/DRW after native: CSW and TAR re-sent
  std::vector<std::uint8_t> back(data.size());
  mem.read(kSram + 0x3FF, back);
  EXPECT_EQ(back, data);
  EXPECT_EQ(mem.read32(kSram), 0x01020304u);
  EXPECT_EQ(mem.read8(kSram + 0x3FF), 3u);
  try {
    std::vector<std::uint8_t> bad(8);
    mem.read(kUnmapped, bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  }
  EXPECT_EQ(mem.read32(kSram), 0x01020304u);
}

INSTANTIATE_TEST_SUITE_P(ProtocolDap, DapChip,
                         ::testing::Values("stm32f103c8", "stm32f407vg", "stm32f746ng"), chip_name);
INSTANTIATE_TEST_SUITE_P(ProtocolDap, NativeMemoryChip,
                         ::testing::Values("stm32f103c8", "stm32f407vg", "stm32f746ng"), chip_name);

TEST(ProtocolDap, ConnectWithoutPowerFails) {
  SimTarget target("stm32f407vg");
  target.board().set_powered(false);
  SimDapProbe probe(target.board());
  Dap dap(probe);
  try {
    dap.connect();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_THROW(dap.system_ap(), Error);
}

}  // namespace
}  // namespace probefarm::protocol

namespace probefarm::protocol {
namespace {

// The test double itself: `completed` names the failing operation exactly, although a
// bus error only shows as FAULT on a later packet (posted writes and reads).
TEST(ProtocolSimDapProbe, CompletedIsExact) {
  SimTarget target("stm32f103c8");
  SimDapProbe probe(target.board());
  probe.connect();
  probe.queue_dp_write(probe::kDpAbort, 0x1E);
  probe.queue_dp_write(probe::kDpCtrlStat, 0x50000000);  // CDBGPWRUPREQ | CSYSPWRUPREQ
  ASSERT_TRUE(probe.flush().ok());

  probe.queue_ap_write(0, 0x00, 0x03000012);  // CSW: word, auto-increment
  probe.queue_ap_write(0, 0x04, 0x20000000);
  probe.queue_ap_write(0, 0x0C, 1);
  probe.queue_ap_write(0, 0x04, 0x60000000);
  probe.queue_ap_write(0, 0x0C, 2);  // bus error
  probe.queue_ap_write(0, 0x04, 0x20000004);
  probe.queue_ap_write(0, 0x0C, 3);
  probe::DapFlushResult r = probe.flush();
  EXPECT_EQ(r.ack, probe::DapAck::fault);
  EXPECT_EQ(r.completed, 4u);

  probe.queue_dp_write(probe::kDpAbort, 0x1E);
  std::uint32_t a = 0, b = 0, c = 0;
  probe.queue_ap_write(0, 0x04, 0x20000000);
  probe.queue_ap_read(0, 0x0C, &a);
  probe.queue_ap_write(0, 0x04, 0x60000000);
  probe.queue_ap_read(0, 0x0C, &b);  // bus error
  probe.queue_ap_read(0, 0x0C, &c);
  r = probe.flush();
  EXPECT_EQ(r.ack, probe::DapAck::fault);
  EXPECT_EQ(r.completed, 4u);
  EXPECT_EQ(a, 1u);

  // A write that fails as the last operation is caught by the closing RDBUFF read.
  probe.queue_dp_write(probe::kDpAbort, 0x1E);
  probe.queue_ap_write(0, 0x04, 0x60000000);
  probe.queue_ap_write(0, 0x0C, 5);
  r = probe.flush();
  EXPECT_EQ(r.ack, probe::DapAck::fault);
  EXPECT_EQ(r.completed, 2u);

  probe.queue_dp_write(probe::kDpAbort, 0x1E);
  ASSERT_TRUE(probe.flush().ok());
  target.board().swd().set_pins_connected(false);
  std::uint32_t ctrl = 0;
  probe.queue_dp_read(probe::kDpCtrlStat, &ctrl);
  r = probe.flush();
  EXPECT_EQ(r.ack, probe::DapAck::no_response);
  EXPECT_EQ(r.completed, 0u);
}

}  // namespace
}  // namespace probefarm::protocol
