// The CMSIS-DAP v2 USB device model: descriptors as a host parses them, packets through
// the bulk endpoints, and the virtual-time cost of the USB traffic.
#include "usb_cmsis_dap_v2.hpp"

#include <gtest/gtest.h>

#include <string>

#include "board.hpp"
#include "chip.hpp"
#include "usb_descriptor_reader.hpp"

namespace probefarm::sim {
namespace {

using test::ascii;
using test::le16;

class UsbCmsisDapV2Test : public ::testing::Test {
 protected:
  Board board_{*find_chip("stm32f407vg"),
               BoardOptions{.serial = "PFTEST01", .uid_seed = 1, .state_dir = {}}};
  UsbCmsisDapV2 usb_{board_};

  std::vector<std::uint8_t> command(std::vector<std::uint8_t> request) {
    EXPECT_EQ(usb_.out(0x01, request), UsbStatus::ok);
    std::vector<std::uint8_t> response;
    EXPECT_EQ(usb_.in(0x81, 512, response), UsbStatus::ok);
    return response;
  }
};

TEST_F(UsbCmsisDapV2Test, DeviceDescriptorIdentifiesADapLink) {
  auto d = usb_.device_descriptor();
  ASSERT_EQ(d.size(), 18u);
  EXPECT_EQ(d[0], 18);
  EXPECT_EQ(d[1], 1);
  EXPECT_EQ(le16(d, 8), 0x0D28);
  EXPECT_EQ(le16(d, 10), 0x0204);
  EXPECT_EQ(d[17], 1);  // one configuration
  EXPECT_NE(ascii(usb_.string_descriptor(d[15])).find("CMSIS-DAP"), std::string::npos);
  EXPECT_EQ(ascii(usb_.string_descriptor(d[16])), "PFTEST01");
  EXPECT_EQ(usb_.serial(), "PFTEST01");
  EXPECT_EQ(usb_.speed(), UsbSpeed::high);
  auto langids = usb_.string_descriptor(0);
  ASSERT_EQ(langids.size(), 4u);
  EXPECT_EQ(le16(langids, 2), 0x0409);
  EXPECT_TRUE(usb_.string_descriptor(99).empty());
}

TEST_F(UsbCmsisDapV2Test, ConfigDescriptorHasVendorInterfaceWithTwoBulkEndpoints) {
  auto c = usb_.config_descriptor();
  ASSERT_GE(c.size(), 9u + 9u + 7u + 7u);
  EXPECT_EQ(c[1], 2);
  EXPECT_EQ(le16(c, 2), c.size());  // wTotalLength
  EXPECT_EQ(c[4], 1);               // bNumInterfaces
  const std::size_t itf = 9;
  EXPECT_EQ(c[itf + 1], 4);
  EXPECT_EQ(c[itf + 4], 2);     // bNumEndpoints
  EXPECT_EQ(c[itf + 5], 0xFF);  // vendor class
  EXPECT_NE(ascii(usb_.string_descriptor(c[itf + 8])).find("CMSIS-DAP"), std::string::npos);
  const std::size_t ep_out = itf + 9, ep_in = ep_out + 7;
  EXPECT_EQ(c[ep_out + 1], 5);
  EXPECT_EQ(c[ep_out + 2], 0x01);
  EXPECT_EQ(c[ep_out + 3], 0x02);  // bulk
  EXPECT_EQ(le16(c, ep_out + 4), 512);
  EXPECT_EQ(c[ep_in + 2], 0x81);
  EXPECT_EQ(c[ep_in + 3], 0x02);
  EXPECT_EQ(le16(c, ep_in + 4), 512);
}

TEST_F(UsbCmsisDapV2Test, DapInfoReportsPacketSizeAndCount) {
  // CMSIS-DAP v2.1 DAP_Info (0x00): 0xFF packet size (u16), 0xFE packet count (u8).
  auto size = command({0x00, 0xFF});
  ASSERT_GE(size.size(), 4u);
  EXPECT_EQ(size[0], 0x00);
  EXPECT_EQ(size[1], 2);
  EXPECT_EQ(le16(size, 2), 512);
  auto count = command({0x00, 0xFE});
  ASSERT_GE(count.size(), 3u);
  EXPECT_EQ(count[1], 1);
  EXPECT_EQ(count[2], 4);
}

TEST_F(UsbCmsisDapV2Test, ResponsesComeBackInOrderAndInNaksWhenNoneIsQueued) {
  std::vector<std::uint8_t> r;
  EXPECT_EQ(usb_.in(0x81, 512, r), UsbStatus::nak);
  ASSERT_EQ(usb_.out(0x01, std::vector<std::uint8_t>{0x00, 0xFF}), UsbStatus::ok);
  ASSERT_EQ(usb_.out(0x01, std::vector<std::uint8_t>{0x00, 0xFE}), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), 2u);
  ASSERT_EQ(usb_.in(0x81, 512, r), UsbStatus::ok);
  EXPECT_EQ(r[1], 2);  // packet size answer first
  ASSERT_EQ(usb_.in(0x81, 512, r), UsbStatus::ok);
  EXPECT_EQ(r[1], 1);
  EXPECT_EQ(usb_.in(0x81, 512, r), UsbStatus::nak);
}

TEST_F(UsbCmsisDapV2Test, WrongEndpointsStall) {
  std::vector<std::uint8_t> r;
  EXPECT_EQ(usb_.out(0x02, std::vector<std::uint8_t>{0x00, 0xFF}), UsbStatus::stall);
  EXPECT_EQ(usb_.in(0x82, 512, r), UsbStatus::stall);
  UsbSetup setup{0xC0, 0x01, 0, 0, 64};
  EXPECT_EQ(usb_.control(setup, r), UsbStatus::stall);
}

TEST_F(UsbCmsisDapV2Test, TransfersCostVirtualTimePerTheHighSpeedModel) {
  const Picoseconds t0 = board_.now();
  const auto transfers0 = board_.counters().usb_transfers;
  ASSERT_EQ(usb_.out(0x01, std::vector<std::uint8_t>{0x00, 0xFF}), UsbStatus::ok);
  const Picoseconds t1 = board_.now();
  EXPECT_GE(t1 - t0, kHighSpeedBulk512.data_time(2));
  EXPECT_EQ(t1 % (125 * kMicrosecond), 0u) << "OUT completions land on microframe boundaries";
  EXPECT_EQ(board_.counters().usb_transfers, transfers0 + 1);

  std::vector<std::uint8_t> r;
  ASSERT_EQ(usb_.in(0x81, 512, r), UsbStatus::ok);
  const Picoseconds t2 = board_.now();
  // Completion is reported on the next 125 us microframe boundary after the data.
  EXPECT_EQ(t2 % (125 * kMicrosecond), 0u);
  EXPECT_GE(t2, t1 + kHighSpeedBulk512.data_time(r.size()));
  EXPECT_LT(t2, t1 + kHighSpeedBulk512.data_time(r.size()) + 125 * kMicrosecond);
  EXPECT_EQ(board_.counters().usb_transfers, transfers0 + 2);

  // A NAK is not a transfer: no time, no count.
  ASSERT_EQ(usb_.in(0x81, 512, r), UsbStatus::nak);
  EXPECT_EQ(board_.now(), t2);
  EXPECT_EQ(board_.counters().usb_transfers, transfers0 + 2);
}

TEST(UsbBusTiming, NumbersFollowTheUsb2Spec) {
  // One full high-speed packet: (512 + 55 overhead) bytes * 8 bits / 480 Mbit/s = 9.45 us.
  EXPECT_EQ(kHighSpeedBulk512.data_time(512), 9'450 * kNanosecond);
  EXPECT_EQ(kHighSpeedBulk512.data_time(1024), 2 * 9'450 * kNanosecond);
  // A zero-length packet still costs a transaction.
  EXPECT_EQ(kHighSpeedBulk512.data_time(0), cycles_to_ps(55 * 8, 480'000'000));
  EXPECT_EQ(kHighSpeedBulk512.done_at(0, 4), 125 * kMicrosecond);
  EXPECT_EQ(kHighSpeedBulk512.done_at(125 * kMicrosecond, 4), 250 * kMicrosecond);
  // Full speed: (64 + 13) * 8 bits at 12 Mbit/s, completions on 1 ms frames.
  EXPECT_EQ(kFullSpeedBulk64.data_time(64), cycles_to_ps(616, 12'000'000));
  EXPECT_EQ(kFullSpeedBulk64.done_at(kMillisecond / 2, 64), kMillisecond);
}

}  // namespace
}  // namespace probefarm::sim
