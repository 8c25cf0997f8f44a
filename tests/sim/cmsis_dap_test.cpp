#include "cmsis_dap.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "sw_dp.hpp"

namespace probefarm::sim {
namespace {

using Bytes = std::vector<std::uint8_t>;

// RAM at 0x20000000 plus an address that stalls until `slow_until`.
class FakeBus final : public DebugBus {
 public:
  static constexpr std::uint32_t kRam = 0x20000000;
  static constexpr std::uint32_t kSlow = 0x08000000;

  explicit FakeBus(const VirtualClock& clock) : clock_(clock) {}
  BusResponse read(std::uint32_t addr, unsigned size) override {
    if (addr == kSlow && clock_.now() < slow_until) return {BusStatus::busy, 0, slow_until};
    std::uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i)
      v |= std::uint32_t{mem[addr + i]} << (8 * i);
    return {BusStatus::ok, v, 0};
  }
  BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) override {
    for (unsigned i = 0; i < size; ++i)
      mem[addr + i] = static_cast<std::uint8_t>(value >> (8 * i));
    return {};
  }
  std::map<std::uint32_t, std::uint8_t> mem;
  Picoseconds slow_until = 0;

 private:
  const VirtualClock& clock_;
};

class FakeTarget final : public TargetPort {
 public:
  FakeTarget() : chip_(*find_chip("stm32f407vg")), bus(clock), dp(make_sw_dp(chip_, bus, clock)) {}
  SwDp& swd() override { return *dp; }
  void set_nrst(bool asserted) override { nrst = asserted; }
  bool nrst_asserted() const override { return nrst || hold_reset; }
  void advance(Picoseconds dt) override {
    clock.advance(dt);
    ++advances;
  }
  Picoseconds now() const override { return clock.now(); }
  Counters& counters() override { return counters_; }
  unsigned vtref_mv() const override { return 3300; }

  const ChipInfo& chip_;
  VirtualClock clock;
  FakeBus bus;
  std::unique_ptr<SwDp> dp;
  Counters counters_;
  bool nrst = false;
  bool hold_reset = false;
  unsigned advances = 0;
};

void put32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint32_t get32(const Bytes& b, std::size_t at) {
  return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
}

// Transfer request bytes.
constexpr std::uint8_t kDpRead = 0x02;
constexpr std::uint8_t kDpWrite = 0x00;
constexpr std::uint8_t kApRead = 0x03;
constexpr std::uint8_t kApWrite = 0x01;
constexpr std::uint8_t kA4 = 0x04;
constexpr std::uint8_t kA8 = 0x08;
constexpr std::uint8_t kAC = 0x0C;

class CmsisDapTest : public ::testing::Test {
 protected:
  CmsisDapTest() {
    CmsisDapConfig config;
    config.serial = "PF0001";
    config.packet_size = 512;
    engine = make_cmsis_dap_engine(target, config);
  }

  Bytes run(const Bytes& request) {
    auto r = engine->process(request);
    EXPECT_TRUE(r.has_value());
    return r.value_or(Bytes{});
  }

  // DAP_Connect, JTAG-to-SWD switch, DPIDR read, debug power-up.
  void connect() {
    ASSERT_EQ(run({0x02, 0x01}), (Bytes{0x02, 0x01}));
    Bytes seq{0x12, 136};
    for (int i = 0; i < 7; ++i)
      seq.push_back(0xFF);
    seq.push_back(0x9E);
    seq.push_back(0xE7);
    for (int i = 0; i < 7; ++i)
      seq.push_back(0xFF);
    seq.push_back(0x00);
    ASSERT_EQ(run(seq), (Bytes{0x12, 0x00}));
    Bytes t{0x05, 0, 2, kDpRead, kDpWrite | kA4};
    put32(t, 0x50000000);
    Bytes r = run(t);
    ASSERT_EQ(r.size(), 7u);
    ASSERT_EQ(r[1], 2);
    ASSERT_EQ(r[2], 1);
    ASSERT_EQ(get32(r, 3), target.chip_.dpidr);
  }

  FakeTarget target;
  std::unique_ptr<CmsisDapEngine> engine;
};

TEST_F(CmsisDapTest, InfoReportsPacketGeometryAndStrings) {
  EXPECT_EQ(run({0x00, 0xFF}), (Bytes{0x00, 0x02, 0x00, 0x02}));
  EXPECT_EQ(run({0x00, 0xFE}), (Bytes{0x00, 0x01, 0x04}));
  EXPECT_EQ(run({0x00, 0x03}), (Bytes{0x00, 0x07, 'P', 'F', '0', '0', '0', '1', 0}));
  Bytes caps = run({0x00, 0xF0});
  ASSERT_EQ(caps.size(), 3u);
  EXPECT_EQ(caps[2] & 0x03, 0x01) << "SWD yes, JTAG no";
  EXPECT_EQ(run({0x00, 0x06}), (Bytes{0x00, 0x00})) << "target name not configured";
  EXPECT_EQ(run({0x00, 0x42}), (Bytes{0x00, 0x00})) << "unknown ID";
  Bytes version = run({0x00, 0x04});
  EXPECT_EQ(version[1], 6);
  EXPECT_EQ(version[2], '2');
}

TEST_F(CmsisDapTest, UnknownCommandIsInvalid) {
  EXPECT_EQ(run({0x42, 1, 2}), (Bytes{0xFF}));
  EXPECT_EQ(run({0x11, 0, 0, 0, 0}), (Bytes{0x11, 0xFF})) << "SWJ_Clock 0 is an error";
  EXPECT_EQ(run({0x11, 0x40}), (Bytes{0x11, 0xFF})) << "short payload";
  EXPECT_EQ(run({0x02, 0x02}), (Bytes{0x02, 0x00})) << "no JTAG port";
  Bytes r = run({0x05, 0x00, 0x03, kApWrite, 0x01});  // truncated write data
  EXPECT_EQ(r[1], 0);
}

TEST_F(CmsisDapTest, ReadsDpidrAfterSwitch) {
  connect();
  EXPECT_EQ(target.counters_.swd_transfers, 2u);
}

TEST_F(CmsisDapTest, PostedApReadsAreHidden) {
  connect();
  for (std::uint32_t i = 0; i < 16; ++i)
    target.bus.mem[FakeBus::kRam + i] = static_cast<std::uint8_t>(0x10 + i);
  Bytes t{0x05, 0, 8, kDpWrite | kA8};
  put32(t, 0);  // SELECT
  t.push_back(kApWrite);
  put32(t, 0x23000012);  // CSW: 32-bit, auto-increment
  t.push_back(kApWrite | kA4);
  put32(t, FakeBus::kRam);  // TAR
  t.push_back(kApRead | kAC);
  t.push_back(kApRead | kAC);
  t.push_back(kApRead | kAC);
  t.push_back(kApRead | kAC);
  t.push_back(kDpRead | kA4);  // CTRL/STAT
  Bytes r = run(t);
  ASSERT_EQ(r.size(), 3u + 5 * 4);
  EXPECT_EQ(r[1], 8);
  EXPECT_EQ(r[2], 0x01);
  EXPECT_EQ(get32(r, 3), 0x13121110u);
  EXPECT_EQ(get32(r, 7), 0x17161514u);
  EXPECT_EQ(get32(r, 11), 0x1B1A1918u);
  EXPECT_EQ(get32(r, 15), 0x1F1E1D1Cu);
  EXPECT_EQ(get32(r, 19) >> 28, 0xFu);
}

TEST_F(CmsisDapTest, ValueMatchAndMismatch) {
  connect();
  Bytes t{0x04, 0, 0, 0, 5, 0};  // match retry 5
  EXPECT_EQ(run(t), (Bytes{0x04, 0x00}));
  Bytes m{0x05, 0, 2, kDpWrite | 0x20};
  put32(m, 0xF0000000);  // match mask
  m.push_back(kDpRead | kA4 | 0x10);
  put32(m, 0xF0000000);
  EXPECT_EQ(run(m), (Bytes{0x05, 0x02, 0x01}));

  std::uint64_t before = target.counters_.swd_transfers;
  Bytes bad{0x05, 0, 1, kDpRead | kA4 | 0x10};
  put32(bad, 0x00000000);
  EXPECT_EQ(run(bad), (Bytes{0x05, 0x00, 0x11}));
  EXPECT_EQ(target.counters_.swd_transfers - before, 6u) << "one read + 5 retries";
}

TEST_F(CmsisDapTest, TransferBlockWriteThenRead) {
  connect();
  Bytes setup{0x05, 0, 2, kApWrite};
  put32(setup, 0x23000012);
  setup.push_back(kApWrite | kA4);
  put32(setup, FakeBus::kRam + 0x100);
  ASSERT_EQ(run(setup), (Bytes{0x05, 2, 1}));
  Bytes w{0x06, 0, 64, 0, kApWrite | kAC};
  for (std::uint32_t i = 0; i < 64; ++i)
    put32(w, 0xA5000000 | i * 3);
  EXPECT_EQ(run(w), (Bytes{0x06, 64, 0, 0x01}));
  EXPECT_EQ(target.bus.mem[FakeBus::kRam + 0x100 + 63 * 4], 63 * 3);

  Bytes tar{0x05, 0, 1, kApWrite | kA4};
  put32(tar, FakeBus::kRam + 0x100);
  run(tar);
  Bytes r = run({0x06, 0, 64, 0, kApRead | kAC});
  ASSERT_EQ(r.size(), 4u + 64 * 4);
  EXPECT_EQ(r[1], 64);
  EXPECT_EQ(r[3], 0x01);
  for (std::uint32_t i = 0; i < 64; ++i)
    EXPECT_EQ(get32(r, 4 + 4 * i), 0xA5000000 | i * 3);
}

TEST_F(CmsisDapTest, TransferBlockReadIsLimitedByPacketSize) {
  connect();
  Bytes r = run({0x06, 0, 0x00, 0x02, kApRead | kAC});  // 512 words requested
  EXPECT_LE(r.size(), 512u);
  EXPECT_EQ(r[1] | r[2] << 8, (512 - 4) / 4);
}

TEST_F(CmsisDapTest, QueueAndExecuteCommands) {
  EXPECT_FALSE(
      engine->process(Bytes{0x7E, 2, 0x00, 0xFE, 0x11, 0x40, 0x42, 0x0F, 0x00}).has_value());
  EXPECT_FALSE(engine->process(Bytes{0x7E, 1, 0x00, 0xFF}).has_value());
  Bytes r = run({0x00, 0xFE});
  Bytes expect{0x7F, 2,    0x00, 0x01, 0x04, 0x11, 0x00,  // first queued packet
               0x7F, 1,    0x00, 0x02, 0x00, 0x02,        // second queued packet
               0x00, 0x01, 0x04};                         // the command that ran the queue
  EXPECT_EQ(r, expect);
  EXPECT_EQ(run({0x7F, 2, 0x09, 0x0A, 0x00, 0x01, 0x00, 0x00}),
            (Bytes{0x7F, 2, 0x09, 0x00, 0x01, 0x00}));
  EXPECT_EQ(target.clock.now(), 10 * kMicrosecond) << "DAP_Delay advanced virtual time";
}

TEST_F(CmsisDapTest, SwjPinsDriveAndSenseReset) {
  Bytes assert_rst{0x10, 0x00, 0x80};
  put32(assert_rst, 0);
  Bytes r = run(assert_rst);
  EXPECT_TRUE(target.nrst);
  EXPECT_EQ(r[1] & 0x80, 0);
  Bytes release{0x10, 0x80, 0x80};
  put32(release, 0);
  r = run(release);
  EXPECT_FALSE(target.nrst);
  EXPECT_EQ(r[1] & 0x80, 0x80);

  target.hold_reset = true;  // the board keeps nRST low: the wait runs out
  Bytes wait{0x10, 0x80, 0x80};
  put32(wait, 1000);
  Picoseconds t0 = target.clock.now();
  r = run(wait);
  EXPECT_EQ(r[1] & 0x80, 0);
  EXPECT_EQ(target.clock.now() - t0, 1000 * kMicrosecond);
}

TEST_F(CmsisDapTest, TimeAdvancesPerPacketAtSwjClock) {
  connect();
  EXPECT_EQ(run({0x11, 0x80, 0x84, 0x1E, 0x00}), (Bytes{0x11, 0x00}));  // 2 MHz
  EXPECT_EQ(run({0x04, 2, 0, 0, 0, 0}), (Bytes{0x04, 0x00}));           // 2 idle cycles
  Picoseconds t0 = target.clock.now();
  unsigned a0 = target.advances;
  Bytes r = run({0x05, 0, 2, kDpRead, kDpRead});
  ASSERT_EQ(r[1], 2);
  // Each read: 8 request + 1 turnaround + 3 ACK + 33 data + 1 turnaround + 2 idle.
  EXPECT_EQ(target.clock.now() - t0, 2 * cycles_to_ps(48, 2'000'000));
  EXPECT_EQ(target.advances - a0, 2u) << "one advance per packet";
}

TEST_F(CmsisDapTest, WaitIsRetriedWhileTheTargetCatchesUp) {
  connect();
  target.bus.mem[FakeBus::kSlow] = 0x99;
  Bytes t{0x05, 0, 3, kApWrite};
  put32(t, 0x23000012);
  t.push_back(kApWrite | kA4);
  put32(t, FakeBus::kSlow);
  t.push_back(kApRead | kAC);
  target.bus.slow_until = target.clock.now() + 500 * kMicrosecond;
  std::uint64_t before = target.counters_.swd_transfers;
  Bytes r = run(t);
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(r[1], 3);
  EXPECT_EQ(r[2], 0x01);
  EXPECT_EQ(get32(r, 3), 0x99u);
  EXPECT_GT(target.counters_.swd_transfers - before, 4u) << "WAIT retries are packets too";
  EXPECT_GE(target.clock.now(), target.bus.slow_until);
}

TEST_F(CmsisDapTest, WaitRetryLimitReportsWait) {
  connect();
  run({0x04, 0, 3, 0, 0, 0});  // 3 WAIT retries
  Bytes t{0x05, 0, 4, kApWrite};
  put32(t, 0x23000012);
  t.push_back(kApWrite | kA4);
  put32(t, FakeBus::kSlow);
  t.push_back(kApRead | kAC);
  t.push_back(kDpRead | kA4);
  target.bus.slow_until = target.clock.now() + kSecond;
  Bytes r = run(t);
  EXPECT_EQ(r, (Bytes{0x05, 2, 0x02})) << "the posted read never arrived";
}

}  // namespace
}  // namespace probefarm::sim
