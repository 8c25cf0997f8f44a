#include "sw_dp.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace probefarm::sim {
namespace {

// RAM at 0x20000000, an ERROR address, and an address that stalls (busy) until the
// test-owned clock reaches `slow_until`.
class FakeBus final : public DebugBus {
 public:
  static constexpr std::uint32_t kRam = 0x20000000;
  static constexpr std::uint32_t kError = 0x40000000;
  static constexpr std::uint32_t kSlow = 0x08000000;

  explicit FakeBus(const VirtualClock& clock) : clock_(clock) {}

  BusResponse read(std::uint32_t addr, unsigned size) override {
    if (addr == kError) return {BusStatus::error, 0, 0};
    if (addr == kSlow && clock_.now() < slow_until) return {BusStatus::busy, 0, slow_until};
    std::uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i)
      v |= std::uint32_t{mem[addr + i]} << (8 * i);
    return {BusStatus::ok, v, 0};
  }
  BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) override {
    if (addr == kError) return {BusStatus::error, 0, 0};
    if (addr == kSlow && clock_.now() < slow_until) return {BusStatus::busy, 0, slow_until};
    for (unsigned i = 0; i < size; ++i)
      mem[addr + i] = static_cast<std::uint8_t>(value >> (8 * i));
    return {};
  }

  std::map<std::uint32_t, std::uint8_t> mem;
  Picoseconds slow_until = 0;

 private:
  const VirtualClock& clock_;
};

constexpr std::uint32_t kCtrlStat = 0x4;
constexpr std::uint32_t kSelect = 0x8;
constexpr std::uint32_t kRdbuff = 0xC;
constexpr std::uint32_t kStickyOrun = 1u << 1;
constexpr std::uint32_t kStickyErr = 1u << 5;
constexpr std::uint32_t kWDataErr = 1u << 7;

void send(SwDp& dp, std::uint64_t bits, unsigned count) {
  std::vector<std::uint8_t> bytes((count + 7) / 8);
  for (unsigned i = 0; i < count; ++i) {
    if ((bits >> i) & 1) bytes[i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
  }
  dp.sequence(bytes.data(), count);
}

void line_reset(SwDp& dp) {
  send(dp, ~0ull, 56);
  send(dp, 0, 8);
}

void jtag_to_swd(SwDp& dp) {
  send(dp, ~0ull, 56);
  send(dp, 0xE79E, 16);
  line_reset(dp);
}

class SwDpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chip = find_chip("stm32f103c8");
    ASSERT_NE(chip, nullptr);
    dp = make_sw_dp(*chip, bus, clock);
  }
  // Switches to SWD, reads DPIDR, powers up the debug domain.
  void connect() {
    jtag_to_swd(*dp);
    ASSERT_EQ(dp->transfer(false, true, 0, 0).ack, SwdAck::ok);
    ASSERT_EQ(dp->transfer(false, false, kCtrlStat, 0x50000000).ack, SwdAck::ok);
  }
  SwdResult dp_read(unsigned a) { return dp->transfer(false, true, a, 0); }
  SwdAck dp_write(unsigned a, std::uint32_t v) { return dp->transfer(false, false, a, v).ack; }
  SwdResult ap_read(unsigned a) { return dp->transfer(true, true, a, 0); }
  SwdAck ap_write(unsigned a, std::uint32_t v) { return dp->transfer(true, false, a, v).ack; }

  VirtualClock clock;
  FakeBus bus{clock};
  const ChipInfo* chip = nullptr;
  std::unique_ptr<SwDp> dp;
};

TEST_F(SwDpTest, SilentUntilJtagToSwdSwitch) {
  EXPECT_EQ(dp_read(0).ack, SwdAck::no_response);
  line_reset(*dp);
  EXPECT_EQ(dp_read(0).ack, SwdAck::no_response) << "a line reset alone stays in JTAG mode";
  jtag_to_swd(*dp);
  SwdResult r = dp_read(0);
  EXPECT_EQ(r.ack, SwdAck::ok);
  EXPECT_EQ(r.data, chip->dpidr);
}

TEST_F(SwDpTest, SwitchNeedsLineResetAfterSelectSequence) {
  send(*dp, ~0ull, 56);
  send(*dp, 0xE79E, 16);
  send(*dp, 0, 8);
  EXPECT_EQ(dp_read(0).ack, SwdAck::no_response);
  line_reset(*dp);
  EXPECT_EQ(dp_read(0).ack, SwdAck::ok);
}

TEST_F(SwDpTest, FirstPacketAfterLineResetMustReadDpidr) {
  jtag_to_swd(*dp);
  EXPECT_EQ(dp_read(kCtrlStat).ack, SwdAck::no_response);
  EXPECT_EQ(dp_read(0).ack, SwdAck::no_response) << "locked out until the next line reset";
  line_reset(*dp);
  EXPECT_EQ(dp_read(0).ack, SwdAck::ok);
  EXPECT_EQ(dp_read(kCtrlStat).ack, SwdAck::ok);
}

TEST_F(SwDpTest, PowerUpHandshake) {
  jtag_to_swd(*dp);
  ASSERT_EQ(dp_read(0).ack, SwdAck::ok);
  EXPECT_FALSE(dp->debug_powered());
  EXPECT_EQ(dp_write(kCtrlStat, 0x50000000), SwdAck::ok);
  SwdResult r = dp_read(kCtrlStat);
  EXPECT_EQ(r.data & 0xF0000000, 0xF0000000u);
  EXPECT_TRUE(dp->debug_powered());
  EXPECT_EQ(dp_write(kCtrlStat, 0x54000000), SwdAck::ok);
  EXPECT_EQ(dp_read(kCtrlStat).data & 0x0C000000, 0x0C000000u) << "CDBGRSTREQ acked";
  dp->power_on_reset();
  EXPECT_FALSE(dp->debug_powered());
  EXPECT_EQ(dp_read(0).ack, SwdAck::no_response) << "back in JTAG mode";
}

TEST_F(SwDpTest, SelectAndApIdrThroughPostedRead) {
  connect();
  EXPECT_EQ(dp_write(kSelect, 0x000000F0), SwdAck::ok);
  SwdResult r = ap_read(0xC);  // IDR
  EXPECT_EQ(r.ack, SwdAck::ok);
  EXPECT_EQ(r.data, 0u) << "an AP read returns the previous AP read's result";
  r = dp_read(kRdbuff);
  EXPECT_EQ(r.data, chip->ap_idr);
  r = dp_read(kSelect);  // RESEND
  EXPECT_EQ(r.data, chip->ap_idr);

  EXPECT_EQ(dp_write(kSelect, 0x010000F0), SwdAck::ok);  // APSEL 1: nothing there
  ap_read(0xC);
  EXPECT_EQ(dp_read(kRdbuff).data, 0u);
}

TEST_F(SwDpTest, PostedReadsChainThroughRdbuff) {
  connect();
  for (std::uint32_t i = 0; i < 12; ++i)
    bus.mem[FakeBus::kRam + i] = static_cast<std::uint8_t>(i + 1);
  ASSERT_EQ(ap_write(0x0, 0x12), SwdAck::ok);  // CSW: 32-bit, increment
  ASSERT_EQ(ap_write(0x4, FakeBus::kRam), SwdAck::ok);
  ap_read(0xC);
  EXPECT_EQ(ap_read(0xC).data, 0x04030201u);
  EXPECT_EQ(ap_read(0xC).data, 0x08070605u);
  EXPECT_EQ(dp_read(kRdbuff).data, 0x0C0B0A09u);
  EXPECT_EQ(dp_read(kRdbuff).data, 0x0C0B0A09u) << "RDBUFF does not start another access";
  EXPECT_NE(dp_read(kCtrlStat).data & (1u << 6), 0u) << "READOK";
}

TEST_F(SwDpTest, WaitWhileBusStallsThenOk) {
  connect();
  bus.mem[FakeBus::kSlow] = 0x77;
  bus.slow_until = 5 * kMicrosecond;
  ap_write(0x0, 0x12);
  ap_write(0x4, FakeBus::kSlow);
  EXPECT_EQ(ap_read(0xC).ack, SwdAck::ok) << "the read is accepted, then stalls";
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::wait);
  EXPECT_EQ(ap_read(0x4).ack, SwdAck::wait);
  EXPECT_EQ(dp_write(kSelect, 0xF0), SwdAck::wait);
  EXPECT_EQ(dp_read(0).ack, SwdAck::ok) << "DPIDR never waits";
  EXPECT_EQ(dp_read(kCtrlStat).ack, SwdAck::ok) << "CTRL/STAT never waits";
  clock.advance(5 * kMicrosecond);
  SwdResult r = dp_read(kRdbuff);
  EXPECT_EQ(r.ack, SwdAck::ok);
  EXPECT_EQ(r.data, 0x77u);
}

TEST_F(SwDpTest, StickyErrorFaultsUntilCleared) {
  connect();
  ap_write(0x0, 0x12);
  ap_write(0x4, FakeBus::kError);
  EXPECT_EQ(ap_read(0xC).ack, SwdAck::ok);
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::fault);
  SwdResult cs = dp_read(kCtrlStat);
  EXPECT_EQ(cs.ack, SwdAck::ok);
  EXPECT_NE(cs.data & kStickyErr, 0u);
  EXPECT_EQ(ap_read(0x0).ack, SwdAck::fault);
  EXPECT_EQ(ap_write(0x4, 0), SwdAck::fault);
  EXPECT_EQ(dp_write(kSelect, 0), SwdAck::fault);
  EXPECT_EQ(dp_read(0).ack, SwdAck::ok);
  EXPECT_EQ(dp_write(0x0, 0x4), SwdAck::ok);  // ABORT.STKERRCLR
  EXPECT_EQ(dp_read(kCtrlStat).data & kStickyErr, 0u);
  EXPECT_EQ(ap_read(0x4).ack, SwdAck::ok);
}

TEST_F(SwDpTest, BadWriteParitySetsWdataErrAndDropsWrite) {
  connect();
  ap_write(0x0, 0x12);
  EXPECT_EQ(dp->transfer(true, false, 0x4, 0x20000100, false).ack, SwdAck::ok);
  EXPECT_NE(dp_read(kCtrlStat).data & kWDataErr, 0u);
  EXPECT_EQ(ap_read(0x4).ack, SwdAck::fault);
  EXPECT_EQ(dp_write(0x0, 0x8), SwdAck::ok);  // ABORT.WDERRCLR
  ap_read(0x4);
  EXPECT_EQ(dp_read(kRdbuff).data, 0u) << "the corrupted TAR write was discarded";
}

TEST_F(SwDpTest, OverrunDetectionMakesWaitSticky) {
  connect();
  ASSERT_EQ(dp_write(kCtrlStat, 0x50000001), SwdAck::ok);  // ORUNDETECT
  bus.slow_until = 10 * kMicrosecond;
  ap_write(0x0, 0x12);
  ap_write(0x4, FakeBus::kSlow);
  ap_read(0xC);
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::wait);
  EXPECT_NE(dp_read(kCtrlStat).data & kStickyOrun, 0u);
  clock.advance(10 * kMicrosecond);
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::fault);
  EXPECT_EQ(dp_write(0x0, 0x10), SwdAck::ok);  // ORUNERRCLR
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::ok);
}

TEST_F(SwDpTest, DapAbortDropsStalledAccess) {
  connect();
  bus.slow_until = 10 * kMicrosecond;
  ap_write(0x0, 0x12);
  ap_write(0x4, FakeBus::kSlow);
  ap_write(0xC, 0x1234);
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::wait);
  EXPECT_EQ(dp_write(0x0, 0x1), SwdAck::ok);  // DAPABORT
  EXPECT_EQ(dp_read(kRdbuff).ack, SwdAck::ok);
  EXPECT_TRUE(bus.mem.empty());
}

TEST(SwDpV2Test, DpBankSelectReachesTargetId) {
  const ChipInfo* f7 = find_chip("stm32f746ng");
  ASSERT_NE(f7, nullptr);
  VirtualClock clock;
  FakeBus bus{clock};
  auto dp = make_sw_dp(*f7, bus, clock);
  jtag_to_swd(*dp);
  ASSERT_EQ(dp->transfer(false, true, 0, 0).data, f7->dpidr);
  ASSERT_EQ(dp->transfer(false, false, kSelect, 2).ack, SwdAck::ok);
  EXPECT_EQ(dp->transfer(false, true, kCtrlStat, 0).data, f7->targetid);
  dp->transfer(false, false, kSelect, 3);
  EXPECT_EQ(dp->transfer(false, true, kCtrlStat, 0).data, 1u) << "DLPIDR: protocol version 2";
  line_reset(*dp);
  EXPECT_EQ(dp->transfer(false, false, 0xC, 0x12345678).ack, SwdAck::no_response)
      << "TARGETSEL is never acknowledged and keeps the DP in reset";
  ASSERT_EQ(dp->transfer(false, true, 0, 0).ack, SwdAck::ok);
  dp->transfer(false, false, kCtrlStat, 0x50000000);  // bank 0 again after line reset
  EXPECT_EQ(dp->transfer(false, true, kCtrlStat, 0).data >> 28, 0xFu);
}

TEST_F(SwDpTest, DpV1IgnoresDpBankSelect) {
  connect();
  dp_write(kSelect, 2);
  EXPECT_EQ(dp_read(kCtrlStat).data >> 28, 0xFu) << "still CTRL/STAT";
}

TEST_F(SwDpTest, DormantWakeUpToSwd) {
  send(*dp, ~0ull, 8);
  send(*dp, 0x33BBBBBA, 31);  // JTAG to dormant
  send(*dp, ~0ull, 8);
  send(*dp, 0x86852D956209F392ull, 64);  // selection alert
  send(*dp, 0x19BC0EA2E3DDAFE9ull, 64);
  send(*dp, 0, 4);
  send(*dp, 0x1A, 8);  // SWD activation code
  line_reset(*dp);
  EXPECT_EQ(dp_read(0).ack, SwdAck::ok);
}

TEST_F(SwDpTest, DisconnectedPinsAnswerNothingAndLoseSequences) {
  connect();
  dp->set_pins_connected(false);
  EXPECT_EQ(dp_read(0).ack, SwdAck::no_response);
  EXPECT_EQ(ap_read(0xC).ack, SwdAck::no_response);
  jtag_to_swd(*dp);  // lost: the DP never sees these bits
  dp->set_pins_connected(true);
  EXPECT_EQ(dp_read(kCtrlStat).ack, SwdAck::ok) << "the DP kept its state: still active";
  EXPECT_TRUE(dp->debug_powered());
}

TEST_F(SwDpTest, InjectedWaitsDelayAccessesButNotDpidrOrAbort) {
  connect();
  ASSERT_EQ(dp_write(kSelect, 0xF0), SwdAck::ok);  // AP bank 0xF: IDR at 0xC
  dp->inject_wait(2);
  EXPECT_EQ(dp_read(0).ack, SwdAck::ok) << "DPIDR reads are never answered WAIT";
  EXPECT_EQ(dp_write(0, 0x1E), SwdAck::ok) << "nor ABORT writes";
  EXPECT_EQ(ap_read(0xC).ack, SwdAck::wait);
  EXPECT_EQ(dp_write(kSelect, 0xF0), SwdAck::wait);
  EXPECT_EQ(ap_read(0xC).ack, SwdAck::ok) << "the third access goes through";
  EXPECT_EQ(dp_read(kRdbuff).data, chip->ap_idr);
}

}  // namespace
}  // namespace probefarm::sim
