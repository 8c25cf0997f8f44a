// The CMSIS-DAP driver against a fake probe (cmsis_dap_fake.hpp): packet building and
// parsing byte by byte, SELECT caching, block splitting, pipelining, failure accounting.
#include <gtest/gtest.h>

#include <numeric>

#include "cmsis_dap_fake.hpp"
#include "expect_error.hpp"
#include "probe/cmsis_dap.hpp"
#include "probe/cmsis_dap_packets.hpp"

namespace probefarm::probe::test {
namespace {

using Bytes = std::vector<std::uint8_t>;

struct Rig {
  FakeDap* dap;
  std::unique_ptr<DapProbe> probe;
};

// The driver on a fake probe, with what the driver sent while opening it still recorded.
Rig open_rig(bool v1, std::uint16_t packet_size, std::uint8_t packet_count,
             bool out_endpoint = true) {
  auto dev = std::make_unique<FakeDap>(v1, packet_size, packet_count, out_endpoint);
  FakeDap* raw = dev.get();
  ProbeInfo info;
  info.kind = v1 ? ProbeKind::cmsis_dap_v1 : ProbeKind::cmsis_dap_v2;
  info.serial = "FAKE123";
  return {raw, make_cmsis_dap(std::move(dev), info)};
}

// The same, with the record starting after the opening DAP_Info exchange.
Rig make_rig(bool v1, std::uint16_t packet_size, std::uint8_t packet_count) {
  Rig rig = open_rig(v1, packet_size, packet_count);
  rig.dap->writes.clear();
  rig.dap->max_in_flight = 0;
  return rig;
}

Bytes le32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(CmsisDapDriver, FactoryReadsDapInfo) {
  auto [dap, probe] = open_rig(false, 512, 4);
  EXPECT_EQ(probe->info().firmware_version, "2.3.4 (CMSIS-DAP 2.1.0)");
  // First the DAP_Delay marker that clears responses a crashed program left queued, then
  // capabilities, packet size, packet count, firmware and protocol versions: DAP_Info only.
  ASSERT_GT(dap->writes.size(), 1u);
  EXPECT_EQ(dap->writes[0], (Bytes{0x09, 0x00, 0x00}));
  for (std::size_t i = 1; i < dap->writes.size(); ++i) {
    ASSERT_EQ(dap->writes[i].size(), 2u);
    EXPECT_EQ(dap->writes[i][0], 0x00);
  }
  EXPECT_EQ(probe->target_voltage_mv(), -1);
}

TEST(CmsisDapDriver, ConnectSendsTheSwdSetupAndReadsDpidr) {
  auto [dap, probe] = make_rig(false, 512, 4);
  EXPECT_EQ(probe->connect(), 0x2BA01477u);
  ASSERT_EQ(dap->writes.size(), 6u);
  EXPECT_EQ(dap->writes[0], (Bytes{0x02, 0x01}));                          // DAP_Connect SWD
  EXPECT_EQ(dap->writes[1], cat({{0x11}, le32(1'000'000)}));               // DAP_SWJ_Clock 1 MHz
  EXPECT_EQ(dap->writes[2], (Bytes{0x04, 0x00, 0xE8, 0x03, 0x64, 0x00}));  // 1000 / 100
  EXPECT_EQ(dap->writes[3], (Bytes{0x13, 0x00}));                          // DAP_SWD_Configure
  // Line reset, 0xE79E LSB first, line reset, idle: 136 bits.
  Bytes seq = {0x12, 136,  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x9E,
               0xE7, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
  EXPECT_EQ(dap->writes[4], seq);
  EXPECT_EQ(dap->writes[5], (Bytes{0x05, 0x00, 0x01, 0x02}));  // DP read DPIDR
}

TEST(CmsisDapDriver, ConnectWithoutAckIsTargetNotResponding) {
  auto [dap, probe] = make_rig(false, 512, 4);
  dap->fail_at = 0;
  dap->fail_ack = 7;
  Error e = expect_error([&] { probe->connect(); });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_NE(e.message().find("FAKE123"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("no ACK"), std::string::npos) << e.message();
  EXPECT_NE(e.hint().find("powered"), std::string::npos) << e.hint();
}

TEST(CmsisDapDriver, RefusedConnectIsProbeIo) {
  auto [dap, probe] = make_rig(false, 512, 4);
  dap->answer_connect = false;
  EXPECT_EQ(expect_error([&] { probe->connect(); }).category(), ErrorCategory::probe_io);
}

TEST(CmsisDapDriver, MixedOpsShareOneTransferWithSelectWrittenOnChange) {
  auto [dap, probe] = make_rig(false, 512, 4);
  dap->ap_regs[0x00FC] = 0x24770011;
  std::uint32_t ctrl = 0, idr = 0;
  probe->queue_dp_write(kDpAbort, 0x1E);
  probe->queue_dp_read(kDpCtrlStat, &ctrl);
  probe->queue_ap_read(0, 0xFC, &idr);
  probe->queue_ap_write(0, 0x00, 0x23000052);
  auto r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 4u);  // the driver's SELECT writes do not count
  EXPECT_EQ(ctrl, 0xF0000000u);
  EXPECT_EQ(idr, 0x24770011u);
  ASSERT_EQ(dap->writes.size(), 1u);
  Bytes want = cat({{0x05, 0x00, 7},
                    {0x00},
                    le32(0x1E),  // DP write ABORT
                    {0x08},
                    le32(0x00000000),  // SELECT: DP bank 0 (unknown before)
                    {0x06},            // DP read CTRL/STAT
                    {0x08},
                    le32(0x000000F0),  // SELECT: AP 0, bank 0xF
                    {0x0F},            // AP read 0xC → IDR
                    {0x08},
                    le32(0x00000000),  // SELECT: AP 0, bank 0
                    {0x01},
                    le32(0x23000052)});
  EXPECT_EQ(dap->writes[0], want);
}

TEST(CmsisDapDriver, SelectIsCachedAcrossFlushesAndForgottenAfterAFailure) {
  auto [dap, probe] = make_rig(false, 512, 4);
  std::uint32_t v = 0;
  probe->queue_ap_write(0, 0x04, 0x20000000);
  probe->queue_ap_read(0, 0x0C, &v);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(dap->select_writes, (std::vector<std::uint32_t>{0x0}));
  // Same AP and bank: no SELECT.
  probe->queue_ap_read(0, 0x00, &v);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(dap->select_writes.size(), 1u);
  // CTRL/STAT in bank 0 needs none either; DP bank 2 (TARGETID) does, AP 1 does.
  probe->queue_dp_read(kDpCtrlStat, &v);
  probe->queue_dp_read(kDpCtrlStat, &v, 2);
  probe->queue_ap_read(1, 0xFC, &v);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(dap->select_writes, (std::vector<std::uint32_t>{0x0, 0x2, 0x010000F2}));
  // A failure makes the cache unknown: the next access writes SELECT again.
  dap->fail_at = dap->swd_transfers;
  dap->fail_ack = 4;
  probe->queue_ap_read(1, 0xFC, &v);
  auto r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::fault);
  EXPECT_EQ(r.completed, 0u);
  dap->fail_at.reset();
  probe->queue_ap_read(1, 0xFC, &v);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(dap->select_writes.back(), 0x010000F0u);  // DP bank unknown: back to 0
  EXPECT_EQ(dap->select_writes.size(), 4u);
}

TEST(CmsisDapDriver, CallerWrittenSelectUpdatesTheCache) {
  auto [dap, probe] = make_rig(false, 512, 4);
  std::uint32_t v = 0;
  probe->queue_dp_write(kDpSelect, 0x020000F0);
  probe->queue_ap_read(2, 0xFC, &v);  // what the caller selected: no extra write
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(dap->select_writes, (std::vector<std::uint32_t>{0x020000F0}));
}

TEST(CmsisDapDriver, BlockWritesSplitAtThePacketSize) {
  auto [dap, probe] = make_rig(true, 64, 4);
  std::vector<std::uint32_t> data(40);
  std::iota(data.begin(), data.end(), 0xA000);
  probe->queue_ap_write(0, 0x04, 0x20000000);
  probe->queue_ap_write_block(0, 0x0C, data);
  auto r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 41u);
  EXPECT_EQ(dap->drw_writes, data);
  // (64 - 5) / 4 = 14 words per DAP_TransferBlock request: 14 + 14 + 12.
  ASSERT_EQ(dap->writes.size(), 4u);
  EXPECT_EQ(dap->writes[0][0], 0x05);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(dap->writes[i][0], 0x06);
    EXPECT_EQ(dap->writes[i][4], 0x0D);  // AP write, A = 0xC
  }
  EXPECT_EQ(dap->writes[1][2], 14);
  EXPECT_EQ(dap->writes[2][2], 14);
  EXPECT_EQ(dap->writes[3][2], 12);
  for (const auto& w : dap->writes)
    EXPECT_EQ(w.size(), 64u);  // v1: whole reports, zero-padded
}

TEST(CmsisDapDriver, BlockReadsSplitAtTheResponseSize) {
  auto [dap, probe] = make_rig(false, 64, 4);
  std::vector<std::uint32_t> out(40, 0);
  probe->queue_ap_read_block(0, 0x0C, out);
  auto r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 40u);
  for (std::size_t i = 0; i < out.size(); ++i)
    EXPECT_EQ(out[i], 0x1000 + i);
  // SELECT in a DAP_Transfer, then (64 - 4) / 4 = 15 words per response: 15 + 15 + 10.
  ASSERT_EQ(dap->writes.size(), 4u);
  EXPECT_EQ(dap->writes[1], (Bytes{0x06, 0x00, 15, 0x00, 0x0F}));
  EXPECT_EQ(dap->writes[3], (Bytes{0x06, 0x00, 10, 0x00, 0x0F}));
}

TEST(CmsisDapDriver, ShortRunsOfOneRegisterStayInTheTransfer) {
  auto [dap, probe] = make_rig(false, 512, 4);
  std::vector<std::uint32_t> out(3);
  probe->queue_ap_write(0, 0x04, 0x20000000);
  probe->queue_ap_read_block(0, 0x0C, out);
  probe->queue_dp_read(kDpCtrlStat, &out[0]);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(dap->writes.size(), 1u);
  EXPECT_EQ(dap->writes[0][0], 0x05);
}

TEST(CmsisDapDriver, SingleReadsSplitWhenResponsesWouldOverflow) {
  auto [dap, probe] = make_rig(true, 64, 4);
  // Alternating registers: no run to block. (64 - 3) / 4 = 15 reads per response.
  std::vector<std::uint32_t> out(40, 0);
  for (std::size_t i = 0; i < out.size(); ++i)
    probe->queue_ap_read(0, i % 2 ? 0x0C : 0x08, &out[i]);
  auto r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 40u);
  ASSERT_EQ(dap->writes.size(), 3u);
  EXPECT_EQ(dap->writes[0][2], 16);  // SELECT + 15 reads
  EXPECT_EQ(dap->writes[1][2], 15);
  EXPECT_EQ(dap->writes[2][2], 10);
  EXPECT_EQ(out[1], 0x1000u);
  EXPECT_EQ(out[39], 0x1000u + 19);
}

TEST(CmsisDapDriver, WritesSplitWhenRequestsWouldOverflow) {
  auto [dap, probe] = make_rig(false, 64, 4);
  for (int i = 0; i < 30; ++i)
    probe->queue_dp_write(kDpAbort, static_cast<std::uint32_t>(i));
  ASSERT_TRUE(probe->flush().ok());
  // 3 + 5 * 12 = 63 bytes: 12 writes per request.
  ASSERT_EQ(dap->writes.size(), 3u);
  EXPECT_EQ(dap->writes[0].size(), 63u);
  EXPECT_EQ(dap->writes[2][2], 6);
}

TEST(CmsisDapDriver, KeepsUpToPacketCountInFlight) {
  for (std::uint8_t count : {1, 2, 4}) {
    auto [dap, probe] = make_rig(false, 64, count);
    std::vector<std::uint32_t> out(15 * 8);
    probe->queue_ap_read_block(0, 0x0C, out);
    ASSERT_TRUE(probe->flush().ok());
    EXPECT_EQ(dap->writes.size(), 9u);
    EXPECT_EQ(dap->max_in_flight, count);
    EXPECT_EQ(out.back(), 0x1000u + out.size() - 1);
  }
}

TEST(CmsisDapDriver, WaitInABlockCountsEveryWordBeforeIt) {
  auto [dap, probe] = make_rig(false, 64, 4);
  std::vector<std::uint32_t> data(40, 7);
  probe->queue_ap_write(0, 0x00, 0x23000052);  // transfer 1 (0 is SELECT)
  probe->queue_ap_write(0, 0x04, 0x20000000);  // transfer 2
  probe->queue_ap_write_block(0, 0x0C, data);  // transfers 3..42
  dap->fail_at = 3 + 20;                       // word 20, in the second block packet
  dap->fail_ack = 2;
  auto r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::wait);
  EXPECT_EQ(r.completed, 2u + 20u);
  EXPECT_EQ(dap->drw_writes.size(), 20u + 12u);  // the third packet was in flight and ran
  // Nothing was sent after the failure was seen, and every response was read: the next
  // flush gets its own answer.
  EXPECT_EQ(dap->writes.size(), 4u);
  dap->fail_at.reset();
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(v, dap->dpidr);
}

TEST(CmsisDapDriver, FaultStopsReadsAndLeavesLaterOutputsAlone) {
  auto [dap, probe] = make_rig(false, 64, 2);
  std::vector<std::uint32_t> out(60, 0xDEAD);
  probe->queue_ap_read_block(0, 0x0C, out);
  dap->fail_at = 1 + 17;  // word 17: second block packet
  dap->fail_ack = 4;
  dap->sticky = true;  // a FAULT sets a sticky flag: whatever follows faults too
  auto r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::fault);
  EXPECT_EQ(r.completed, 17u);
  EXPECT_EQ(out[16], 0x1000u + 16);
  EXPECT_EQ(out[17], 0xDEADu);
  EXPECT_EQ(out[59], 0xDEADu);
  // Packet count 2: the packet after the failing one was in flight; nothing after it.
  EXPECT_EQ(dap->writes.size(), 4u);
}

TEST(CmsisDapDriver, NoAckAndProtocolErrorInTransfers) {
  auto [dap, probe] = make_rig(false, 512, 4);
  std::uint32_t a = 0, b = 0, c = 0;
  probe->queue_dp_read(kDpDpidr, &a);
  probe->queue_dp_read(kDpDpidr, &b);
  probe->queue_dp_read(kDpDpidr, &c);
  dap->fail_at = 1;
  dap->fail_ack = 7;
  auto r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::no_response);
  EXPECT_EQ(r.completed, 1u);
  EXPECT_EQ(a, dap->dpidr);
  EXPECT_EQ(b, 0u);

  dap->fail_at = dap->swd_transfers + 2;
  dap->fail_ack = 0x08 | 1;  // OK ACK, bad read parity
  probe->queue_dp_read(kDpDpidr, &a);
  probe->queue_dp_read(kDpDpidr, &b);
  probe->queue_dp_read(kDpDpidr, &c);
  r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::protocol_error);
  EXPECT_EQ(r.completed, 2u);
}

// A response that does not belong to its request (garbled, stale) is never taken as data:
// when it keeps coming (every attempt, the resynchronisations included) the flush ends in
// Error(probe_io) naming the probe and the fault.
TEST(CmsisDapDriver, MalformedResponsesAreProbeIo) {
  std::vector<std::pair<const char*, Bytes>> bad = {
      {"wrong command", {0x06, 0x01, 0x01, 0, 0, 0, 0}},
      {"short", {0x05, 0x01}},
      {"read data missing", {0x05, 0x01, 0x01, 0x77}},
      {"more done than asked", {0x05, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"OK but short count", {0x05, 0x00, 0x01}},
  };
  for (const auto& [what, response] : bad) {
    auto [dap, probe] = make_rig(false, 512, 4);
    for (int k = 0; k < 32; ++k)
      dap->scripted.push_back(response);
    std::uint32_t v = 0xDEAD;
    probe->queue_dp_read(kDpDpidr, &v);
    Error e = expect_error([&] { probe->flush(); });
    EXPECT_EQ(e.category(), ErrorCategory::probe_io) << what;
    EXPECT_NE(e.message().find("FAKE123"), std::string::npos) << what << ": " << e.message();
    EXPECT_NE(e.message().find("malformed"), std::string::npos) << what << ": " << e.message();
    EXPECT_EQ(v, 0xDEADu) << what << ": garbled data was stored";
    // Bounded: three attempts (the first, then two after a resynchronisation each).
    EXPECT_LE(dap->writes.size(), 8u) << what;
  }
}

// One garbled response to a run of reads: the driver resynchronises (DAP_Delay) and runs the
// reads again, so the caller sees the right values and no error.
TEST(CmsisDapDriver, AGarbledResponseToReadsIsRecoveredByResyncAndRetry) {
  auto [dap, probe] = make_rig(false, 512, 4);
  Bytes garbled = {0xFA, 0xFE, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF};  // every byte inverted
  dap->scripted.push_back(garbled);
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  DapFlushResult r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.completed, 1u);
  EXPECT_EQ(v, dap->dpidr);
  // The transfer, the resynchronising DAP_Delay (0 µs), the transfer again.
  EXPECT_EQ(dap->commands(), (Bytes{0x05, 0x09, 0x05}));
  EXPECT_EQ(dap->writes[1], (Bytes{0x09, 0x00, 0x00}));
}

// Responses still owed by the probe (a STALLed IN leaves its answer queued) are read and
// dropped by the resynchronisation, not taken as the answer to the retry.
TEST(CmsisDapDriver, ResyncDropsStaleResponses) {
  auto [dap, probe] = make_rig(false, 512, 4);
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  // The first read fails (a STALL); the response it should have returned stays queued.
  dap->fail_read = Error(ErrorCategory::probe_io, "probe FAKE123 stalled the bulk read");
  DapFlushResult r = probe->flush();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(v, dap->dpidr);
  EXPECT_EQ(dap->commands(), (Bytes{0x05, 0x09, 0x05}));
}

// A run that writes memory (DRW) may have executed when its response was lost: it is never
// sent again. The error names the fault and says why it was not repeated.
TEST(CmsisDapDriver, ALostResponseToMemoryWritesIsNotRepeated) {
  auto [dap, probe] = make_rig(false, 512, 4);
  probe->queue_ap_write(0, 0x04, 0x20000000);  // TAR
  probe->queue_ap_write(0, 0x0C, 0x11111111);  // DRW
  dap->fail_read = Error(ErrorCategory::timeout,
                         "USB transfer to probe FAKE123 timed out (no response in 1000 ms)");
  Error e = expect_error([&] { probe->flush(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_NE(e.message().find("timed out"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find("not repeated"), std::string::npos) << e.message();
  EXPECT_EQ(dap->drw_writes.size(), 1u) << "the DRW write was sent again";
  // The stream was resynchronised for whoever comes next.
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  EXPECT_TRUE(probe->flush().ok());
  EXPECT_EQ(v, dap->dpidr);
}

// A DRW read relies on TAR: a run that reads DRW without writing TAR first is not repeated
// (TAR moved on); with the TAR write in the run it is.
TEST(CmsisDapDriver, DrwReadsAreRepeatedOnlyWithTheirTarWrite) {
  {
    auto [dap, probe] = make_rig(false, 512, 4);
    std::uint32_t v = 0;
    probe->queue_ap_read(0, 0x0C, &v);
    dap->fail_read = Error(ErrorCategory::timeout, "probe FAKE123 timed out");
    Error e = expect_error([&] { probe->flush(); });
    EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  }
  {
    auto [dap, probe] = make_rig(false, 512, 4);
    std::uint32_t v = 0;
    probe->queue_ap_write(0, 0x04, 0x20000000);
    probe->queue_ap_read(0, 0x0C, &v);
    dap->fail_read = Error(ErrorCategory::timeout, "probe FAKE123 timed out");
    EXPECT_TRUE(probe->flush().ok());
  }
}

// An unplug is not retried and keeps its message; a single timeout of a setup command is
// retried (it is repeatable) and succeeds; a timeout that keeps coming becomes probe_io.
TEST(CmsisDapDriver, UsbErrorsPropagateUnchanged) {
  auto [dap, probe] = make_rig(false, 512, 4);
  dap->fail_read = Error(ErrorCategory::probe_io, "probe FAKE123 was unplugged", "replug");
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpDpidr, &v);
  const std::size_t before = dap->writes.size();
  Error e = expect_error([&] { probe->flush(); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_EQ(std::string(e.message()), "probe FAKE123 was unplugged");
  EXPECT_EQ(dap->writes.size(), before + 1) << "an unplug was retried";

  auto [dap2, probe2] = make_rig(false, 512, 4);
  dap2->fail_read = Error(ErrorCategory::timeout, "probe FAKE123 did not answer");
  EXPECT_EQ(probe2->set_speed_khz(100), 100u);
}

TEST(CmsisDapDriver, SpeedAndResetPins) {
  auto [dap, probe] = make_rig(false, 512, 4);
  EXPECT_EQ(probe->set_speed_khz(4000), 4000u);
  EXPECT_EQ(dap->writes.back(), cat({{0x11}, le32(4'000'000)}));
  probe->set_nrst(true);
  EXPECT_EQ(dap->writes.back(), cat({{0x10, 0x00, 0x80}, le32(100'000)}));
  probe->set_nrst(false);
  EXPECT_EQ(dap->writes.back(), cat({{0x10, 0x80, 0x80}, le32(100'000)}));
  EXPECT_EQ(expect_error([&] { probe->set_speed_khz(0); }).category(), ErrorCategory::usage);
  // The speed set is the one connect() uses.
  probe->connect();
  EXPECT_EQ(dap->writes[dap->writes.size() - 5], cat({{0x11}, le32(4'000'000)}));
  probe->disconnect();
  EXPECT_EQ(dap->writes.back(), (Bytes{0x03}));
}

TEST(CmsisDapDriver, HidWithoutOutEndpointUsesSetReport) {
  auto [dap, probe] = open_rig(true, 64, 4, false);
  EXPECT_EQ(probe->connect(), dap->dpidr);
  EXPECT_EQ(dap->set_reports.size(), dap->writes.size());
  EXPECT_EQ(dap->set_reports.back().index, 0);  // the interface
  for (const auto& w : dap->writes)
    EXPECT_EQ(w.size(), 64u);
}

TEST(CmsisDapPackets, BlockCountSplitsAt16Bits) {
  std::vector<cmsis_dap::Access> acc(70000);
  for (auto& a : acc) {
    a.ap = true;
    a.read = true;
    a.addr = 0x0C;
    a.reg_key = 0x000C;
  }
  auto packets = cmsis_dap::pack(acc, 1 << 20);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].count, 65535u);
  EXPECT_EQ(packets[1].count, 70000u - 65535u);
  EXPECT_EQ(packets[1].first, 65535u);
  EXPECT_EQ(packets[0].request, (Bytes{0x06, 0x00, 0xFF, 0xFF, 0x0F}));
}

TEST(CmsisDapPackets, AckDecoding) {
  using cmsis_dap::ack_from_response;
  EXPECT_EQ(ack_from_response(1), DapAck::ok);
  EXPECT_EQ(ack_from_response(2), DapAck::wait);
  EXPECT_EQ(ack_from_response(4), DapAck::fault);
  EXPECT_EQ(ack_from_response(7), DapAck::no_response);
  EXPECT_EQ(ack_from_response(0x09), DapAck::protocol_error);
  EXPECT_EQ(ack_from_response(3), DapAck::protocol_error);
}

}  // namespace
}  // namespace probefarm::probe::test
