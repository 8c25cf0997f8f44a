// The ST-Link USB device models: identities, descriptors as a host parses them (the V2's
// binary serial included), the debug endpoints of each variant, and the virtual-time cost
// of their traffic; and the probe factory's ST-Link kinds.
#include "usb_stlink.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "board.hpp"
#include "chip.hpp"
#include "probe_factory.hpp"
#include "usb_descriptor_reader.hpp"

namespace probefarm::sim {
namespace {

using Bytes = std::vector<std::uint8_t>;

using test::ascii;
using test::le16;

struct Endpoint {
  std::uint8_t interface;
  std::uint8_t address;
  std::uint8_t attributes;
  std::uint16_t max_packet;
};

// Walks a configuration descriptor: endpoints with the interface they belong to.
std::vector<Endpoint> endpoints(const Bytes& c) {
  std::vector<Endpoint> eps;
  std::uint8_t itf = 0xFF;
  for (std::size_t at = 0; at + 1 < c.size() && c[at] >= 2; at += c[at]) {
    if (c[at + 1] == 4) itf = c[at + 2];
    if (c[at + 1] == 5) eps.push_back({itf, c[at + 2], c[at + 3], le16(c, at + 4)});
  }
  return eps;
}

class UsbStLinkTest : public ::testing::Test {
 protected:
  Board board_{*find_chip("stm32f103c8"),
               BoardOptions{.serial = "504630314631303343385F5F", .uid_seed = 1, .state_dir = {}}};
};

TEST_F(UsbStLinkTest, V2IsAFullSpeedVendorDeviceWithThreeBulkEndpoints) {
  UsbStLink usb(board_, StLinkVariant::v2);
  EXPECT_EQ(usb.probe_kind(), "stlink-v2");
  EXPECT_EQ(usb.speed(), UsbSpeed::full);
  Bytes d = usb.device_descriptor();
  ASSERT_EQ(d.size(), 18u);
  EXPECT_EQ(le16(d, 2), 0x0200);  // bcdUSB
  EXPECT_EQ(d[4], 0x00);          // class per interface
  EXPECT_EQ(d[7], 64);
  EXPECT_EQ(le16(d, 8), 0x0483);
  EXPECT_EQ(le16(d, 10), 0x3748);
  EXPECT_EQ(le16(d, 12), 0x0100);
  EXPECT_EQ(ascii(usb.string_descriptor(d[14])), "STMicroelectronics");
  EXPECT_EQ(ascii(usb.string_descriptor(d[15])), "STM32 STLink");

  Bytes c = usb.config_descriptor();
  ASSERT_EQ(c.size(), 39u);
  EXPECT_EQ(le16(c, 2), 39);
  EXPECT_EQ(c[4], 1);   // one interface
  EXPECT_EQ(c[8], 50);  // 100 mA
  EXPECT_EQ(c[9 + 5], 0xFF);
  auto eps = endpoints(c);
  ASSERT_EQ(eps.size(), 3u);
  const std::uint8_t addrs[] = {0x81, 0x02, 0x83};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(eps[i].address, addrs[i]);
    EXPECT_EQ(eps[i].attributes, 0x02) << "bulk";
    EXPECT_EQ(eps[i].max_packet, 64);
  }
  EXPECT_EQ(usb.command_endpoint(), 0x02);
  EXPECT_EQ(usb.trace_endpoint(), 0x83);
}

TEST_F(UsbStLinkTest, V2SerialIsTwelveBinaryBytes) {
  UsbStLink usb(board_, StLinkVariant::v2);
  EXPECT_EQ(usb.serial(), "504630314631303343385F5F") << "defaults to the board's serial";
  Bytes s = usb.string_descriptor(usb.device_descriptor()[16]);
  // 26 bytes: header and one UTF-16 unit per byte, the byte itself in the low half.
  ASSERT_EQ(s.size(), 26u);
  EXPECT_EQ(s[0], 26);
  EXPECT_EQ(s[1], 3);
  const Bytes raw{'P', 'F', '0', '1', 'F', '1', '0', '3', 'C', '8', '_', '_'};
  for (std::size_t i = 0; i < 12; ++i) {
    EXPECT_EQ(s[2 + 2 * i], raw[i]);
    EXPECT_EQ(s[3 + 2 * i], 0);
  }

  UsbStLink lower(board_, StLinkVariant::v2, "57ff72067265575742132067");
  EXPECT_EQ(lower.serial(), "57FF72067265575742132067");
  Bytes b = lower.string_descriptor(3);
  EXPECT_EQ(b[2], 0x57);
  EXPECT_EQ(b[4], 0xFF) << "bytes outside ASCII go out as they are";
  EXPECT_EQ(b[24], 0x67);

  for (const char* bad : {"PFSIM01F103C8", "57FF7206726557574213206", "57FF72067265575742132067AA",
                          "57FF7206726557574213206G"}) {
    try {
      UsbStLink u(board_, StLinkVariant::v2, bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("24 hex digits"), std::string::npos) << e.what();
    }
  }
}

TEST_F(UsbStLinkTest, V2_1IsACompositeFullSpeedDevice) {
  UsbStLink usb(board_, StLinkVariant::v2_1, "066DFF535155878281123456");
  EXPECT_EQ(usb.probe_kind(), "stlink-v2-1");
  EXPECT_EQ(usb.speed(), UsbSpeed::full);
  Bytes d = usb.device_descriptor();
  EXPECT_EQ(le16(d, 10), 0x374B);
  EXPECT_EQ(d[4], 0xEF);  // interface association
  EXPECT_EQ(d[5], 0x02);
  EXPECT_EQ(d[6], 0x01);
  EXPECT_EQ(ascii(usb.string_descriptor(d[16])), "066DFF535155878281123456")
      << "a printable serial";
  Bytes c = usb.config_descriptor();
  EXPECT_EQ(le16(c, 2), c.size());
  EXPECT_EQ(c.size(), 128u);
  EXPECT_EQ(c[4], 4);  // debug, mass storage, CDC control, CDC data
  auto eps = endpoints(c);
  ASSERT_EQ(eps.size(), 8u);
  EXPECT_EQ(eps[0].interface, 0);
  EXPECT_EQ(eps[0].address, 0x81);
  EXPECT_EQ(eps[1].address, 0x01);
  EXPECT_EQ(eps[2].address, 0x82);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(eps[i].max_packet, 64);
  EXPECT_EQ(usb.command_endpoint(), 0x01);
  EXPECT_EQ(usb.trace_endpoint(), 0x82);
}

TEST_F(UsbStLinkTest, V3IsACompositeHighSpeedDevice) {
  UsbStLink usb(board_, StLinkVariant::v3, "003A00323037510B35333131");
  EXPECT_EQ(usb.probe_kind(), "stlink-v3");
  EXPECT_EQ(usb.speed(), UsbSpeed::high);
  Bytes d = usb.device_descriptor();
  EXPECT_EQ(le16(d, 10), 0x374E);
  EXPECT_EQ(ascii(usb.string_descriptor(d[15])), "STLINK-V3");
  Bytes c = usb.config_descriptor();
  EXPECT_EQ(c.size(), 128u);
  EXPECT_EQ(c[8], 250);  // 500 mA
  auto eps = endpoints(c);
  ASSERT_EQ(eps.size(), 8u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(eps[i].interface, 0);
    EXPECT_EQ(eps[i].max_packet, 512);
  }
  EXPECT_EQ(eps[0].address, 0x81);
  EXPECT_EQ(eps[1].address, 0x01);
  EXPECT_EQ(eps[2].address, 0x82);
  EXPECT_EQ(eps[5].attributes, 0x03) << "CDC notification endpoint is interrupt";
  EXPECT_EQ(usb.string_descriptor(0), (Bytes{4, 3, 0x09, 0x04}));
  EXPECT_TRUE(usb.string_descriptor(42).empty());
}

TEST_F(UsbStLinkTest, EndpointsCarryCommandsAndResponses) {
  UsbStLink usb(board_, StLinkVariant::v2);
  Bytes version(16, 0);
  version[0] = 0xF1;
  EXPECT_EQ(usb.out(0x01, version), UsbStatus::stall) << "the V2 takes commands on EP 2";
  Bytes r;
  EXPECT_EQ(usb.in(0x81, 64, r), UsbStatus::nak) << "nothing to answer yet";
  EXPECT_EQ(usb.out(0x02, version), UsbStatus::ok);
  EXPECT_EQ(usb.pending_responses(), 1u);
  // A short read leaves the rest of the response for the next one.
  EXPECT_EQ(usb.in(0x81, 4, r), UsbStatus::ok);
  EXPECT_EQ(r, (Bytes{0x2A, 0x07, 0x83, 0x04}));
  EXPECT_EQ(usb.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ(r, (Bytes{0x48, 0x37}));
  EXPECT_EQ(usb.pending_responses(), 0u);
  EXPECT_EQ(usb.in(0x83, 64, r), UsbStatus::nak) << "no SWO data";
  EXPECT_EQ(usb.in(0x85, 64, r), UsbStatus::stall);
  Bytes none;
  EXPECT_EQ(usb.control({0x21, 0x20, 0, 0, 7}, none), UsbStatus::stall);
}

TEST_F(UsbStLinkTest, TransfersCompleteOnFrameBoundaries) {
  // Full speed: each transfer completes at the next 1 ms frame (usb_bus_timing.hpp).
  UsbStLink v2(board_, StLinkVariant::v2);
  Bytes cmd(16, 0);
  cmd[0] = 0xF5;
  const std::uint64_t transfers = board_.counters().usb_transfers;
  const Picoseconds t0 = board_.now();
  ASSERT_EQ(v2.out(0x02, cmd), UsbStatus::ok);
  Bytes r;
  ASSERT_EQ(v2.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ(r, (Bytes{0x01, 0x00}));
  EXPECT_EQ(board_.counters().usb_transfers - transfers, 2u);
  EXPECT_EQ(board_.now(), kFullSpeedBulk64.done_at(kFullSpeedBulk64.done_at(t0, 16), 2));
  EXPECT_EQ(board_.now() % kMillisecond, 0u);

  // A 6 KiB data phase crosses the bus in 96 packets.
  Board b3(*find_chip("stm32f407vg"),
           BoardOptions{.serial = "PFV3", .uid_seed = 2, .state_dir = {}});
  UsbStLink v3(b3, StLinkVariant::v3);
  const Picoseconds t1 = b3.now();
  ASSERT_EQ(v3.out(0x01, cmd), UsbStatus::ok);
  ASSERT_EQ(v3.in(0x81, 512, r), UsbStatus::ok);
  EXPECT_EQ(b3.now(), kHighSpeedBulk512.done_at(kHighSpeedBulk512.done_at(t1, 16), 2));
  EXPECT_EQ(b3.now() % (125 * kMicrosecond), 0u) << "high speed: 125 us microframes";
  const Picoseconds t2 = b3.now();
  Bytes write(16, 0);
  write[0] = 0xF2;
  write[1] = 0x08;  // WRITEMEM_32BIT, 6144 bytes to 0x20000000, AP 0 (not opened: dropped)
  write[5] = 0x20;
  write[6] = 0x00;
  write[7] = 0x18;
  ASSERT_EQ(v3.out(0x01, write), UsbStatus::ok);
  const Picoseconds t3 = b3.now();
  ASSERT_EQ(v3.out(0x01, Bytes(6144, 0)), UsbStatus::ok);
  EXPECT_EQ(b3.now(), kHighSpeedBulk512.done_at(t3, 6144));
  EXPECT_GT(b3.now() - t2, kHighSpeedBulk512.data_time(6144));
  EXPECT_EQ(v3.pending_responses(), 0u) << "writes answer nothing";
}

TEST_F(UsbStLinkTest, PowerLossForgetsAPendingDataPhaseAndQueuedResponses) {
  // Unplugged between a WRITEMEM command and its data: the rebooted firmware takes the next
  // packet as a command again, not as the data it was waiting for.
  UsbStLink usb(board_, StLinkVariant::v2);
  Bytes version(16, 0);
  version[0] = 0xF1;
  ASSERT_EQ(usb.out(0x02, version), UsbStatus::ok);
  Bytes write(16, 0);
  write[0] = 0xF2;
  write[1] = 0x08;  // WRITEMEM_32BIT, 64 bytes to 0x20000000
  write[5] = 0x20;
  write[6] = 64;
  ASSERT_EQ(usb.out(0x02, write), UsbStatus::ok);
  usb.power_lost();
  EXPECT_EQ(usb.pending_responses(), 0u);
  Bytes r;
  EXPECT_EQ(usb.in(0x81, 64, r), UsbStatus::nak);
  ASSERT_EQ(usb.out(0x02, version), UsbStatus::ok);
  ASSERT_EQ(usb.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ(r, (Bytes{0x2A, 0x07, 0x83, 0x04, 0x48, 0x37}));
}

TEST_F(UsbStLinkTest, ProbeFactoryMakesTheThreeKinds) {
  auto kinds = probe_kinds();
  for (const char* kind : {"stlink-v2", "stlink-v2-1", "stlink-v3"})
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), kind), kinds.end()) << kind;
  const ChipInfo& f103 = *find_chip("stm32f103c8");
  const ChipInfo& f407 = *find_chip("stm32f407vg");
  // "PF", the 1-based index, the part without "STM32", padded to 12 bytes with '_'.
  EXPECT_EQ(default_probe_serial("stlink-v2", f103, 0), "504630314631303343385F5F");
  EXPECT_EQ(default_probe_serial("stlink-v2", f407, 1), "504630324634303756475F5F");
  EXPECT_EQ(default_probe_serial("stlink-v3", f407, 1), "504630324634303756475F5F");
  EXPECT_EQ(default_probe_serial("cmsis-dap-v2", f407, 1), "PFSIM02F407VG");
  EXPECT_EQ(make_probe("stlink-v2", board_)->probe_kind(), "stlink-v2");
  EXPECT_EQ(make_probe("stlink-v2-1", board_)->probe_kind(), "stlink-v2-1");
  EXPECT_EQ(make_probe("stlink-v3", board_)->probe_kind(), "stlink-v3");
  Board other(f103, BoardOptions{.serial = "PFSIM01F103C8", .uid_seed = 3, .state_dir = {}});
  EXPECT_THROW(make_probe("stlink-v2", other), std::invalid_argument);
}

}  // namespace
}  // namespace probefarm::sim
