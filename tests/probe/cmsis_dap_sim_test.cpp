// The CMSIS-DAP driver through the real libusb backend and the simulator's stand-in libusb:
// a CMSIS-DAP v1 (HID, STM32F303VC board) and a v2 (bulk, STM32F407VG board) probe.
#include <gtest/gtest.h>

#include <numeric>

#include "expect_error.hpp"
#include "probe/cmsis_dap.hpp"
#include "sim_fixture.hpp"

namespace probefarm::probe::test {
namespace {

// ADIv5.2 B2.2.2 CTRL/STAT: CSYSPWRUPREQ 30, CDBGPWRUPREQ 28, and their ACKs 31 and 29.
constexpr std::uint32_t kPowerUpReq = (1u << 30) | (1u << 28);
constexpr std::uint32_t kPowerUpAck = (1u << 31) | (1u << 29);
// ABORT: clear STKCMP, STKERR, WDERR, ORUNERR (B2.2.1).
constexpr std::uint32_t kAbortClearAll = 0x1E;
// MEM-AP registers (ADIv5.2 C2.6) and a CSW for 32-bit accesses with single auto-increment.
constexpr std::uint8_t kCsw = 0x00, kTar = 0x04, kDrw = 0x0C, kIdr = 0xFC;
constexpr std::uint32_t kCswWordInc = 0x23000012;
// ARMv7-M C1.6.2 DHCSR, S_RESET_ST (bit 25): the core was reset since the last read.
constexpr std::uint32_t kDhcsr = 0xE000EDF0;
constexpr std::uint32_t kSResetSt = 1u << 25;

struct Case {
  const char* kind;  // the simulator's probe name
  std::uint32_t dpidr;
  std::uint32_t ap_idr;
};

// Names the case in test listings (gtest would print the bytes, pointer included).
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.kind;
}

class CmsisDapSimTest : public SimTest, public ::testing::WithParamInterface<Case> {
 protected:
  std::unique_ptr<DapProbe> open() {
    ProbeList list = list_probes(*usb_);
    const ProbeInfo* p = find(list, serial());
    if (!p) throw std::runtime_error(std::string("no ") + GetParam().kind + " probe listed");
    return make_cmsis_dap(open_probe(*usb_, *p), *p);
  }
  std::string serial() { return serials_[GetParam().kind]; }

  // Connect and power up the debug domain, as protocol/ will.
  std::unique_ptr<DapProbe> connected() {
    auto probe = open();
    EXPECT_EQ(probe->connect(), GetParam().dpidr);
    probe->queue_dp_write(kDpAbort, kAbortClearAll);
    probe->queue_dp_write(kDpCtrlStat, kPowerUpReq);
    probe->queue_ap_write(0, kCsw, kCswWordInc);
    EXPECT_TRUE(probe->flush().ok());
    return probe;
  }

  static std::uint32_t read_word(DapProbe& probe, std::uint32_t address) {
    std::uint32_t v = 0;
    probe.queue_ap_write(0, kTar, address);
    probe.queue_ap_read(0, kDrw, &v);
    auto r = probe.flush();
    EXPECT_TRUE(r.ok()) << dap_ack_name(r.ack);
    return v;
  }
};

TEST_P(CmsisDapSimTest, ConnectReadsDpidrAndTheFirmwareVersion) {
  auto probe = open();
  EXPECT_NE(probe->info().firmware_version.find("CMSIS-DAP 2.1.0"), std::string::npos)
      << probe->info().firmware_version;
  EXPECT_EQ(probe->connect(), GetParam().dpidr);
  EXPECT_EQ(probe->target_voltage_mv(), -1);
  probe->disconnect();
  probe->disconnect();  // harmless when already disconnected
  EXPECT_EQ(probe->connect(), GetParam().dpidr);
}

TEST_P(CmsisDapSimTest, PowerUpAndApIdr) {
  auto probe = open();
  probe->connect();
  std::uint32_t ctrl = 0, idr = 0;
  probe->queue_dp_write(kDpAbort, kAbortClearAll);
  probe->queue_dp_write(kDpCtrlStat, kPowerUpReq);
  probe->queue_dp_read(kDpCtrlStat, &ctrl);
  probe->queue_ap_read(0, kIdr, &idr);
  auto r = probe->flush();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 4u);
  EXPECT_EQ(ctrl & kPowerUpAck, kPowerUpAck);
  EXPECT_EQ(idr, GetParam().ap_idr);
}

TEST_P(CmsisDapSimTest, FourKibOfSramRoundTripsThroughBlocks) {
  auto probe = connected();
  constexpr std::uint32_t kBase = 0x20000000;
  // TAR auto-increment is only guaranteed within 1 KiB (ADIv5.2 C2.2.2): one TAR write per
  // KiB, then `queue_block(k)` queues that KiB's 256 DRW words; all of it in one flush.
  auto per_kib = [&](auto&& queue_block) {
    for (std::size_t k = 0; k < 4; ++k) {
      probe->queue_ap_write(0, kTar, kBase + static_cast<std::uint32_t>(k * 1024));
      queue_block(k * 256);
    }
    auto r = probe->flush();
    EXPECT_TRUE(r.ok()) << dap_ack_name(r.ack);
    EXPECT_EQ(r.completed, 4u * 257u);
  };
  std::vector<std::uint32_t> data(1024);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::uint32_t>(0x9E3779B9u * (i + 1));
  per_kib([&](std::size_t at) {
    probe->queue_ap_write_block(0, kDrw, std::span(data).subspan(at, 256));
  });
  std::vector<std::uint32_t> back(1024, 0);
  per_kib([&](std::size_t at) {
    probe->queue_ap_read_block(0, kDrw, std::span(back).subspan(at, 256));
  });
  EXPECT_EQ(back, data);
}

TEST_P(CmsisDapSimTest, SpeedChangeKeepsTheLinkWorking) {
  auto probe = connected();
  EXPECT_EQ(probe->set_speed_khz(1800), 1800u);
  EXPECT_EQ(probe->set_speed_khz(100), 100u);
  probe->queue_ap_write(0, kTar, 0x20000010);
  probe->queue_ap_write(0, kDrw, 0x12345678);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(read_word(*probe, 0x20000010), 0x12345678u);
  // A reconnect uses the speed set last.
  EXPECT_EQ(probe->connect(), GetParam().dpidr);
}

TEST_P(CmsisDapSimTest, NrstHoldsTheCoreInReset) {
  auto probe = connected();
  read_word(*probe, kDhcsr);  // S_RESET_ST from power-on is cleared by reading it
  EXPECT_EQ(read_word(*probe, kDhcsr) & kSResetSt, 0u);
  probe->set_nrst(true);
  EXPECT_NE(read_word(*probe, kDhcsr) & kSResetSt, 0u);
  probe->set_nrst(false);
  read_word(*probe, kDhcsr);
  EXPECT_EQ(read_word(*probe, kDhcsr) & kSResetSt, 0u);
}

TEST_P(CmsisDapSimTest, UnmappedReadFaultsWithTheRightCount) {
  auto probe = connected();
  std::uint32_t good = 0, bad = 0xDEAD, after = 0xBEEF;
  probe->queue_ap_write(0, kTar, 0x20000000);
  probe->queue_ap_read(0, kDrw, &good);
  probe->queue_ap_write(0, kTar, 0x30000000);  // nothing on the bus there
  probe->queue_ap_read(0, kDrw, &bad);
  probe->queue_ap_read(0, kIdr, &after);
  auto r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::fault);
  EXPECT_EQ(r.completed, 3u);  // the faulting read is the 4th operation
  EXPECT_EQ(bad, 0xDEADu);
  EXPECT_EQ(after, 0xBEEFu);
  // Recovery as protocol/ does it: clear the sticky flags through ABORT.
  probe->queue_dp_write(kDpAbort, kAbortClearAll);
  std::uint32_t idr = 0;
  probe->queue_ap_read(0, kIdr, &idr);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(idr, GetParam().ap_idr);
}

TEST_P(CmsisDapSimTest, WaitIsRetriedByTheProbeUpToItsBudget) {
  auto probe = connected();
  // A few WAITs are absorbed by DAP_TransferConfigure's retry count.
  ASSERT_EQ(ctl({"wait", serial(), "5"}), 0);
  EXPECT_EQ(read_word(*probe, 0x20000000), read_word(*probe, 0x20000000));
  // More than the budget: the flush reports WAIT where it stopped.
  ASSERT_EQ(ctl({"wait", serial(), "5000"}), 0);
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpCtrlStat, &v);  // exempt from WAIT (ADIv5.2 B4)
  probe->queue_ap_read(0, kIdr, &v);
  auto r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::wait);
  EXPECT_EQ(r.completed, 1u);
}

TEST_P(CmsisDapSimTest, UnplugIsProbeIo) {
  auto probe = connected();
  ASSERT_EQ(ctl({"unplug", serial()}), 0);
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  Error e = expect_error([&] { probe->flush(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_TRUE(contains(e.message(), serial())) << e.message();
  EXPECT_TRUE(contains(e.message(), "unplugged")) << e.message();
}

INSTANTIATE_TEST_SUITE_P(Probes, CmsisDapSimTest,
                         ::testing::Values(Case{"cmsis-dap-v1", 0x2BA01477, 0x24770011},
                                           Case{"cmsis-dap-v2", 0x2BA01477, 0x24770011}),
                         [](const auto& info) {
                           return std::string(info.param.kind).substr(10) == "v1" ? "V1" : "V2";
                         });

}  // namespace
}  // namespace probefarm::probe::test
