// The ST-Link command interpreter (sim/stlink.hpp): every command OpenOCD's hla and
// dapdirect drivers send, the bytes of the answers, and every status code the model
// produces, down to the SWD packets behind them. Two rigs: a fake target with plain RAM,
// a stalling address and an unmapped range behind the real SW-DP model (exact packet
// counts, injected parity errors and silence), and real boards (core registers, flash
// erase stalls, system reset).
#include "stlink.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "board.hpp"
#include "chip.hpp"
#include "sw_dp.hpp"

namespace probefarm::sim {
namespace {

using Bytes = std::vector<std::uint8_t>;

// Status codes, as observed from ST-Link firmware behaviour.
constexpr std::uint8_t kOk = 0x80;
constexpr std::uint8_t kCmdError = 0x08;
constexpr std::uint8_t kGetIdcodeError = 0x09;
constexpr std::uint8_t kAlignmentError = 0x0A;
constexpr std::uint8_t kApWait = 0x10;
constexpr std::uint8_t kApFault = 0x11;
constexpr std::uint8_t kApError = 0x12;
constexpr std::uint8_t kApParityError = 0x13;
constexpr std::uint8_t kDpWait = 0x14;
constexpr std::uint8_t kDpFault = 0x15;
constexpr std::uint8_t kDpError = 0x16;
constexpr std::uint8_t kDpParityError = 0x17;
constexpr std::uint8_t kApWdataError = 0x18;
constexpr std::uint8_t kApStickyOrunError = 0x1A;
constexpr std::uint8_t kBadAp = 0x1D;
constexpr std::uint8_t kFreqNotSupported = 0x41;
constexpr std::uint8_t kUnknownCommand = 0x42;

// Debug (0xF2) sub-commands.
constexpr std::uint8_t kReadMem32 = 0x07;
constexpr std::uint8_t kWriteMem32 = 0x08;
constexpr std::uint8_t kReadMem8 = 0x0C;
constexpr std::uint8_t kWriteMem8 = 0x0D;
constexpr std::uint8_t kReadMem16 = 0x47;
constexpr std::uint8_t kWriteMem16 = 0x48;
constexpr std::uint8_t kWriteMem32NoInc = 0x50;
constexpr std::uint8_t kReadMem32NoInc = 0x54;
constexpr std::uint16_t kDpPort = 0xFFFF;

void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put32(Bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v));
  put16(b, static_cast<std::uint16_t>(v >> 16));
}
std::uint32_t get32(const Bytes& b, std::size_t at) {
  return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
}

// Memory command: address, length, AP, CSW bits 31:8.
Bytes mem(std::uint8_t sub, std::uint32_t addr, std::uint16_t len, std::uint8_t ap = 0,
          std::uint32_t csw = 0) {
  Bytes c{0xF2, sub};
  put32(c, addr);
  put16(c, len);
  c.push_back(ap);
  c.push_back(static_cast<std::uint8_t>(csw >> 8));
  c.push_back(static_cast<std::uint8_t>(csw >> 16));
  c.push_back(static_cast<std::uint8_t>(csw >> 24));
  return c;
}
Bytes read_dap(std::uint16_t port, std::uint16_t addr) {
  Bytes c{0xF2, 0x45};
  put16(c, port);
  put16(c, addr);
  return c;
}
Bytes write_dap(std::uint16_t port, std::uint16_t addr, std::uint32_t value) {
  Bytes c{0xF2, 0x46};
  put16(c, port);
  put16(c, addr);
  put32(c, value);
  return c;
}

// RAM at 0x20000000, an address that stalls until `slow_until`, an unmapped range.
class FakeBus final : public DebugBus {
 public:
  static constexpr std::uint32_t kRam = 0x20000000;
  static constexpr std::uint32_t kSlow = 0x08000000;
  static constexpr std::uint32_t kUnmapped = 0x30000000;

  explicit FakeBus(const VirtualClock& clock) : clock_(clock) {}
  BusResponse read(std::uint32_t addr, unsigned size) override {
    if (addr >= kUnmapped && addr < kUnmapped + 0x1000) return {BusStatus::error, 0, 0};
    if (addr == kSlow && clock_.now() < slow_until) return {BusStatus::busy, 0, slow_until};
    std::uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i)
      v |= std::uint32_t{mem[addr + i]} << (8 * i);
    ++reads;
    return {BusStatus::ok, v, 0};
  }
  BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) override {
    if (addr >= kUnmapped && addr < kUnmapped + 0x1000) return {BusStatus::error, 0, 0};
    if (addr == kSlow && clock_.now() < slow_until) return {BusStatus::busy, 0, slow_until};
    for (unsigned i = 0; i < size; ++i)
      mem[addr + i] = static_cast<std::uint8_t>(value >> (8 * i));
    ++writes;
    return {};
  }
  std::map<std::uint32_t, std::uint8_t> mem;
  Picoseconds slow_until = 0;
  unsigned reads = 0;
  unsigned writes = 0;

 private:
  const VirtualClock& clock_;
};

// The real SW-DP, with a hook that may corrupt what a packet does on the wire.
class TamperDp final : public SwDp {
 public:
  explicit TamperDp(std::unique_ptr<SwDp> dp) : dp_(std::move(dp)) {}
  void sequence(const std::uint8_t* bits, unsigned count) override { dp_->sequence(bits, count); }
  SwdResult transfer(bool ap, bool read, unsigned addr, std::uint32_t wdata,
                     bool wdata_parity_ok) override {
    if (silent && silent(ap, read, addr)) return {};
    bool parity_ok = wdata_parity_ok;
    if (!read && bad_wdata && bad_wdata(ap, addr)) parity_ok = false;
    SwdResult r = dp_->transfer(ap, read, addr, wdata, parity_ok);
    if (read && r.ack == SwdAck::ok && bad_rdata && bad_rdata(ap, addr)) r.parity_ok = false;
    return r;
  }
  void power_on_reset() override { dp_->power_on_reset(); }
  void set_pins_connected(bool connected) override { dp_->set_pins_connected(connected); }
  void inject_wait(unsigned packets) override { dp_->inject_wait(packets); }
  bool debug_powered() const override { return dp_->debug_powered(); }

  // Each returns true for the packets to corrupt: no answer at all, a write data phase
  // with bad parity, a read data phase with bad parity.
  std::function<bool(bool ap, bool read, unsigned addr)> silent;
  std::function<bool(bool ap, unsigned addr)> bad_wdata;
  std::function<bool(bool ap, unsigned addr)> bad_rdata;

 private:
  std::unique_ptr<SwDp> dp_;
};

class FakeTarget final : public TargetPort {
 public:
  FakeTarget()
      : chip(*find_chip("stm32f407vg")),
        bus(clock),
        dp(std::make_unique<TamperDp>(make_sw_dp(chip, bus, clock))) {}
  SwDp& swd() override { return *dp; }
  void set_nrst(bool asserted) override {
    nrst = asserted;
    if (asserted) ++nrst_pulls;
  }
  bool nrst_asserted() const override { return nrst; }
  void advance(Picoseconds dt) override { clock.advance(dt); }
  Picoseconds now() const override { return clock.now(); }
  Counters& counters() override { return counters_; }
  unsigned vtref_mv() const override { return vtref; }

  const ChipInfo& chip;
  VirtualClock clock;
  FakeBus bus;
  std::unique_ptr<TamperDp> dp;
  Counters counters_;
  bool nrst = false;
  unsigned nrst_pulls = 0;
  unsigned vtref = 3300;
};

// Runs commands through an engine: a 16-byte command packet, then the data phase if any.
class Host {
 public:
  Host(TargetPort& target, StLinkVariant variant) : engine_(make_stlink_engine(target, variant)) {}
  Bytes run(Bytes command, const Bytes& data = {}) {
    command.resize(16, 0);
    Bytes out;
    for (const auto& r : engine_->receive(command))
      out.insert(out.end(), r.begin(), r.end());
    if (!data.empty()) {
      for (const auto& r : engine_->receive(data))
        out.insert(out.end(), r.begin(), r.end());
    }
    return out;
  }
  std::uint8_t rw_status() { return run({0xF2, 0x3B}).at(0); }
  // SWD enter and INIT_AP 0, as hosts connect.
  void connect() {
    ASSERT_EQ(run({0xF2, 0x30, 0xA3}), (Bytes{kOk, 0}));
    ASSERT_EQ(run({0xF2, 0x4B, 0x00}), (Bytes{kOk, 0}));
  }
  StLinkEngine& engine() { return *engine_; }

 private:
  std::unique_ptr<StLinkEngine> engine_;
};

class StLinkTest : public ::testing::Test {
 protected:
  FakeTarget target;
  Host host{target, StLinkVariant::v2};
};

TEST_F(StLinkTest, GetVersionEncodesHardwareJtagAndSwimVersions) {
  // V2 J40 S7: 2 << 12 | 40 << 6 | 7 = 0x2A07, big-endian, then VID and PID little-endian.
  EXPECT_EQ(host.run({0xF1}), (Bytes{0x2A, 0x07, 0x83, 0x04, 0x48, 0x37}));
  FakeTarget t21;
  Host v21(t21, StLinkVariant::v2_1);
  // V2-1 J40 M27: the low field carries the mass-storage version.
  EXPECT_EQ(v21.run({0xF1}), (Bytes{0x2A, 0x1B, 0x83, 0x04, 0x4B, 0x37}));
  EXPECT_EQ(v21.run({0xFB}), (Bytes{kUnknownCommand, 0})) << "GET_VERSION_EX is V3 only";
}

TEST_F(StLinkTest, V3ReportsItsVersionThroughGetVersionEx) {
  FakeTarget t;
  Host v3(t, StLinkVariant::v3);
  EXPECT_EQ(v3.run({0xF1}), (Bytes{0x30, 0x00, 0x83, 0x04, 0x4E, 0x37}));
  // V3 J11 M3 B0 S0, then VID and PID.
  EXPECT_EQ(v3.run({0xFB}), (Bytes{3, 0, 11, 3, 0, 0, 0, 0, 0x83, 0x04, 0x4E, 0x37}));
  EXPECT_EQ(stlink_identity(StLinkVariant::v3).product_id, 0x374E);
}

TEST_F(StLinkTest, ModesDfuExitEnterAndExit) {
  EXPECT_EQ(host.run({0xF5}), (Bytes{0x01, 0x00})) << "mass-storage mode after power-up";
  EXPECT_TRUE(host.run({0xF3, 0x07}).empty()) << "DFU exit has no reply";
  EXPECT_EQ(host.run({0xF5}), (Bytes{0x01, 0x00}));
  EXPECT_EQ(host.run({0xF3, 0x08}), (Bytes{kUnknownCommand, 0}));
  EXPECT_EQ(host.run({0xF2, 0x30, 0xA3}), (Bytes{kOk, 0}));
  EXPECT_EQ(host.run({0xF5}), (Bytes{0x02, 0x00}));
  target.nrst = true;
  EXPECT_TRUE(host.run({0xF2, 0x21}).empty()) << "debug exit has no reply";
  EXPECT_EQ(host.run({0xF5}), (Bytes{0x01, 0x00}));
  EXPECT_FALSE(target.nrst) << "exit releases nRST";
}

TEST_F(StLinkTest, TargetVoltageIsTwoAdcWords) {
  Bytes r = host.run({0xF7});
  ASSERT_EQ(r.size(), 8u);
  const double adc0 = get32(r, 0), adc1 = get32(r, 4);
  EXPECT_EQ(adc0, 1489);  // 1.2 V of 3.3 V full scale, 12 bits
  EXPECT_NEAR(2 * adc1 * 1.2 / adc0, 3.3, 0.01);
  target.vtref = 0;
  r = host.run({0xF7});
  EXPECT_EQ(get32(r, 4), 0u);
}

TEST_F(StLinkTest, SwdEnterSwitchesReadsDpidrAndPowersUpTheDebugDomain) {
  EXPECT_EQ(host.run({0xF2, 0x31}), (Bytes{kDpError, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
      << "pins not driven before SWD enter: no ACK";
  EXPECT_EQ(target.counters_.swd_transfers, 0u);
  EXPECT_EQ(host.run({0xF2, 0x30, 0xA3}), (Bytes{kOk, 0}));
  EXPECT_TRUE(target.dp->debug_powered());
  Bytes ids = host.run({0xF2, 0x31});
  ASSERT_EQ(ids.size(), 12u);
  EXPECT_EQ(ids[0], kOk);
  EXPECT_EQ(get32(ids, 4), target.chip.dpidr);
  EXPECT_EQ(get32(ids, 8), 0u);
  Bytes cs = host.run(read_dap(kDpPort, 0x4));
  EXPECT_EQ(cs[0], kOk);
  EXPECT_EQ(get32(cs, 4) & 0xF0000000u, 0xF0000000u) << "power-up requested and acknowledged";
}

TEST_F(StLinkTest, JtagEnterFindsNoTapAndOtherEnterArgumentsAreRefused) {
  EXPECT_EQ(host.run({0xF2, 0x30, 0xA4}), (Bytes{kGetIdcodeError, 0}));
  EXPECT_EQ(host.run({0xF2, 0x30, 0x00}), (Bytes{kGetIdcodeError, 0}));
  EXPECT_EQ(host.run({0xF2, 0x30, 0x55}), (Bytes{kCmdError, 0}));
}

TEST_F(StLinkTest, UnknownCommandsAnswerUnknownCommand) {
  EXPECT_EQ(host.run({0xF2, 0x99}), (Bytes{kUnknownCommand, 0}));
  EXPECT_EQ(host.run({0x10}), (Bytes{kUnknownCommand, 0}));
  EXPECT_EQ(host.run({0xF4, 0x00}), (Bytes{kUnknownCommand, 0})) << "no SWIM target";
  EXPECT_EQ(host.run({0xF2, 0x61, 0, 0, 0xE8, 0x03}), (Bytes{kUnknownCommand, 0}))
      << "SET_COM_FREQ is V3 only";
  EXPECT_EQ(host.run({0xF2, 0x62}), (Bytes{kUnknownCommand, 0}));
}

TEST_F(StLinkTest, MemoryReadWriteAtEachWidth) {
  host.connect();
  Bytes words;
  for (std::uint32_t i = 0; i < 16; ++i)
    put32(words, 0xC0DE0000 + i);
  EXPECT_TRUE(host.run(mem(kWriteMem32, FakeBus::kRam, 64), words).empty());
  EXPECT_EQ(host.rw_status(), kOk);
  EXPECT_EQ(host.run(mem(kReadMem32, FakeBus::kRam, 64)), words);

  EXPECT_TRUE(host.run(mem(kWriteMem16, FakeBus::kRam + 2, 4), {0x11, 0x22, 0x33, 0x44}).empty());
  EXPECT_EQ(host.rw_status(), kOk);
  EXPECT_EQ(host.run(mem(kReadMem16, FakeBus::kRam, 8)),
            (Bytes{0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0xDE, 0xC0}));

  EXPECT_TRUE(host.run(mem(kWriteMem8, FakeBus::kRam + 1, 3), {0xA1, 0xA2, 0xA3}).empty());
  EXPECT_EQ(host.rw_status(), kOk);
  EXPECT_EQ(host.run(mem(kReadMem8, FakeBus::kRam, 5)), (Bytes{0x00, 0xA1, 0xA2, 0xA3, 0x33}));
  EXPECT_EQ(host.run(mem(kReadMem8, FakeBus::kRam + 2, 1)), (Bytes{0xA2, 0x00}))
      << "one byte is sent as two";
  EXPECT_EQ(host.run(mem(kReadMem32, FakeBus::kRam, 4, 0, 0xA2000000)),
            (Bytes{0, 0xA1, 0xA2, 0xA3}))
      << "CSW bits from the command";
}

TEST_F(StLinkTest, MemoryCommandPacketsFollowThePostedReadPipeline) {
  host.connect();
  const std::uint64_t before = target.counters_.swd_transfers;
  host.run(mem(kReadMem32, FakeBus::kRam, 16));
  // CSW, TAR, four DRW reads (the first only starts the pipeline) and RDBUFF.
  EXPECT_EQ(target.counters_.swd_transfers - before, 2u + 4u + 1u);
  const std::uint64_t w0 = target.counters_.swd_transfers;
  host.run(mem(kWriteMem32, FakeBus::kRam, 16), Bytes(16, 0x5A));
  // CSW, TAR, four DRW writes and the RDBUFF read that waits for the last one.
  EXPECT_EQ(target.counters_.swd_transfers - w0, 2u + 4u + 1u);
  // Across a 1 KiB boundary TAR is written again (ADIv5.2 C2.2.2).
  const std::uint64_t x0 = target.counters_.swd_transfers;
  host.run(mem(kReadMem32, FakeBus::kRam + 0x3F8, 16));
  EXPECT_EQ(target.counters_.swd_transfers - x0, 1u + 2 * (1u + 2u + 1u));
}

TEST_F(StLinkTest, NoAddressIncrementRepeatsOneAddress) {
  host.connect();
  Bytes data;
  for (std::uint32_t v : {1u, 2u, 3u})
    put32(data, v);
  host.run(mem(kWriteMem32NoInc, FakeBus::kRam + 0x40, 12), data);
  EXPECT_EQ(host.rw_status(), kOk);
  EXPECT_EQ(target.bus.mem[FakeBus::kRam + 0x40], 3) << "the last write stays";
  EXPECT_EQ(target.bus.mem[FakeBus::kRam + 0x44], 0);
  const unsigned reads = target.bus.reads;
  EXPECT_EQ(host.run(mem(kReadMem32NoInc, FakeBus::kRam + 0x40, 8)),
            (Bytes{3, 0, 0, 0, 3, 0, 0, 0}));
  EXPECT_EQ(target.bus.reads - reads, 2u);
}

TEST_F(StLinkTest, SizeLimitsAndAlignment) {
  host.connect();
  EXPECT_EQ(host.run(mem(kReadMem8, FakeBus::kRam, 64)).size(), 64u);
  EXPECT_EQ(host.rw_status(), kOk);
  const std::uint64_t before = target.counters_.swd_transfers;
  EXPECT_EQ(host.run(mem(kReadMem8, FakeBus::kRam, 65)).size(), 65u);
  EXPECT_EQ(host.rw_status(), kCmdError) << "8-bit transfers are one full-speed packet";
  EXPECT_EQ(target.counters_.swd_transfers, before) << "refused before any SWD traffic";
  host.run(mem(kWriteMem8, FakeBus::kRam, 65), Bytes(65, 0xEE));
  EXPECT_EQ(host.rw_status(), kCmdError);
  EXPECT_EQ(target.bus.mem[FakeBus::kRam], 0) << "nothing written";
  EXPECT_EQ(host.engine().data_expected(), 0u) << "the data phase was taken anyway";

  EXPECT_EQ(host.run(mem(kReadMem32, FakeBus::kRam, 6144)).size(), 6144u);
  EXPECT_EQ(host.rw_status(), kOk);
  host.run(mem(kReadMem32, FakeBus::kRam, 6148));
  EXPECT_EQ(host.rw_status(), kCmdError);
  host.run(mem(kReadMem16, FakeBus::kRam, 6146));
  EXPECT_EQ(host.rw_status(), kCmdError);

  host.run(mem(kReadMem32, FakeBus::kRam + 2, 4));
  EXPECT_EQ(host.rw_status(), kAlignmentError);
  host.run(mem(kReadMem32, FakeBus::kRam, 6));
  EXPECT_EQ(host.rw_status(), kAlignmentError);
  host.run(mem(kWriteMem16, FakeBus::kRam + 1, 2), {1, 2});
  EXPECT_EQ(host.rw_status(), kAlignmentError);
}

TEST_F(StLinkTest, V3MovesUpTo512BytesAtEightBits) {
  FakeTarget t;
  Host v3(t, StLinkVariant::v3);
  v3.connect();
  EXPECT_EQ(v3.run(mem(kReadMem8, FakeBus::kRam, 512)).size(), 512u);
  EXPECT_EQ(v3.rw_status(), kOk);
  v3.run(mem(kReadMem8, FakeBus::kRam, 513));
  EXPECT_EQ(v3.rw_status(), kCmdError);
}

TEST_F(StLinkTest, WriteDataMayArriveInPiecesOrWithTheCommand) {
  host.connect();
  Bytes c = mem(kWriteMem32, FakeBus::kRam, 8);
  c.resize(16, 0);
  EXPECT_TRUE(host.engine().receive(c).empty());
  EXPECT_EQ(host.engine().data_expected(), 8u);
  host.engine().receive(Bytes{1, 2, 3});
  EXPECT_EQ(host.engine().data_expected(), 5u);
  host.engine().receive(Bytes{4, 5, 6, 7, 8});
  EXPECT_EQ(host.engine().data_expected(), 0u);
  EXPECT_EQ(host.run(mem(kReadMem32, FakeBus::kRam, 8)), (Bytes{1, 2, 3, 4, 5, 6, 7, 8}));

  Bytes both = mem(kWriteMem8, FakeBus::kRam + 8, 2);
  both.resize(16, 0);
  both.push_back(0xB1);
  both.push_back(0xB2);
  host.engine().receive(both);
  EXPECT_EQ(host.engine().data_expected(), 0u);
  EXPECT_EQ(target.bus.mem[FakeBus::kRam + 9], 0xB2);
}

TEST_F(StLinkTest, AccessPortsMustBeOpenedWithInitAp) {
  ASSERT_EQ(host.run({0xF2, 0x30, 0xA3}), (Bytes{kOk, 0}));
  const std::uint64_t before = target.counters_.swd_transfers;
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kBadAp);
  EXPECT_EQ(host.run(read_dap(0, 0x00))[0], kBadAp) << "CSW needs INIT_AP";
  EXPECT_EQ(host.run(write_dap(0, 0x04, 0)), (Bytes{kBadAp, 0}));
  EXPECT_EQ(host.run(read_dap(0x100, 0xFC))[0], kBadAp) << "no AP 256";
  EXPECT_EQ(target.counters_.swd_transfers, before);
  Bytes idr = host.run(read_dap(0, 0xFC));
  EXPECT_EQ(idr[0], kOk) << "IDR may be read first, to identify the AP";
  EXPECT_EQ(get32(idr, 4), target.chip.ap_idr);

  EXPECT_EQ(host.run({0xF2, 0x4B, 0x00}), (Bytes{kOk, 0}));
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kOk);
  EXPECT_EQ(host.run({0xF2, 0x4C, 0x00}), (Bytes{kOk, 0}));
  EXPECT_EQ(host.run({0xF2, 0x4C, 0x00}), (Bytes{kBadAp, 0})) << "already closed";
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kBadAp);

  host.run({0xF2, 0x4B, 0x00});
  host.run({0xF2, 0x21});  // exit closes every AP
  host.run({0xF2, 0x30, 0xA3});
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kBadAp);
}

TEST_F(StLinkTest, DapRegistersOfDpAndAp) {
  host.connect();
  // AP 0 register bank 0xF: IDR, BASE (SELECT.APBANKSEL follows the address).
  Bytes base = host.run(read_dap(0, 0xF8));
  EXPECT_EQ(base[0], kOk);
  EXPECT_EQ(get32(base, 4), 0xE00FF003u);
  EXPECT_EQ(host.run(write_dap(0, 0x04, FakeBus::kRam + 0x10)), (Bytes{kOk, 0}));  // TAR
  Bytes tar = host.run(read_dap(0, 0x04));
  EXPECT_EQ(get32(tar, 4), FakeBus::kRam + 0x10);
  Bytes sel = host.run(read_dap(kDpPort, 0x08));
  EXPECT_EQ(sel[0], kOk) << "RESEND reads";
  EXPECT_EQ(host.run(write_dap(kDpPort, 0x08, 0x000000F0)), (Bytes{kOk, 0}));  // SELECT
  EXPECT_EQ(get32(host.run(read_dap(0, 0xFC)), 4), target.chip.ap_idr);
  Bytes rdbuff = host.run(read_dap(kDpPort, 0x0C));
  EXPECT_EQ(rdbuff[0], kOk);
  EXPECT_EQ(get32(rdbuff, 4), target.chip.ap_idr) << "RDBUFF holds the last AP read";
}

TEST_F(StLinkTest, BankedDpRegisterSelectsItsBank) {
  const ChipInfo* f7 = find_chip("stm32f746ng");
  ASSERT_NE(f7->targetid, 0u);
  Board board(*f7, BoardOptions{.serial = "PFTEST", .uid_seed = 0, .state_dir = {}});
  Host h(board, StLinkVariant::v3);
  h.connect();
  Bytes id = h.run(read_dap(kDpPort, 0x24));  // DPBANKSEL 2, address 4: TARGETID
  EXPECT_EQ(id[0], kOk);
  EXPECT_EQ(get32(id, 4), f7->targetid);
  Bytes cs = h.run(read_dap(kDpPort, 0x04));
  EXPECT_EQ(get32(cs, 4) & 0xF0000000u, 0xF0000000u) << "back in bank 0: CTRL/STAT";
}

TEST_F(StLinkTest, StallsAreRetriedThenReportedAsWait) {
  host.connect();
  target.bus.mem[FakeBus::kSlow] = 0x77;
  // Short stall: the firmware's WAIT retries outlast it.
  target.bus.slow_until = target.clock.now() + 200 * kMicrosecond;
  EXPECT_EQ(host.run(mem(kReadMem32, FakeBus::kSlow, 4)), (Bytes{0x77, 0, 0, 0}));
  EXPECT_EQ(host.rw_status(), kOk);
  EXPECT_GE(target.clock.now(), target.bus.slow_until);

  // A long stall: the posted read's RDBUFF (a DP packet) keeps answering WAIT.
  target.bus.slow_until = target.clock.now() + kSecond;
  host.run(mem(kReadMem32, FakeBus::kSlow, 4));
  EXPECT_EQ(host.rw_status(), kDpWait);
  // The next command meets the same stall on its first AP packet (CSW).
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kApWait);
  Bytes s2 = host.run({0xF2, 0x3E});
  ASSERT_EQ(s2.size(), 12u);
  EXPECT_EQ(s2[0], kApWait);
  EXPECT_EQ(get32(s2, 4), FakeBus::kRam);
  EXPECT_EQ(host.run(write_dap(kDpPort, 0x08, 0x01000000)), (Bytes{kDpWait, 0}))
      << "SELECT write while the AP is stalled";

  target.clock.advance(kSecond);
  EXPECT_EQ(host.run(mem(kReadMem32, FakeBus::kRam + 0x100, 4)), (Bytes{0, 0, 0, 0}));
  EXPECT_EQ(host.rw_status(), kOk) << "the stall is over";
}

TEST_F(StLinkTest, FaultsAreReportedWithTheirAddressAndCleared) {
  host.connect();
  host.run(mem(kReadMem32, FakeBus::kUnmapped, 4));
  Bytes s2 = host.run({0xF2, 0x3E});
  EXPECT_EQ(s2[0], kDpFault) << "a one-word read faults on its RDBUFF";
  EXPECT_EQ(get32(s2, 4), FakeBus::kUnmapped);
  Bytes cs = host.run(read_dap(kDpPort, 0x04));
  EXPECT_EQ(get32(cs, 4) & 0x20u, 0u) << "STICKYERR cleared through ABORT";

  host.run(mem(kReadMem32, FakeBus::kUnmapped + 8, 8));
  s2 = host.run({0xF2, 0x3E});
  EXPECT_EQ(s2[0], kApFault) << "the second DRW read carries the FAULT";
  EXPECT_EQ(get32(s2, 4), FakeBus::kUnmapped + 8);
  EXPECT_EQ(host.run({0xF2, 0x3B}), (Bytes{kApFault, 0}));

  // A write that fails in the middle: the FAULT shows on the next packet.
  host.run(mem(kWriteMem32, FakeBus::kUnmapped - 4, 8), Bytes(8, 0x11));
  s2 = host.run({0xF2, 0x3E});
  EXPECT_EQ(s2[0], kDpFault);
  EXPECT_EQ(get32(s2, 4), FakeBus::kUnmapped);

  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kOk) << "the firmware cleared the sticky error";
  EXPECT_EQ(get32(host.run({0xF2, 0x3E}), 4), 0u);
}

TEST_F(StLinkTest, RawDapAccessLeavesStickyFlagsToTheHost) {
  host.connect();
  host.run(write_dap(0, 0x00, 0x23000012));  // CSW: word, increment
  host.run(write_dap(0, 0x04, FakeBus::kUnmapped));
  EXPECT_EQ(host.run(read_dap(0, 0x0C))[0], kDpFault) << "DRW, then RDBUFF faults";
  EXPECT_NE(get32(host.run(read_dap(kDpPort, 0x04)), 4) & 0x20u, 0u) << "STICKYERR still set";
  EXPECT_EQ(host.run(read_dap(0, 0x00))[0], kApFault);
  EXPECT_EQ(host.run(write_dap(kDpPort, 0x00, 0x04)), (Bytes{kOk, 0}));  // ABORT.STKERRCLR
  EXPECT_EQ(host.run(read_dap(0, 0x00))[0], kOk);
}

TEST_F(StLinkTest, OverrunDetectionFaultsReportStickyOverrun) {
  host.connect();
  // CTRL/STAT: keep the power-up requests, set ORUNDETECT.
  ASSERT_EQ(host.run(write_dap(kDpPort, 0x04, 0x50000001)), (Bytes{kOk, 0}));
  target.bus.slow_until = target.clock.now() + kSecond;
  host.run(mem(kReadMem32, FakeBus::kSlow, 4));
  EXPECT_EQ(host.rw_status(), kDpWait) << "the WAIT sets STICKYORUN";
  target.clock.advance(kSecond);
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kApStickyOrunError);
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kOk) << "cleared with the other sticky flags";
}

TEST_F(StLinkTest, CorruptWireReportsParityErrorsNoAnswerAndWriteDataErrors) {
  host.connect();
  // Read data with bad parity on a DP packet (RDBUFF), then on an AP packet (DRW).
  target.dp->bad_rdata = [](bool ap, unsigned addr) { return !ap && addr == 0xC; };
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kDpParityError);
  target.dp->bad_rdata = [](bool ap, unsigned) { return ap; };
  host.run(mem(kReadMem32, FakeBus::kRam, 8));
  EXPECT_EQ(host.rw_status(), kApParityError);
  target.dp->bad_rdata = nullptr;

  // Nobody answers: AP packets, then DP packets.
  target.dp->silent = [](bool ap, bool, unsigned) { return ap; };
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kApError);
  target.dp->silent = [](bool ap, bool, unsigned) { return !ap; };
  EXPECT_EQ(host.run(read_dap(kDpPort, 0x00))[0], kDpError);
  target.dp->silent = nullptr;

  // A write data phase with bad parity sets WDATAERR: the next packet faults and the
  // firmware finds out why in CTRL/STAT.
  target.dp->bad_wdata = [](bool ap, unsigned addr) { return ap && addr == 0xC; };
  host.run(mem(kWriteMem32, FakeBus::kRam, 4), {1, 2, 3, 4});
  target.dp->bad_wdata = nullptr;
  EXPECT_EQ(host.rw_status(), kApWdataError);
  host.run(mem(kReadMem32, FakeBus::kRam, 4));
  EXPECT_EQ(host.rw_status(), kOk);
}

TEST_F(StLinkTest, V2SwdClockDivisorsAndTheirWireTime) {
  // The delay counts of the V2 firmware and the frequency each stands for (kHz).
  const std::pair<std::uint16_t, std::uint32_t> table[] = {
      {0, 4000}, {1, 1800}, {2, 1200}, {3, 950},  {5, 650}, {7, 480},  {9, 400},  {10, 360},
      {15, 240}, {25, 150}, {31, 125}, {40, 100}, {79, 50}, {158, 25}, {265, 15}, {798, 5}};
  host.connect();
  for (auto [divisor, khz] : table) {
    Bytes c{0xF2, 0x43};
    put16(c, divisor);
    ASSERT_EQ(host.run(c), (Bytes{kOk, 0})) << divisor;
    const Picoseconds t0 = target.clock.now();
    ASSERT_EQ(host.run(read_dap(kDpPort, 0x00))[0], kOk);
    // One DP read: 8 request + 1 turnaround + 3 ACK + 33 data/parity + 1 turnaround.
    EXPECT_EQ(target.clock.now() - t0, cycles_to_ps(46, khz * 1000)) << divisor;
  }
  EXPECT_EQ(host.run({0xF2, 0x43, 4, 0}), (Bytes{kFreqNotSupported, 0}));
  EXPECT_EQ(host.run({0xF2, 0x44, 32, 0}), (Bytes{kOk, 0})) << "JTAG prescaler 32";
  EXPECT_EQ(host.run({0xF2, 0x44, 3, 0}), (Bytes{kFreqNotSupported, 0}));
}

TEST_F(StLinkTest, V3ListsAndSetsCommunicationFrequencies) {
  FakeTarget t;
  Host v3(t, StLinkVariant::v3);
  Bytes list = v3.run({0xF2, 0x62, 0x00});
  ASSERT_EQ(list.size(), 52u);
  EXPECT_EQ(list[0], kOk);
  ASSERT_EQ(list[8], 7);
  const std::uint32_t swd[] = {24000, 8000, 3300, 1000, 200, 50, 5};
  for (std::size_t i = 0; i < 7; ++i)
    EXPECT_EQ(get32(list, 12 + 4 * i), swd[i]);
  EXPECT_EQ(get32(list, 12 + 4 * 7), 0u);
  Bytes jtag = v3.run({0xF2, 0x62, 0x01});
  EXPECT_EQ(get32(jtag, 12), 21333u);

  Bytes set{0xF2, 0x61, 0x00, 0x00};
  put32(set, 2000);
  Bytes r = v3.run(set);
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r[0], kOk);
  EXPECT_EQ(get32(r, 4), 1000u) << "the fastest listed frequency not above the request";
  Bytes slow{0xF2, 0x61, 0x00, 0x00};
  put32(slow, 1);
  EXPECT_EQ(get32(v3.run(slow), 4), 5u);

  Bytes fast{0xF2, 0x61, 0x00, 0x00};
  put32(fast, 24000);
  EXPECT_EQ(get32(v3.run(fast), 4), 24000u);
  v3.connect();
  const Picoseconds t0 = t.clock.now();
  v3.run(read_dap(kDpPort, 0x00));
  EXPECT_EQ(t.clock.now() - t0, cycles_to_ps(46, 24'000'000));

  EXPECT_EQ(v3.run({0xF2, 0x43, 1, 0}), (Bytes{kUnknownCommand, 0})) << "V2 clock command";
  EXPECT_EQ(v3.run({0xF2, 0x44, 32, 0}), (Bytes{kUnknownCommand, 0}));
}

TEST_F(StLinkTest, DriveNrst) {
  EXPECT_EQ(host.run({0xF2, 0x3C, 0x00}), (Bytes{kOk, 0}));
  EXPECT_TRUE(target.nrst);
  EXPECT_EQ(host.run({0xF2, 0x3C, 0x01}), (Bytes{kOk, 0}));
  EXPECT_FALSE(target.nrst);
  const Picoseconds t0 = target.clock.now();
  const unsigned pulls = target.nrst_pulls;
  EXPECT_EQ(host.run({0xF2, 0x3C, 0x02}), (Bytes{kOk, 0}));
  EXPECT_EQ(target.nrst_pulls, pulls + 1);
  EXPECT_FALSE(target.nrst);
  EXPECT_EQ(target.clock.now() - t0, kMillisecond);
  EXPECT_EQ(host.run({0xF2, 0x3C, 0x07}), (Bytes{kCmdError, 0}));
}

TEST_F(StLinkTest, TraceCommandsAnswerWithoutData) {
  Bytes start{0xF2, 0x40, 0x00, 0x10};
  put32(start, 2'000'000);
  EXPECT_EQ(host.run(start), (Bytes{kOk, 0}));
  EXPECT_EQ(host.run({0xF2, 0x42}), (Bytes{0, 0}));
  EXPECT_EQ(host.run({0xF2, 0x41}), (Bytes{kOk, 0}));
}

TEST_F(StLinkTest, RwMiscRunsAListOfWordAccesses) {
  host.connect();
  target.bus.mem[FakeBus::kRam + 0x20] = 0x42;
  // APNUM 0, READ ram+0x20, ADDRESS ram+0x24, WRITE 0xCAFE, READ ram+0x24, READ unmapped,
  // an unknown item.
  const std::uint8_t ops[] = {5, 3, 1, 2, 3, 3, 9};
  const std::uint32_t values[] = {0,      FakeBus::kRam + 0x20, FakeBus::kRam + 0x24,
                                  0xCAFE, FakeBus::kRam + 0x24, FakeBus::kUnmapped,
                                  0};
  Bytes data(ops, ops + 7);
  data.push_back(0);  // pad to a multiple of four
  for (std::uint32_t v : values)
    put32(data, v);
  Bytes out{0xF2, 0x51};
  put32(out, 7);
  EXPECT_TRUE(host.run(out, data).empty());
  Bytes r = host.run({0xF2, 0x52});
  ASSERT_EQ(r.size(), 8u * 7);
  EXPECT_EQ(get32(r, 4 * 1), 0x42u);
  EXPECT_EQ(get32(r, 4 * 4), 0xCAFEu);
  const std::uint32_t status[] = {kOk, kOk, kOk, kOk, kOk, kDpFault, kUnknownCommand};
  for (std::size_t i = 0; i < 7; ++i)
    EXPECT_EQ(get32(r, 28 + 4 * i), status[i]) << i;
  EXPECT_TRUE(host.run({0xF2, 0x52}).empty()) << "results are read once";

  // AP 1 was never opened.
  Bytes bad_ap{5, 3, 0, 0};
  put32(bad_ap, 1);
  put32(bad_ap, FakeBus::kRam);
  Bytes out2{0xF2, 0x51};
  put32(out2, 2);
  host.run(out2, bad_ap);
  r = host.run({0xF2, 0x52});
  EXPECT_EQ(get32(r, 8), std::uint32_t{kOk});
  EXPECT_EQ(get32(r, 12), std::uint32_t{kBadAp});

  Bytes too_many{0xF2, 0x51};
  put32(too_many, 65);  // the V2 holds 64 items
  host.run(too_many);
  EXPECT_EQ(host.engine().data_expected(), 0u);
  EXPECT_TRUE(host.run({0xF2, 0x52}).empty());
}

// Core and debug register commands against a real board: the firmware goes through
// DHCSR, DCRSR and DCRDR (ARMv7-M ARM C1.6) on AP 0.
class StLinkBoardTest : public ::testing::Test {
 protected:
  Board board{*find_chip("stm32f103c8"),
              BoardOptions{.serial = "PFTEST", .uid_seed = 0, .state_dir = {}}};
  Host host{board, StLinkVariant::v2};

  Bytes read_debug_reg(std::uint32_t addr) {
    Bytes c{0xF2, 0x36};
    put32(c, addr);
    return host.run(c);
  }
  Bytes write_debug_reg(std::uint32_t addr, std::uint32_t value) {
    Bytes c{0xF2, 0x35};
    put32(c, addr);
    put32(c, value);
    return host.run(c);
  }
};

TEST_F(StLinkBoardTest, HaltRunStepAndStatus) {
  host.connect();
  EXPECT_EQ(host.run({0xF2, 0x02}), (Bytes{kOk, 0}));  // FORCEDEBUG
  EXPECT_EQ(host.run({0xF2, 0x01}), (Bytes{0x81, 0})) << "halted";
  // Something to run: "B ." in SRAM, the PC on it, Thumb state.
  host.run(mem(kWriteMem32, 0x20000000, 4), {0xFE, 0xE7, 0x00, 0xBF});
  ASSERT_EQ(host.rw_status(), kOk);
  Bytes pc{0xF2, 0x34, 15};
  put32(pc, 0x20000000);
  ASSERT_EQ(host.run(pc), (Bytes{kOk, 0}));
  Bytes xpsr{0xF2, 0x34, 16};
  put32(xpsr, 0x01000000);
  ASSERT_EQ(host.run(xpsr), (Bytes{kOk, 0}));
  Bytes dhcsr = read_debug_reg(0xE000EDF0);
  ASSERT_EQ(dhcsr.size(), 8u);
  EXPECT_EQ(dhcsr[0], kOk);
  EXPECT_NE(get32(dhcsr, 4) & (1u << 17), 0u) << "S_HALT";
  EXPECT_EQ(host.run({0xF2, 0x09}), (Bytes{kOk, 0}));  // RUNCORE
  EXPECT_EQ(host.run({0xF2, 0x01}), (Bytes{0x80, 0})) << "running";
  EXPECT_EQ(write_debug_reg(0xE000EDF0, 0xA05F0003), (Bytes{kOk, 0}));
  EXPECT_EQ(host.run({0xF2, 0x01}), (Bytes{0x81, 0}));
  EXPECT_EQ(host.run({0xF2, 0x0A}), (Bytes{kOk, 0}));  // STEPCORE
  EXPECT_EQ(host.run({0xF2, 0x01}), (Bytes{0x81, 0})) << "halted again after one step";
  EXPECT_EQ(read_debug_reg(0x30000000)[0], kDpFault) << "unmapped debug register";
}

TEST_F(StLinkBoardTest, CoreRegisters) {
  host.connect();
  host.run({0xF2, 0x02});
  Bytes w{0xF2, 0x34, 0x00};
  put32(w, 0x12345678);
  EXPECT_EQ(host.run(w), (Bytes{kOk, 0}));  // WRITEREG r0
  Bytes w15{0xF2, 0x34, 15};
  put32(w15, 0x20000100);
  EXPECT_EQ(host.run(w15), (Bytes{kOk, 0}));  // pc
  Bytes r = host.run({0xF2, 0x33, 0x00});
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r[0], kOk);
  EXPECT_EQ(get32(r, 4), 0x12345678u);
  Bytes all = host.run({0xF2, 0x3A});
  ASSERT_EQ(all.size(), 88u);
  EXPECT_EQ(all[0], kOk);
  EXPECT_EQ(get32(all, 4), 0x12345678u) << "r0";
  EXPECT_EQ(get32(all, 4 + 4 * 15), 0x20000100u) << "pc";
  EXPECT_EQ(get32(all, 4 + 4 * 16) & 0x01000000u, 0x01000000u) << "xPSR.T";
  EXPECT_EQ(get32(all, 84), 0u);
}

TEST_F(StLinkBoardTest, ResetSysResetsTheSystem) {
  host.connect();
  read_debug_reg(0xE000EDF0);  // reading DHCSR clears S_RESET_ST
  EXPECT_EQ(get32(read_debug_reg(0xE000EDF0), 4) & (1u << 25), 0u);
  EXPECT_EQ(host.run({0xF2, 0x32}), (Bytes{kOk, 0}));
  EXPECT_NE(get32(read_debug_reg(0xE000EDF0), 4) & (1u << 25), 0u) << "S_RESET_ST";
}

// A debugger read of the flash array stalls while an erase runs (the bus answers busy, the
// DP WAIT): first the retries run out and the host sees the WAIT statuses, then, once the
// erase is over, the same read succeeds.
TEST_F(StLinkBoardTest, FlashEraseStallGivesWaitStatuses) {
  host.connect();
  const ChipInfo& chip = board.chip();
  const std::uint32_t keyr = chip.flash_regs + 0x04, cr = chip.flash_regs + 0x10,
                      ar = chip.flash_regs + 0x14;
  const std::uint32_t page1 = chip.flash_base + chip.page_size;
  // PM0075 2.3.4: unlock, PER, FLASH_AR, PER | STRT.
  for (auto [addr, value] : {std::pair{keyr, 0x45670123u}, std::pair{keyr, 0xCDEF89ABu},
                             std::pair{cr, 0x2u}, std::pair{ar, page1}, std::pair{cr, 0x42u}}) {
    Bytes c{0xF2, 0x35};
    put32(c, addr);
    put32(c, value);
    ASSERT_EQ(host.run(c), (Bytes{kOk, 0}));
  }
  const Picoseconds t0 = board.now();
  host.run(mem(kReadMem32, page1, 4));
  EXPECT_EQ(host.rw_status(), kDpWait);
  host.run(mem(kReadMem32, page1, 8));
  EXPECT_EQ(host.rw_status(), kApWait);
  EXPECT_GT(board.now(), t0) << "wire time of the retries passed";
  board.advance(100 * kMillisecond);
  EXPECT_EQ(host.run(mem(kReadMem32, page1, 8)), Bytes(8, 0xFF));
  EXPECT_EQ(host.rw_status(), kOk);
}

}  // namespace
}  // namespace probefarm::sim
