// The ST-Link driver through the real libusb backend against probefarm-sim's ST-Link V2
// (STM32F103), V2-1 (STM32F407) and V3 (STM32F746) models.
#include <gtest/gtest.h>

#include <numeric>

#include "expect_error.hpp"
#include "probe/stlink.hpp"
#include "sim_fixture.hpp"

namespace probefarm::probe::test {
namespace {

// What each simulated board answers (sim/chip.cpp: DPIDR per RM0008 31.6.3, RM0090 38.6.3,
// RM0385 40.5.3; AHB-AP IDR) and the firmware each probe model reports (sim/stlink.cpp).
struct Expected {
  const char* kind;
  const char* firmware;
  std::uint32_t dpidr;
  std::uint32_t ap_idr;
};
constexpr Expected kV2{"stlink-v2", "V2J40S7", 0x1BA01477, 0x14770011};
constexpr Expected kV2_1{"stlink-v2-1", "V2J40M27", 0x2BA01477, 0x24770011};
constexpr Expected kV3{"stlink-v3", "V3J11M3", 0x5BA02477, 0x74770001};

constexpr std::uint32_t kSram = 0x20000000;
// ADIv5.2 B2.2.2 CTRL/STAT: CSYSPWRUPACK (31), CDBGPWRUPACK (29).
constexpr std::uint32_t kPowerUpAcks = (1u << 31) | (1u << 29);
constexpr std::uint8_t kApIdr = 0xFC;
constexpr std::uint8_t kApCsw = 0x00, kApTar = 0x04, kApDrw = 0x0C;
// ARMv7-M ARM (DDI 0403E) C1.6.2 DHCSR; S_RESET_ST is bit 25.
constexpr std::uint32_t kDhcsr = 0xE000EDF0;
constexpr std::uint32_t kSResetSt = 1u << 25;

class StLinkSimTest : public SimTest {
 protected:
  std::unique_ptr<DapProbe> open(const Expected& e) {
    ProbeList list = list_probes(*usb_);
    const ProbeInfo* info = find(list, serials_[e.kind]);
    if (!info) throw std::runtime_error(std::string("no ") + e.kind + " listed");
    return make_stlink(open_probe(*usb_, *info), *info);
  }

  // Connects and checks identity, voltage, power-up and AP0; then a 4 KiB SRAM round trip
  // at every width.
  void check_probe(const Expected& e) {
    SCOPED_TRACE(e.kind);
    auto probe = open(e);
    EXPECT_EQ(probe->info().firmware_version, e.firmware);
    const int mv = probe->target_voltage_mv();
    EXPECT_GE(mv, 3250);
    EXPECT_LE(mv, 3350);
    EXPECT_EQ(probe->connect(), e.dpidr);

    std::uint32_t ctrl_stat = 0, idr = 0, dpidr = 0;
    probe->queue_dp_read(kDpCtrlStat, &ctrl_stat);
    probe->queue_ap_read(0, kApIdr, &idr);
    probe->queue_dp_read(kDpDpidr, &dpidr);
    DapFlushResult r = probe->flush();
    ASSERT_TRUE(r.ok()) << static_cast<int>(r.ack);
    EXPECT_EQ(r.completed, 3u);
    EXPECT_EQ(ctrl_stat & kPowerUpAcks, kPowerUpAcks) << std::hex << ctrl_stat;
    EXPECT_EQ(idr, e.ap_idr);
    EXPECT_EQ(dpidr, e.dpidr);

    NativeMemory* mem = probe->native_memory();
    ASSERT_NE(mem, nullptr);
    for (unsigned width : {32u, 16u, 8u}) {
      SCOPED_TRACE(width);
      std::vector<std::uint8_t> data(4096);
      std::iota(data.begin(), data.end(), static_cast<std::uint8_t>(width * 3));
      mem->write(0, kSram, data, width, NativeMemory::WriteCheck::each_command);
      std::vector<std::uint8_t> back(4096);
      mem->read(0, kSram, back, width);
      EXPECT_EQ(back, data);
    }
    // Odd sizes and offsets through the 8- and 16-bit commands, read back as words.
    const std::vector<std::uint8_t> bytes = {0xA1, 0xB2, 0xC3};
    mem->write(0, kSram + 0x101, bytes, 8, NativeMemory::WriteCheck::each_command);
    const std::vector<std::uint8_t> half = {0x34, 0x12};
    mem->write(0, kSram + 0x106, half, 16, NativeMemory::WriteCheck::each_command);
    std::vector<std::uint8_t> words(8);
    mem->read(0, kSram + 0x100, words, 32);
    EXPECT_EQ(words[1], 0xA1);
    EXPECT_EQ(words[3], 0xC3);
    EXPECT_EQ(words[6], 0x34);
    EXPECT_EQ(words[7], 0x12);

    // The same memory through the MEM-AP registers: CSW word size + auto-increment, TAR,
    // DRW block read (ADIv5.2 C2.6).
    std::vector<std::uint32_t> drw(4);
    probe->queue_ap_write(0, kApCsw, 0x23000012);
    probe->queue_ap_write(0, kApTar, kSram);
    probe->queue_ap_read_block(0, kApDrw, drw);
    r = probe->flush();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.completed, 6u);
    std::vector<std::uint8_t> first(16);
    mem->read(0, kSram, first, 32);
    for (std::size_t i = 0; i < 4; ++i)
      EXPECT_EQ(drw[i], stlink_word(first, 4 * i)) << i;
    probe->disconnect();
  }

  static std::uint32_t stlink_word(const std::vector<std::uint8_t>& b, std::size_t at) {
    return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
  }

  std::uint32_t read_word(DapProbe& probe, std::uint32_t address) {
    std::vector<std::uint8_t> b(4);
    probe.native_memory()->read(0, address, b, 32);
    return stlink_word(b, 0);
  }
};

TEST_F(StLinkSimTest, V2OnF103) {
  check_probe(kV2);
}
TEST_F(StLinkSimTest, V2_1OnF407) {
  check_probe(kV2_1);
}
TEST_F(StLinkSimTest, V3OnF746) {
  check_probe(kV3);
}

TEST_F(StLinkSimTest, SpeedOnV2AndV3) {
  // (asked, got): the V2's divisor table, the V3's GET_COM_FREQ list; each probe then
  // connects at the clock set last.
  using Speeds = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  auto check_speeds = [&](const Expected& e, const Speeds& speeds) {
    SCOPED_TRACE(e.kind);
    auto probe = open(e);
    for (auto [asked, got] : speeds)
      EXPECT_EQ(probe->set_speed_khz(asked), got) << asked << " kHz";
    EXPECT_EQ(probe->connect(), e.dpidr);
    return probe;
  };
  check_speeds(kV2, {{2000, 1800}, {100000, 4000}, {1, 5}, {4000, 4000}});
  auto p3 = check_speeds(kV3, {{2000, 1000}, {30000, 24000}, {1, 5}, {8000, 8000}});
  std::vector<std::uint8_t> data(1024, 0x5C), back(1024);
  p3->native_memory()->write(0, kSram, data, 32, NativeMemory::WriteCheck::each_command);
  p3->native_memory()->read(0, kSram, back, 32);
  EXPECT_EQ(back, data);
}

TEST_F(StLinkSimTest, NrstHoldsTheCoreInReset) {
  auto probe = open(kV2);
  probe->connect();
  read_word(*probe, kDhcsr);  // S_RESET_ST clears on read
  EXPECT_EQ(read_word(*probe, kDhcsr) & kSResetSt, 0u);
  probe->set_nrst(true);
  EXPECT_NE(read_word(*probe, kDhcsr) & kSResetSt, 0u);
  EXPECT_NE(read_word(*probe, kDhcsr) & kSResetSt, 0u);  // still held
  probe->set_nrst(false);
  read_word(*probe, kDhcsr);
  EXPECT_EQ(read_word(*probe, kDhcsr) & kSResetSt, 0u);
}

// READDEBUG_32BIT / WRITEDEBUG_32BIT and READREG / WRITEREG: one command per access.
TEST_F(StLinkSimTest, SingleAccessCommandsReachMemoryAndCoreRegisters) {
  auto probe = open(kV2);
  probe->connect();
  NativeMemory& mem = *probe->native_memory();
  mem.write_word(kSram + 0x40, 0xC0FFEE11);
  EXPECT_EQ(mem.read_word(kSram + 0x40), 0xC0FFEE11u);
  EXPECT_EQ(read_word(*probe, kSram + 0x40), 0xC0FFEE11u) << "READMEM agrees";

  // Core registers of a halted core: DHCSR C_DEBUGEN | C_HALT (ARMv7-M ARM C1.6.2).
  mem.write_word(kDhcsr, 0xA05F0003);
  mem.write_core_register(1, 0x12345678);      // r1
  mem.write_core_register(15, kSram + 0x100);  // PC
  EXPECT_EQ(mem.read_core_register(1), 0x12345678u);
  EXPECT_EQ(mem.read_core_register(15), kSram + 0x100);
  // The same register through DCRSR/DCRDR by hand (C1.6.3).
  mem.write_word(0xE000EDF4, 1);
  EXPECT_EQ(mem.read_word(0xE000EDF8), 0x12345678u);

  EXPECT_EQ(expect_error([&] { mem.read_word(kSram + 2); }).category(), ErrorCategory::usage);
  // Nothing answers at 0x30000000 on the F103: a FAULT naming the address.
  Error e = expect_error([&] { mem.read_word(0x30000000); });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_TRUE(contains(e.message(), "0x30000000")) << e.message();
  EXPECT_EQ(mem.read_word(kSram + 0x40), 0xC0FFEE11u) << "sticky flags cleared after the fault";
}

TEST_F(StLinkSimTest, WaitIsRetriedAndFaultIsReported) {
  auto probe = open(kV2_1);
  probe->connect();
  // 150 WAITs: more than the firmware's own retries (it reports SWD_AP_WAIT), fewer than
  // the driver's second attempt needs.
  ASSERT_EQ(ctl({"wait", serials_[kV2_1.kind], "150"}), 0);
  std::uint32_t idr = 0;
  probe->queue_ap_read(0, kApIdr, &idr);
  DapFlushResult r = probe->flush();
  EXPECT_TRUE(r.ok()) << static_cast<int>(r.ack);
  EXPECT_EQ(idr, kV2_1.ap_idr);
  // A target that never stops answering WAIT: the driver gives up within its budget.
  ASSERT_EQ(ctl({"wait", serials_[kV2_1.kind], "1000000"}), 0);
  probe->queue_ap_read(0, kApIdr, &idr);
  r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::wait);
  EXPECT_EQ(r.completed, 0u);
  ASSERT_EQ(ctl({"wait", serials_[kV2_1.kind], "0"}), 0);

  // An unmapped address: the AHB answers ERROR, the MEM-AP FAULT.
  std::vector<std::uint8_t> buf(64);
  Error e = expect_error([&] { probe->native_memory()->read(0, 0x30000000, buf, 32); });
  EXPECT_EQ(e.category(), ErrorCategory::target_not_responding);
  EXPECT_TRUE(contains(e.message(), "0x30000000")) << e.message();
  // The driver cleared the sticky flags: memory works again.
  EXPECT_EQ(read_word(*probe, 0xE0042000) & 0xFFF, 0x413u);  // DBGMCU_IDCODE DEV_ID, RM0090

  // Through the registers: TAR at the hole, DRW read FAULTs; completed stops before it.
  std::uint32_t v = 0;
  probe->queue_ap_write(0, kApCsw, 0x23000012);
  probe->queue_ap_write(0, kApTar, 0x30000000);
  probe->queue_ap_read(0, kApDrw, &v);
  probe->queue_dp_read(kDpCtrlStat, &v);
  r = probe->flush();
  EXPECT_EQ(r.ack, DapAck::fault);
  EXPECT_EQ(r.completed, 2u);
  // STICKYERR set; ABORT clears it (ADIv5.2 B2.2.1).
  std::uint32_t ctrl_stat = 0;
  probe->queue_dp_read(kDpCtrlStat, &ctrl_stat);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_NE(ctrl_stat & (1u << 5), 0u) << std::hex << ctrl_stat;
  probe->queue_dp_write(kDpAbort, 0x1E);
  probe->queue_dp_read(kDpCtrlStat, &ctrl_stat);
  ASSERT_TRUE(probe->flush().ok());
  EXPECT_EQ(ctrl_stat & (1u << 5), 0u) << std::hex << ctrl_stat;
}

TEST_F(StLinkSimTest, UnplugIsAProbeError) {
  auto probe = open(kV3);
  probe->connect();
  ASSERT_EQ(ctl({"unplug", serials_[kV3.kind]}), 0);
  std::vector<std::uint8_t> buf(16);
  Error e = expect_error([&] { probe->native_memory()->read(0, kSram, buf, 32); });
  EXPECT_EQ(e.category(), ErrorCategory::probe_io);
  EXPECT_TRUE(contains(e.message(), "unplugged")) << e.message();
  std::uint32_t v = 0;
  probe->queue_dp_read(kDpCtrlStat, &v);
  EXPECT_EQ(expect_error([&] { probe->flush(); }).category(), ErrorCategory::probe_io);
  probe.reset();  // the destructor's EXIT fails quietly
}

}  // namespace
}  // namespace probefarm::probe::test
