// The ST-Link command set as bytes: command block layouts, answer parsing, version strings,
// clock tables, status classes (probe/stlink_commands.hpp). No I/O.
#include "probe/stlink_commands.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace probefarm::probe::test {
namespace {

namespace st = probefarm::probe::stlink;

std::vector<int> bytes(const st::Cdb& c) {
  return std::vector<int>(c.begin(), c.end());
}

std::vector<int> padded(std::vector<int> head) {
  head.resize(st::kCdbSize, 0);
  return head;
}

TEST(StLinkCommands, SimpleCommandLayouts) {
  EXPECT_EQ(bytes(st::cdb_get_version()), padded({0xF1}));
  EXPECT_EQ(bytes(st::cdb_get_version_ex()), padded({0xFB}));
  EXPECT_EQ(bytes(st::cdb_get_current_mode()), padded({0xF5}));
  EXPECT_EQ(bytes(st::cdb_get_target_voltage()), padded({0xF7}));
  EXPECT_EQ(bytes(st::cdb_dfu_exit()), padded({0xF3, 0x07}));
  EXPECT_EQ(bytes(st::cdb_swim_exit()), padded({0xF4, 0x01}));
  EXPECT_EQ(bytes(st::cdb_exit_debug()), padded({0xF2, 0x21}));
  EXPECT_EQ(bytes(st::cdb_enter_swd()), padded({0xF2, 0x30, 0xA3}));
  EXPECT_EQ(bytes(st::cdb_get_last_rw_status2()), padded({0xF2, 0x3E}));
  EXPECT_EQ(bytes(st::cdb_drive_nrst(true)), padded({0xF2, 0x3C, 0x00}));
  EXPECT_EQ(bytes(st::cdb_drive_nrst(false)), padded({0xF2, 0x3C, 0x01}));
  EXPECT_EQ(bytes(st::cdb_init_ap(3)), padded({0xF2, 0x4B, 0x03}));
}

TEST(StLinkCommands, DapRegisterLayouts) {
  // DP CTRL/STAT in bank 0: port 0xFFFF, address 0x0004.
  EXPECT_EQ(bytes(st::cdb_read_dap_reg(st::kDpPort, 0x04)),
            padded({0xF2, 0x45, 0xFF, 0xFF, 0x04, 0x00}));
  // AP 1 IDR.
  EXPECT_EQ(bytes(st::cdb_read_dap_reg(1, 0xFC)), padded({0xF2, 0x45, 0x01, 0x00, 0xFC, 0x00}));
  EXPECT_EQ(bytes(st::cdb_write_dap_reg(0, 0x04, 0x20000010)),
            padded({0xF2, 0x46, 0x00, 0x00, 0x04, 0x00, 0x10, 0x00, 0x00, 0x20}));
}

TEST(StLinkCommands, ClockLayouts) {
  EXPECT_EQ(bytes(st::cdb_swd_set_freq(798)), padded({0xF2, 0x43, 0x1E, 0x03}));
  EXPECT_EQ(bytes(st::cdb_get_com_freq()), padded({0xF2, 0x62, 0x00}));
  EXPECT_EQ(bytes(st::cdb_set_com_freq(24000)),
            padded({0xF2, 0x61, 0x00, 0x00, 0xC0, 0x5D, 0x00, 0x00}));
}

TEST(StLinkCommands, MemoryLayouts) {
  EXPECT_EQ(bytes(st::cdb_memory(false, 32, 0x20000400, 1024, 0)),
            padded({0xF2, 0x07, 0x00, 0x04, 0x00, 0x20, 0x00, 0x04, 0x00}));
  EXPECT_EQ(bytes(st::cdb_memory(true, 32, 0x08000000, 16, 1)),
            padded({0xF2, 0x08, 0x00, 0x00, 0x00, 0x08, 0x10, 0x00, 0x01}));
  EXPECT_EQ(bytes(st::cdb_memory(false, 16, 0x40021000, 2, 0))[1], 0x47);
  EXPECT_EQ(bytes(st::cdb_memory(true, 16, 0x40021000, 2, 0))[1], 0x48);
  EXPECT_EQ(bytes(st::cdb_memory(false, 8, 0x20000001, 1, 0)),
            padded({0xF2, 0x0C, 0x01, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00}));
  EXPECT_EQ(bytes(st::cdb_memory(true, 8, 0x20000001, 64, 2)),
            padded({0xF2, 0x0D, 0x01, 0x00, 0x00, 0x20, 0x40, 0x00, 0x02}));
}

TEST(StLinkVersion, V2WithSwim) {
  // 0x2A07: V=2, J=40, S=7; VID 0x0483, PID 0x3748 little-endian.
  const std::uint8_t r[] = {0x2A, 0x07, 0x83, 0x04, 0x48, 0x37};
  const st::Version v = st::parse_version(r, false);
  EXPECT_EQ(v.stlink, 2u);
  EXPECT_EQ(v.jtag, 40u);
  EXPECT_EQ(v.swim, 7u);
  EXPECT_EQ(v.msd, 0u);
  EXPECT_EQ(v.vid, 0x0483);
  EXPECT_EQ(v.pid, 0x3748);
  EXPECT_EQ(v.text(), "V2J40S7");
}

TEST(StLinkVersion, V2_1WithMassStorage) {
  // 0x2A1B: V=2, J=40, M=27 (the V2-1's low field is its mass-storage firmware).
  const std::uint8_t r[] = {0x2A, 0x1B, 0x83, 0x04, 0x4B, 0x37};
  const st::Version v = st::parse_version(r, true);
  EXPECT_EQ(v.msd, 27u);
  EXPECT_EQ(v.swim, 0u);
  EXPECT_EQ(v.pid, 0x374B);
  EXPECT_EQ(v.text(), "V2J40M27");
}

TEST(StLinkVersion, OldV2) {
  // 0x25C4 = V2, J23, S4.
  const std::uint8_t r[] = {0x25, 0xC4, 0x83, 0x04, 0x48, 0x37};
  const st::Version v = st::parse_version(r, false);
  EXPECT_EQ(v.text(), "V2J23S4");
  EXPECT_FALSE(st::supports(v, st::kDapRegisterAccess));
  EXPECT_EQ(st::minimum_text(v, st::kDapRegisterAccess), "V2J24");
}

TEST(StLinkVersion, V3Extended) {
  const std::uint8_t r[] = {3, 0, 11, 3, 0, 0, 0, 0, 0x83, 0x04, 0x4E, 0x37};
  const st::Version v = st::parse_version_ex(r);
  EXPECT_EQ(v.text(), "V3J11M3");
  EXPECT_EQ(v.pid, 0x374E);
  const std::uint8_t full[] = {3, 1, 7, 3, 3, 0, 0, 0, 0x83, 0x04, 0x4F, 0x37};
  EXPECT_EQ(st::parse_version_ex(full).text(), "V3J7M3B3S1");
}

TEST(StLinkVersion, FeatureThresholds) {
  st::Version v2{.stlink = 2, .jtag = 27};
  EXPECT_TRUE(st::supports(v2, st::kDapRegisterAccess));
  EXPECT_TRUE(st::supports(v2, st::kMemory16Bit));
  EXPECT_FALSE(st::supports(v2, st::kMultiAp));
  EXPECT_EQ(st::minimum_text(v2, st::kMultiAp), "V2J28");
  EXPECT_EQ(st::minimum_text(v2, st::kBankedDp), "V2J32");
  EXPECT_EQ(st::max_rw8(v2), 64u);
  st::Version v3{.stlink = 3, .jtag = 1};
  EXPECT_TRUE(st::supports(v3, st::kMultiAp));
  EXPECT_FALSE(st::supports(v3, st::kBankedDp));
  EXPECT_EQ(st::minimum_text(v3, st::kBankedDp), "V3J2");
  EXPECT_EQ(st::max_rw8(v3), 64u);
  v3.jtag = 6;
  EXPECT_EQ(st::max_rw8(v3), 512u);
}

TEST(StLinkClock, V2DivisorTable) {
  // "using 1800 kHz instead of 2000 kHz"
  EXPECT_EQ(st::pick_v2_divisor(2000).khz, 1800u);
  EXPECT_EQ(st::pick_v2_divisor(2000).divisor, 1);
  EXPECT_EQ(st::pick_v2_divisor(4000).divisor, 0);
  EXPECT_EQ(st::pick_v2_divisor(100000).khz, 4000u);
  EXPECT_EQ(st::pick_v2_divisor(950).divisor, 3);
  EXPECT_EQ(st::pick_v2_divisor(949).khz, 650u);
  // Below the slowest: the slowest.
  EXPECT_EQ(st::pick_v2_divisor(1).khz, 5u);
  EXPECT_EQ(st::pick_v2_divisor(0).divisor, 798);
}

TEST(StLinkClock, V3FrequencyList) {
  const std::uint32_t list[] = {24000, 8000, 3300, 1000, 200, 50, 5};
  EXPECT_EQ(st::pick_frequency(list, 2000), 1000u);
  EXPECT_EQ(st::pick_frequency(list, 24000), 24000u);
  EXPECT_EQ(st::pick_frequency(list, 50000), 24000u);
  EXPECT_EQ(st::pick_frequency(list, 4), 5u);
  const std::uint32_t unordered[] = {200, 24000, 1000};
  EXPECT_EQ(st::pick_frequency(unordered, 999), 200u);
  EXPECT_EQ(st::pick_frequency(std::span<const std::uint32_t>{}, 1000), 0u);
}

TEST(StLinkAnswers, TargetVoltage) {
  // adc0 = 1489 (1.2 V of 3.3 V full scale), adc1 = 2048 (VTref / 2): 2 * 1.2 * 2048 / 1489.
  const std::uint8_t r[] = {0xD1, 0x05, 0, 0, 0x00, 0x08, 0, 0};
  EXPECT_EQ(st::parse_target_voltage_mv(r), 3301);
  const std::uint8_t none[] = {0, 0, 0, 0, 0x00, 0x08, 0, 0};
  EXPECT_EQ(st::parse_target_voltage_mv(none), -1);
}

TEST(StLinkAnswers, ComFreqAndRwStatus) {
  std::vector<std::uint8_t> r(st::kGetComFreqSize, 0);
  r[0] = 0x80;
  r[8] = 2;
  r[12] = 0xC0;
  r[13] = 0x5D;  // 24000
  r[16] = 0xE8;
  r[17] = 0x03;  // 1000
  EXPECT_EQ(st::parse_com_freq(r), (std::vector<std::uint32_t>{24000, 1000}));
  const std::uint8_t s[] = {0x11, 0, 0, 0, 0x04, 0x00, 0x00, 0x30, 0, 0, 0, 0};
  const st::RwStatus rw = st::parse_rw_status2(s);
  EXPECT_EQ(rw.status, st::kApFault);
  EXPECT_EQ(rw.fault_address, 0x30000004u);
}

TEST(StLinkStatus, Classes) {
  using C = st::StatusClass;
  EXPECT_EQ(st::classify(0x80), C::ok);
  EXPECT_EQ(st::classify(0x10), C::wait);
  EXPECT_EQ(st::classify(0x14), C::wait);
  for (std::uint8_t f : {0x11, 0x15, 0x18, 0x19, 0x1A})
    EXPECT_EQ(st::classify(f), C::fault) << int(f);
  EXPECT_EQ(st::classify(0x12), C::no_response);
  EXPECT_EQ(st::classify(0x16), C::no_response);
  EXPECT_EQ(st::classify(0x13), C::protocol_error);
  EXPECT_EQ(st::classify(0x17), C::protocol_error);
  for (std::uint8_t p : {0x08, 0x0A, 0x1D, 0x41, 0x42, 0x77})
    EXPECT_EQ(st::classify(p), C::probe_error) << int(p);
  EXPECT_EQ(st::dap_ack(C::fault), DapAck::fault);
  EXPECT_EQ(st::dap_ack(C::no_response), DapAck::no_response);
  EXPECT_EQ(st::describe_status(0x16), "0x16 (SWD_DP_ERROR)");
}

TEST(StLinkMemory, ChunksStopAtLimitsAndKiBBoundaries) {
  EXPECT_EQ(st::chunk_size(0x20000000, 4096, st::kMaxRw16_32), 1024u);
  EXPECT_EQ(st::chunk_size(0x200003F0, 4096, st::kMaxRw16_32), 16u);
  EXPECT_EQ(st::chunk_size(0x20000000, 100, 64), 64u);
  EXPECT_EQ(st::chunk_size(0x200003F8, 100, 64), 8u);
  EXPECT_EQ(st::chunk_size(0x20000000, 12, 64), 12u);
}

}  // namespace
}  // namespace probefarm::probe::test
