#include "mem_ap.hpp"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace probefarm::sim {
namespace {

// A byte-addressed RAM at 0x20000000, an address that answers ERROR and one that stalls
// until a given time. Records every access so tests can see what reached the bus.
class RamBus final : public DebugBus {
 public:
  static constexpr std::uint32_t kRam = 0x20000000;
  static constexpr std::uint32_t kError = 0x40000000;
  static constexpr std::uint32_t kSlow = 0x08000000;

  struct Access {
    bool read;
    std::uint32_t addr;
    std::uint32_t value;
    unsigned size;
  };

  BusResponse read(std::uint32_t addr, unsigned size) override {
    accesses.push_back({true, addr, 0, size});
    if (addr == kError) return {BusStatus::error, 0, 0};
    if (addr == kSlow && stalls > 0) {
      --stalls;
      return {BusStatus::busy, 0, 1000};
    }
    std::uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i)
      v |= std::uint32_t{mem[addr + i]} << (8 * i);
    return {BusStatus::ok, v, 0};
  }
  BusResponse write(std::uint32_t addr, std::uint32_t value, unsigned size) override {
    accesses.push_back({false, addr, value, size});
    if (addr == kError) return {BusStatus::error, 0, 0};
    if (addr == kSlow && stalls > 0) {
      --stalls;
      return {BusStatus::busy, 0, 1000};
    }
    for (unsigned i = 0; i < size; ++i)
      mem[addr + i] = static_cast<std::uint8_t>(value >> (8 * i));
    return {};
  }

  std::map<std::uint32_t, std::uint8_t> mem;
  std::vector<Access> accesses;
  int stalls = 0;
};

class MemApTest : public ::testing::Test {
 protected:
  std::uint32_t rd(unsigned reg) {
    ApResponse r = ap.read(reg);
    EXPECT_EQ(r.status, BusStatus::ok);
    return r.data;
  }
  void wr(unsigned reg, std::uint32_t v) { EXPECT_EQ(ap.write(reg, v).status, BusStatus::ok); }

  RamBus bus;
  MemAp ap{0x24770011, bus};
};

TEST_F(MemApTest, IdentificationRegisters) {
  EXPECT_EQ(rd(MemAp::kIdr), 0x24770011u);
  EXPECT_EQ(rd(MemAp::kBase), 0xE00FF003u);
  EXPECT_EQ(rd(MemAp::kCfg), 0u);
  EXPECT_EQ(rd(MemAp::kCsw), 0x03000040u);
}

TEST_F(MemApTest, CswKeepsSupportedFieldsOnly) {
  wr(MemAp::kCsw, 0xA2000012);  // DbgSwEnable, Prot, AddrInc single, 32-bit
  EXPECT_EQ(rd(MemAp::kCsw), 0xA2000052u);
  wr(MemAp::kCsw, 0xA2000025);  // reserved size 5 and packed increment
  EXPECT_EQ(rd(MemAp::kCsw), 0xA2000042u) << "size kept, packed increment not supported";
}

TEST_F(MemApTest, WordWriteAndRead) {
  wr(MemAp::kCsw, 0x02);
  wr(MemAp::kTar, RamBus::kRam + 8);
  wr(MemAp::kDrw, 0xDEADBEEF);
  EXPECT_EQ(bus.mem[RamBus::kRam + 8], 0xEF);
  EXPECT_EQ(bus.mem[RamBus::kRam + 11], 0xDE);
  EXPECT_EQ(rd(MemAp::kDrw), 0xDEADBEEFu);
  EXPECT_EQ(rd(MemAp::kTar), RamBus::kRam + 8) << "AddrInc off";
}

TEST_F(MemApTest, ByteLanesFollowTheAddress) {
  wr(MemAp::kCsw, 0x10);  // 8-bit, increment
  wr(MemAp::kTar, RamBus::kRam + 1);
  wr(MemAp::kDrw, 0x0000AB00);  // lane 1
  wr(MemAp::kDrw, 0x00CD0000);  // lane 2
  EXPECT_EQ(bus.mem[RamBus::kRam + 1], 0xAB);
  EXPECT_EQ(bus.mem[RamBus::kRam + 2], 0xCD);
  ASSERT_EQ(bus.accesses.size(), 2u);
  EXPECT_EQ(bus.accesses[0].addr, RamBus::kRam + 1);
  EXPECT_EQ(bus.accesses[0].value, 0xABu) << "the bus takes right-aligned values";
  EXPECT_EQ(bus.accesses[0].size, 1u);

  wr(MemAp::kTar, RamBus::kRam + 2);
  EXPECT_EQ(rd(MemAp::kDrw), 0x00CD0000u);

  wr(MemAp::kCsw, 0x11);  // 16-bit, increment
  wr(MemAp::kTar, RamBus::kRam + 6);
  wr(MemAp::kDrw, 0x12340000);  // upper halfword lane
  EXPECT_EQ(bus.mem[RamBus::kRam + 6], 0x34);
  EXPECT_EQ(bus.mem[RamBus::kRam + 7], 0x12);
  EXPECT_EQ(rd(MemAp::kTar), RamBus::kRam + 8);
  wr(MemAp::kTar, RamBus::kRam + 6);
  EXPECT_EQ(rd(MemAp::kDrw), 0x12340000u);
}

TEST_F(MemApTest, AutoIncrementWrapsWithinOneKilobyte) {
  wr(MemAp::kCsw, 0x12);
  wr(MemAp::kTar, RamBus::kRam + 0x3FC);
  wr(MemAp::kDrw, 1);
  EXPECT_EQ(rd(MemAp::kTar), RamBus::kRam) << "only TAR[9:0] increments";
  wr(MemAp::kDrw, 2);
  EXPECT_EQ(bus.accesses.back().addr, RamBus::kRam);
}

TEST(MemApBlock, CortexM4AhbApIncrementsAcrossFourKilobytes) {
  RamBus bus;
  MemAp ap{0x24770011, bus, 4096};
  ap.write(MemAp::kCsw, 0x12);
  ap.write(MemAp::kTar, RamBus::kRam + 0x3FC);
  ap.write(MemAp::kDrw, 1);
  EXPECT_EQ(ap.read(MemAp::kTar).data, RamBus::kRam + 0x400);
  ap.write(MemAp::kTar, RamBus::kRam + 0xFFC);
  ap.write(MemAp::kDrw, 2);
  EXPECT_EQ(ap.read(MemAp::kTar).data, RamBus::kRam) << "wraps within the 4 KiB block";
}

TEST_F(MemApTest, BankedDataUsesTarBlock) {
  wr(MemAp::kCsw, 0x12);
  wr(MemAp::kTar, RamBus::kRam + 0x24);
  wr(MemAp::kBd0 + 8, 0x11223344);  // BD2
  EXPECT_EQ(bus.accesses.back().addr, RamBus::kRam + 0x28);
  EXPECT_EQ(rd(MemAp::kBd0 + 8), 0x11223344u);
  EXPECT_EQ(rd(MemAp::kTar), RamBus::kRam + 0x24) << "BDn never increments TAR";
}

TEST_F(MemApTest, BusErrorReadsZeroAndKeepsTar) {
  wr(MemAp::kCsw, 0x12);
  wr(MemAp::kTar, RamBus::kError);
  ApResponse r = ap.read(MemAp::kDrw);
  EXPECT_EQ(r.status, BusStatus::error);
  EXPECT_EQ(r.data, 0u);
  EXPECT_EQ(rd(MemAp::kTar), RamBus::kError);
}

TEST_F(MemApTest, StalledAccessResumes) {
  bus.mem[RamBus::kSlow] = 0x5A;
  bus.stalls = 2;
  wr(MemAp::kCsw, 0x10);
  wr(MemAp::kTar, RamBus::kSlow);
  ApResponse r = ap.read(MemAp::kDrw);
  EXPECT_EQ(r.status, BusStatus::busy);
  EXPECT_EQ(r.busy_until, 1000u);
  EXPECT_TRUE(ap.in_progress());
  EXPECT_EQ(ap.read(MemAp::kCsw).data & 0x80, 0x80u) << "TrInProg";
  EXPECT_EQ(ap.resume().status, BusStatus::busy);
  r = ap.resume();
  EXPECT_EQ(r.status, BusStatus::ok);
  EXPECT_EQ(r.data, 0x5Au);
  EXPECT_FALSE(ap.in_progress());
  EXPECT_EQ(rd(MemAp::kTar), RamBus::kSlow + 1);
}

}  // namespace
}  // namespace probefarm::sim
