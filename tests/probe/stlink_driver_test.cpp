// The ST-Link driver against a scripted probe (stlink_fake.hpp): what it sends, how it
// reads answers, status mapping, WAIT retries, fault positions, firmware checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "expect_error.hpp"
#include "probe/bytes.hpp"
#include "stlink_fake.hpp"

namespace probefarm::probe::test {
namespace {

constexpr auto kEach = NativeMemory::WriteCheck::each_command;

std::shared_ptr<FakeStLinkState> v2() {
  return std::make_shared<FakeStLinkState>();
}

std::shared_ptr<FakeStLinkState> v3() {
  auto s = std::make_shared<FakeStLinkState>();
  s->hw = 3;
  s->jtag = 11;
  s->swim = 0;
  s->msd = 3;
  s->pid = 0x374E;
  s->out_ep = 0x01;
  return s;
}

// A driver on `s`, with the record of commands starting after it opened the probe.
std::unique_ptr<DapProbe> opened(const std::shared_ptr<FakeStLinkState>& s) {
  auto probe = make_fake_stlink(s);
  s->cdbs.clear();
  return probe;
}

// The same, connected, with the record starting after connect().
std::unique_ptr<DapProbe> connected(const std::shared_ptr<FakeStLinkState>& s) {
  auto probe = make_fake_stlink(s);
  probe->connect();
  s->cdbs.clear();
  return probe;
}

TEST(StLinkDriver, OpenReadsVersionAndUsesTheConfiguredEndpoints) {
  auto s = v2();
  auto probe = make_fake_stlink(s);
  EXPECT_EQ(probe->info().firmware_version, "V2J40S7");
  ASSERT_GE(s->cdbs.size(), 2u);
  EXPECT_EQ(s->cdbs[0][0], stc::kGetVersion);
  EXPECT_EQ(s->cdbs[1][0], stc::kGetCurrentMode);
  EXPECT_EQ(s->count(stc::kGetVersionEx), 0u);
  for (auto ep : s->out_endpoints)
    EXPECT_EQ(ep, 0x02);
  for (auto ep : s->in_endpoints)
    EXPECT_EQ(ep, 0x81);
}

TEST(StLinkDriver, V3AsksForTheExtendedVersion) {
  auto s = v3();
  auto probe = make_fake_stlink(s);
  EXPECT_EQ(probe->info().firmware_version, "V3J11M3");
  EXPECT_EQ(s->count(stc::kGetVersionEx), 1u);
  for (auto ep : s->out_endpoints)
    EXPECT_EQ(ep, 0x01);
}

TEST(StLinkDriver, V2_1VersionNamesMassStorage) {
  auto s = v2();
  s->swim = 0;
  s->msd = 27;
  s->pid = 0x374B;
  s->out_ep = 0x01;
  EXPECT_EQ(make_fake_stlink(s)->info().firmware_version, "V2J40M27");
}

TEST(StLinkDriver, LeavesDfuAndStaleDebugModes) {
  auto dfu = v2();
  dfu->mode = stc::kModeDfu;
  make_fake_stlink(dfu);
  EXPECT_EQ(dfu->count(stc::kDfuCommand, stc::kDfuExit), 1u);

  auto debug = v2();
  debug->mode = stc::kModeDebug;
  auto probe = make_fake_stlink(debug);
  EXPECT_EQ(debug->debug_count(stc::kExit), 1u);
  EXPECT_EQ(debug->mode, stc::kModeMass);
}

TEST(StLinkDriver, MissingEndpointsAreAProbeError) {
  auto s = v2();
  ProbeInfo info;
  info.kind = ProbeKind::stlink_v2;
  info.interface_number = 3;  // the fake has only interface 0
  Error e = expect_error([&] { make_stlink(std::make_unique<FakeStLinkDevice>(s), info); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_TRUE(contains(e.message(), "interface 3")) << e.message();
}

TEST(StLinkDriver, ConnectEntersSwdAndReadsDpidr) {
  auto s = v2();
  auto probe = opened(s);
  EXPECT_EQ(probe->connect(), 0x1BA01477u);
  ASSERT_EQ(s->cdbs.size(), 2u);
  EXPECT_EQ(s->cdbs[0], stc::cdb_enter_swd());
  EXPECT_EQ(s->cdbs[1], stc::cdb_read_dap_reg(stc::kDpPort, 0));
}

TEST(StLinkDriver, ConnectWithoutTargetNamesTheStatus) {
  auto s = v2();
  s->enter_status = stc::kDpError;
  s->adc1 = 0;  // VTref 0 V
  auto probe = make_fake_stlink(s);
  Error e = expect_error([&] { probe->connect(); });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_TRUE(contains(e.message(), "SWD_DP_ERROR")) << e.message();
  EXPECT_TRUE(contains(e.hint(), "0 mV")) << e.hint();
}

TEST(StLinkDriver, TooOldFirmwareIsRefusedWithTheMinimum) {
  auto s = v2();
  s->jtag = 23;
  auto probe = make_fake_stlink(s);
  EXPECT_EQ(probe->info().firmware_version, "V2J23S7");
  Error e = expect_error([&] { probe->connect(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_TRUE(contains(e.message(), "needs ST-Link firmware V2J24 or later")) << e.message();
  EXPECT_TRUE(contains(e.message(), "V2J23S7")) << e.message();
  EXPECT_TRUE(contains(e.hint(), "STM32CubeProgrammer")) << e.hint();
  EXPECT_EQ(s->debug_count(stc::kEnter), 0u);
}

TEST(StLinkDriver, FeatureMinimumsPerFirmware) {
  auto s = v2();
  s->jtag = 25;
  auto probe = connected(s);
  std::vector<std::uint8_t> buf(4);
  Error e16 = expect_error([&] { probe->native_memory()->read(0, 0x20000000, buf, 16); });
  EXPECT_TRUE(contains(e16.message(), "V2J26")) << e16.message();
  Error eap = expect_error([&] { probe->native_memory()->read(1, 0x20000000, buf, 32); });
  EXPECT_TRUE(contains(eap.message(), "V2J28")) << eap.message();
  std::uint32_t v = 0;
  Error ebank = expect_error([&] { probe->queue_dp_read(0x4, &v, 2); });
  EXPECT_TRUE(contains(ebank.message(), "V2J32")) << ebank.message();
  // Old firmware has no INIT_AP: AP0 is used without it.
  probe->queue_ap_read(0, 0xFC, &v);
  EXPECT_TRUE(probe->flush().ok());
  EXPECT_EQ(s->debug_count(stc::kInitAp), 0u);

  auto old_v3 = v3();
  old_v3->jtag = 1;
  auto p3 = connected(old_v3);
  Error e3 = expect_error([&] { p3->queue_dp_read(0x4, &v, 1); });
  EXPECT_TRUE(contains(e3.message(), "V3J2")) << e3.message();
}

TEST(StLinkDriver, RegisterOpsUseTheDapCommands) {
  auto s = v2();
  auto probe = connected(s);
  s->regs[1u << 16 | 0xFC] = 0x24770011;
  std::uint32_t idr = 0, ctrl = 0;
  probe->queue_dp_write(kDpCtrlStat, 0x50000000);
  probe->queue_dp_read(kDpCtrlStat, &ctrl);
  probe->queue_ap_read(1, 0xFC, &idr);
  probe->queue_dp_read(0x4, &ctrl, 1);  // DLCR: bank 1 in bits 7:4
  DapFlushResult r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 4u);
  EXPECT_EQ(idr, 0x24770011u);
  ASSERT_EQ(s->cdbs.size(), 5u);
  EXPECT_EQ(s->cdbs[0], stc::cdb_write_dap_reg(stc::kDpPort, 0x4, 0x50000000));
  EXPECT_EQ(s->cdbs[1], stc::cdb_read_dap_reg(stc::kDpPort, 0x4));
  EXPECT_EQ(s->cdbs[2], stc::cdb_init_ap(1));
  EXPECT_EQ(s->cdbs[3], stc::cdb_read_dap_reg(1, 0xFC));
  EXPECT_EQ(s->cdbs[4], stc::cdb_read_dap_reg(stc::kDpPort, 0x14));
  // INIT_AP once per AP and session.
  probe->queue_ap_read(1, 0xFC, &idr);
  EXPECT_TRUE(probe->flush().ok());
  EXPECT_EQ(s->debug_count(stc::kInitAp), 1u);
  probe->disconnect();
  probe->connect();
  probe->queue_ap_read(1, 0xFC, &idr);
  EXPECT_TRUE(probe->flush().ok());
  EXPECT_EQ(s->debug_count(stc::kInitAp), 2u);
}

TEST(StLinkDriver, WaitIsRetriedThenSucceeds) {
  auto s = v2();
  auto probe = connected(s);
  s->regs[0u << 16 | 0x0C] = 0x12345678;
  s->dap_status = {stc::kApWait, stc::kDpWait};
  std::uint32_t v = 0;
  probe->queue_ap_read(0, 0x0C, &v);
  DapFlushResult r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 1u);
  EXPECT_EQ(v, 0x12345678u);
  EXPECT_EQ(s->debug_count(stc::kReadDapReg), 3u);
}

TEST(StLinkDriver, EndlessWaitEndsAsWaitWithinTheBudget) {
  auto s = v2();
  auto probe = connected(s);
  std::uint32_t a = 0, b = 0;
  probe->queue_dp_read(kDpCtrlStat, &a);
  probe->queue_ap_read(0, 0x0C, &b);
  probe->queue_ap_read(0, 0x0C, &b);
  s->dap_status = {stc::kOk};
  s->dap_status.insert(s->dap_status.end(), 1000, stc::kApWait);
  DapFlushResult r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::wait);
  EXPECT_EQ(r.completed, 1u);
  // Bounded: more than one attempt, far fewer than the endless supply of WAITs.
  const std::size_t attempts = s->debug_count(stc::kReadDapReg) - 1;
  EXPECT_GT(attempts, 1u);
  EXPECT_LE(attempts, 20u);
}

TEST(StLinkDriver, FaultStopsTheQueueWithAnExactCount) {
  auto s = v2();
  auto probe = connected(s);
  std::vector<std::uint32_t> block(5);
  probe->queue_ap_write(0, 0x04, 0x20000000);
  probe->queue_ap_read_block(0, 0x0C, block);
  probe->queue_ap_write(0, 0x04, 0x20000100);
  // TAR write, two DRW reads, then FAULT on the third.
  s->dap_status = {stc::kOk, stc::kOk, stc::kOk, stc::kApFault};
  DapFlushResult r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::fault);
  EXPECT_EQ(r.completed, 3u);
  EXPECT_EQ(s->debug_count(stc::kReadDapReg) + s->debug_count(stc::kWriteDapReg), 4u);
  // The queue is empty afterwards.
  EXPECT_TRUE(probe->flush().ok());
  EXPECT_EQ(probe->flush().completed, 0u);
}

TEST(StLinkDriver, StatusMapping) {
  const std::pair<std::uint8_t, DapAck> cases[] = {
      {stc::kDpFault, DapAck::fault},
      {stc::kApStickyError, DapAck::fault},
      {stc::kApWdataError, DapAck::fault},
      {stc::kDpError, DapAck::no_response},
      {stc::kApError, DapAck::no_response},
      {stc::kApParityError, DapAck::protocol_error},
      {stc::kDpParityError, DapAck::protocol_error},
  };
  for (auto [status, ack] : cases) {
    auto s = v2();
    auto probe = connected(s);
    std::uint32_t v = 0;
    probe->queue_dp_read(kDpRdbuff, &v);
    s->dap_status = {status};
    DapFlushResult r = probe->flush();
    EXPECT_EQ(r.ack, ack) << stc::describe_status(status);
    EXPECT_EQ(r.completed, 0u);
  }
  // A command the firmware refuses is the probe's failure, not the target's.
  auto s = v2();
  auto probe = connected(s);
  probe->queue_dp_write(kDpAbort, 0x1E);
  s->dap_status = {stc::kCmdError};
  Error e = expect_error([&] { probe->flush(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_TRUE(contains(e.message(), "CMD_ERROR")) << e.message();
}

TEST(StLinkDriver, FlushBeforeConnectIsAUsageError) {
  auto probe = make_fake_stlink(v2());
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  EXPECT_EQ(expect_error([&] { probe->flush(); }).category(), ErrorCategory::usage);
}

TEST(StLinkDriver, SpeedV2UsesTheDivisorTable) {
  auto s = v2();
  auto probe = opened(s);
  EXPECT_EQ(probe->set_speed_khz(2000), 1800u);
  ASSERT_EQ(s->cdbs.size(), 1u);
  EXPECT_EQ(s->cdbs[0], stc::cdb_swd_set_freq(1));
  EXPECT_EQ(probe->set_speed_khz(1), 5u);
  EXPECT_EQ(s->cdbs[1], stc::cdb_swd_set_freq(798));
}

TEST(StLinkDriver, SpeedV3PicksFromTheProbesList) {
  auto s = v3();
  auto probe = opened(s);
  EXPECT_EQ(probe->set_speed_khz(2000), 1000u);
  ASSERT_EQ(s->cdbs.size(), 2u);
  EXPECT_EQ(s->cdbs[0], stc::cdb_get_com_freq());
  EXPECT_EQ(s->cdbs[1], stc::cdb_set_com_freq(1000));
  s->com_freqs = {15000, 7500};
  EXPECT_EQ(probe->set_speed_khz(10000), 7500u);
  EXPECT_EQ(probe->set_speed_khz(1), 7500u);
}

TEST(StLinkDriver, NrstAndVoltage) {
  auto s = v2();
  auto probe = opened(s);
  probe->set_nrst(true);
  probe->set_nrst(false);
  ASSERT_EQ(s->cdbs.size(), 2u);
  EXPECT_EQ(s->cdbs[0], stc::cdb_drive_nrst(true));
  EXPECT_EQ(s->cdbs[1], stc::cdb_drive_nrst(false));
  EXPECT_EQ(probe->target_voltage_mv(), 3301);
  s->adc0 = 0;
  EXPECT_EQ(probe->target_voltage_mv(), -1);
}

TEST(StLinkDriver, DisconnectExitsOnce) {
  auto s = v2();
  auto probe = connected(s);
  probe->disconnect();
  probe->disconnect();
  EXPECT_EQ(s->debug_count(stc::kExit), 1u);
}

TEST(StLinkDriver, NativeMemorySplitsAtKiBBoundariesAndChecksStatus) {
  auto s = v2();
  auto probe = connected(s);
  NativeMemory* mem = probe->native_memory();
  ASSERT_NE(mem, nullptr);
  std::vector<std::uint8_t> data(3000);
  std::iota(data.begin(), data.end(), std::uint8_t{7});
  mem->write(0, 0x200003F0, data, 32, kEach);
  // 16 bytes up to 0x20000400, then 1024, 1024 and the remaining 936.
  std::vector<std::pair<std::uint32_t, std::size_t>> chunks;
  for (const auto& c : s->cdbs) {
    if (c[1] != stc::kWriteMem32) continue;
    chunks.emplace_back(load_le32(c, 2), load_le16(c, 6));
  }
  const std::vector<std::pair<std::uint32_t, std::size_t>> want = {
      {0x200003F0, 16}, {0x20000400, 1024}, {0x20000800, 1024}, {0x20000C00, 936}};
  EXPECT_EQ(chunks, want);
  EXPECT_EQ(s->debug_count(stc::kGetLastRwStatus2), 4u);
  std::vector<std::uint8_t> back(3000);
  mem->read(0, 0x200003F0, back, 32);
  EXPECT_EQ(back, data);

  // Checked at the end: the same four commands, one status query after the last.
  s->cdbs.clear();
  std::reverse(data.begin(), data.end());
  mem->write(0, 0x200003F0, data, 32, NativeMemory::WriteCheck::at_end);
  EXPECT_EQ(s->debug_count(stc::kWriteMem32), 4u);
  ASSERT_EQ(s->debug_count(stc::kGetLastRwStatus2), 1u);
  EXPECT_EQ(s->cdbs.back(), stc::cdb_get_last_rw_status2());
  mem->read(0, 0x200003F0, back, 32);
  EXPECT_EQ(back, data);
}

TEST(StLinkDriver, WriteCheckedAtTheEndStillReportsAFailedLastCommand) {
  auto s = v2();
  auto probe = connected(s);
  std::vector<std::uint8_t> data(2048, 0x11);
  s->rw_status = {stc::kOk, stc::kApFault};  // the last command's: the only one asked for
  s->rw_fault_address = 0x20000500;
  Error e = expect_error([&] {
    probe->native_memory()->write(0, 0x20000000, data, 32, NativeMemory::WriteCheck::at_end);
  });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_TRUE(contains(e.message(), "0x20000500")) << e.message();
}

TEST(StLinkDriver, NativeMemoryEightBitLimits) {
  for (bool is_v3 : {false, true}) {
    auto s = is_v3 ? v3() : v2();
    auto probe = connected(s);
    std::vector<std::uint8_t> buf(1024);
    probe->native_memory()->read(0, 0x20000000, buf, 8);
    const std::size_t limit = is_v3 ? 512 : 64;
    EXPECT_EQ(s->debug_count(stc::kReadMem8), 1024 / limit);
    for (const auto& c : s->cdbs) {
      if (c[1] == stc::kReadMem8) {
        EXPECT_EQ(std::size_t(c[6] | c[7] << 8), limit);
      }
    }
  }
  // One byte comes back padded to two; only one lands in the caller's buffer.
  auto s = v2();
  s->mem[5] = 0xAB;
  auto probe = connected(s);
  std::uint8_t one[2] = {0, 0x5A};
  probe->native_memory()->read(0, 0x20000005, std::span(one, 1), 8);
  EXPECT_EQ(one[0], 0xAB);
  EXPECT_EQ(one[1], 0x5A);
}

TEST(StLinkDriver, NativeMemoryFaultNamesTheAddress) {
  auto s = v2();
  auto probe = connected(s);
  std::vector<std::uint8_t> buf(2048);
  s->rw_status = {stc::kOk, stc::kApFault};
  s->rw_fault_address = 0x20000410;
  Error e = expect_error([&] { probe->native_memory()->read(0, 0x20000000, buf, 32); });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_TRUE(contains(e.message(), "0x20000410")) << e.message();
  EXPECT_TRUE(contains(e.message(), "FAULT")) << e.message();
  // Sticky flags cleared through ABORT afterwards.
  ASSERT_FALSE(s->cdbs.empty());
  EXPECT_EQ(s->cdbs.back(), stc::cdb_write_dap_reg(stc::kDpPort, 0, 0x1E));
}

TEST(StLinkDriver, NativeMemoryRetriesWait) {
  auto s = v2();
  auto probe = connected(s);
  std::vector<std::uint8_t> data(8, 0xEE);
  s->rw_status = {stc::kApWait};
  probe->native_memory()->write(0, 0x20000010, data, 16, kEach);
  EXPECT_EQ(s->debug_count(stc::kWriteMem16), 2u);
  EXPECT_EQ(s->mem[0x10], 0xEE);
  s->rw_status.assign(1000, stc::kDpWait);
  Error e = expect_error([&] { probe->native_memory()->write(0, 0x20000010, data, 16, kEach); });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_TRUE(contains(e.message(), "WAIT")) << e.message();
}

TEST(StLinkDriver, NativeMemoryRejectsMisalignedRequests) {
  auto probe = connected(v2());
  std::vector<std::uint8_t> buf(6);
  EXPECT_EQ(expect_error([&] { probe->native_memory()->read(0, 0x20000002, buf, 32); }).category(),
            ErrorCategory::usage);
  EXPECT_EQ(expect_error([&] { probe->native_memory()->read(0, 0x20000000, buf, 12); }).category(),
            ErrorCategory::usage);
}

TEST(StLinkDriver, UnplugSurfacesUnchanged) {
  auto s = v2();
  auto probe = connected(s);
  s->unplugged = true;
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpCtrlStat, &v);
  Error e = expect_error([&] { probe->flush(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_EQ(e.message(), "probe FAKE was unplugged");
  // Destroying the driver of an unplugged probe does not throw.
  probe.reset();
}

// --- Transport faults (retry policy in stlink.cpp) --------------------------------------------

// A garbled GET_VERSION (VID/PID do not match the USB descriptor) is not taken as the
// version: the driver drains and asks again.
TEST(StLinkDriver, GarbledVersionIsAskedAgain) {
  auto s = v2();
  s->garble_reads = 1;
  auto probe = make_fake_stlink(s);
  EXPECT_EQ(probe->info().firmware_version, "V2J40S7");
  EXPECT_EQ(s->count(stc::kGetVersion), 2u);
}

// A lost or garbled answer to a register read is retried; the value is the real one.
TEST(StLinkDriver, LostAndGarbledRegisterAnswersAreRetried) {
  for (bool garble : {false, true}) {
    auto s = v2();
    auto probe = connected(s);
    s->regs[0xFFFFu << 16 | 0x4] = 0x23000052;  // DP CTRL/STAT
    (garble ? s->garble_reads : s->lose_answers) = 1;
    std::uint32_t v = 0;
    probe->queue_dp_read(kDpCtrlStat, &v);
    EXPECT_TRUE(probe->flush().ok()) << garble;
    EXPECT_EQ(v, 0x23000052u) << garble;
    EXPECT_EQ(s->debug_count(stc::kReadDapReg), 2u) << garble;
  }
}

// Faults that keep coming end in Error(probe_io) naming the fault, after a bounded number
// of attempts.
TEST(StLinkDriver, PersistentTimeoutsEndInProbeIo) {
  auto s = v2();
  auto probe = connected(s);
  s->lose_answers = 100;
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpCtrlStat, &v);
  Error e = expect_error([&] { probe->flush(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_NE(e.message().find("timed out"), std::string::npos) << e.message();
  EXPECT_EQ(s->debug_count(stc::kReadDapReg), 3u);
}

// A WRITEMEM whose status answer was lost may have written: it is never repeated.
TEST(StLinkDriver, LostWriteMemIsNotRepeated) {
  auto s = v2();
  auto probe = connected(s);
  std::vector<std::uint8_t> data(64, 0x5A);
  probe->native_memory()->write(0, 0x20000000, data, 32, kEach);  // INIT_AP done
  s->cdbs.clear();
  s->lose_answers = 1;  // the GETLASTRWSTATUS2 answer
  Error e = expect_error([&] { probe->native_memory()->write(0, 0x20000000, data, 32, kEach); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_NE(e.message().find("not repeated"), std::string::npos) << e.message();
  EXPECT_EQ(s->debug_count(stc::kWriteMem32), 1u);
}

// READMEM names its address: a lost data phase is read again, not taken short.
TEST(StLinkDriver, LostReadMemIsRepeated) {
  auto s = v2();
  auto probe = connected(s);
  for (std::size_t i = 0; i < 64; ++i)
    s->mem[i] = static_cast<std::uint8_t>(i);
  std::vector<std::uint8_t> warm(4);
  probe->native_memory()->read(0, 0x20000000, warm, 32);  // INIT_AP done
  s->cdbs.clear();
  s->lose_answers = 1;
  std::vector<std::uint8_t> out(64);
  probe->native_memory()->read(0, 0x20000000, out, 32);
  EXPECT_EQ(s->debug_count(stc::kReadMem32), 2u);
  for (std::size_t i = 0; i < 64; ++i)
    EXPECT_EQ(out[i], i);
}

}  // namespace
}  // namespace probefarm::probe::test
