// The CMSIS-DAP v1 (HID) USB device model: descriptors as a host parses them, 64-byte
// reports through the interrupt endpoints and EP0, the firmware's packet buffers, and the
// virtual-time cost of the USB traffic (one report per 1 ms frame).
#include "usb_cmsis_dap_v1.hpp"

#include <gtest/gtest.h>

#include <string>

#include "board.hpp"
#include "chip.hpp"
#include "usb_descriptor_reader.hpp"

namespace probefarm::sim {
namespace {

using test::ascii;
using test::le16;

// A 64-byte output report: the command, zero padded, as hid_write() sends it.
std::vector<std::uint8_t> report(std::vector<std::uint8_t> command) {
  command.resize(64);
  return command;
}

class UsbCmsisDapV1Test : public ::testing::Test {
 protected:
  Board board_{*find_chip("stm32f303vc"),
               BoardOptions{.serial = "PFTEST01", .uid_seed = 1, .state_dir = {}}};
  UsbCmsisDapV1 usb_{board_};

  std::vector<std::uint8_t> command(std::vector<std::uint8_t> request) {
    EXPECT_EQ(usb_.out(0x01, report(std::move(request))), UsbStatus::ok);
    std::vector<std::uint8_t> response;
    EXPECT_EQ(usb_.in(0x81, 64, response), UsbStatus::ok);
    return response;
  }

  UsbStatus get_descriptor(std::uint16_t value, std::uint16_t length,
                           std::vector<std::uint8_t>& data) {
    return usb_.control(UsbSetup{0x81, 0x06, value, 0, length}, data);
  }
};

TEST_F(UsbCmsisDapV1Test, DeviceDescriptorIdentifiesAFullSpeedDapLink) {
  auto d = usb_.device_descriptor();
  ASSERT_EQ(d.size(), 18u);
  EXPECT_EQ(d[1], 1);
  EXPECT_EQ(le16(d, 2), 0x0200);  // bcdUSB
  EXPECT_EQ(d[4], 0x00);          // class per interface
  EXPECT_EQ(d[7], 64);            // EP0 max packet
  EXPECT_EQ(le16(d, 8), 0x0D28);
  EXPECT_EQ(le16(d, 10), 0x0204);
  EXPECT_EQ(d[17], 1);
  EXPECT_EQ(usb_.speed(), UsbSpeed::full);
  EXPECT_EQ(usb_.probe_kind(), "cmsis-dap-v1");
  // v1 hosts pick CMSIS-DAP probes by their product string (OpenOCD's hid backend does).
  EXPECT_NE(ascii(usb_.string_descriptor(d[15])).find("CMSIS-DAP"), std::string::npos);
  EXPECT_EQ(ascii(usb_.string_descriptor(d[14])), "probefarm");
  EXPECT_EQ(ascii(usb_.string_descriptor(d[16])), "PFTEST01");
  EXPECT_EQ(usb_.serial(), "PFTEST01");
  auto langids = usb_.string_descriptor(0);
  ASSERT_EQ(langids.size(), 4u);
  EXPECT_EQ(le16(langids, 2), 0x0409);
  EXPECT_TRUE(usb_.string_descriptor(99).empty());
}

TEST_F(UsbCmsisDapV1Test, ConfigDescriptorHasHidInterfaceWithTwoInterruptEndpoints) {
  auto c = usb_.config_descriptor();
  ASSERT_EQ(c.size(), 9u + 9u + 9u + 7u + 7u);
  EXPECT_EQ(c[1], 2);
  EXPECT_EQ(le16(c, 2), c.size());  // wTotalLength
  EXPECT_EQ(c[4], 1);               // bNumInterfaces
  const std::size_t itf = 9;
  EXPECT_EQ(c[itf + 1], 4);
  EXPECT_EQ(c[itf + 2], 0);     // bInterfaceNumber
  EXPECT_EQ(c[itf + 4], 2);     // bNumEndpoints
  EXPECT_EQ(c[itf + 5], 0x03);  // HID
  EXPECT_EQ(c[itf + 6], 0x00);  // no boot subclass
  EXPECT_EQ(c[itf + 7], 0x00);
  EXPECT_NE(ascii(usb_.string_descriptor(c[itf + 8])).find("CMSIS-DAP"), std::string::npos);

  // HID 1.11 6.2.1: the HID descriptor follows the interface, naming the report descriptor.
  const std::size_t hid = itf + 9;
  EXPECT_EQ(c[hid], 9);
  EXPECT_EQ(c[hid + 1], 0x21);
  EXPECT_EQ(le16(c, hid + 2), 0x0111);
  EXPECT_EQ(c[hid + 5], 1);
  EXPECT_EQ(c[hid + 6], 0x22);
  EXPECT_EQ(le16(c, hid + 7), UsbCmsisDapV1::report_descriptor().size());
  EXPECT_EQ(std::vector<std::uint8_t>(c.begin() + hid, c.begin() + hid + 9),
            UsbCmsisDapV1::hid_descriptor());

  const std::size_t ep_in = hid + 9, ep_out = ep_in + 7;
  EXPECT_EQ(c[ep_in + 1], 5);
  EXPECT_EQ(c[ep_in + 2], 0x81);
  EXPECT_EQ(c[ep_in + 3], 0x03);  // interrupt
  EXPECT_EQ(le16(c, ep_in + 4), 64);
  EXPECT_EQ(c[ep_in + 6], 1);  // bInterval: every frame
  EXPECT_EQ(c[ep_out + 2], 0x01);
  EXPECT_EQ(c[ep_out + 3], 0x03);
  EXPECT_EQ(le16(c, ep_out + 4), 64);
  EXPECT_EQ(c[ep_out + 6], 1);
}

TEST_F(UsbCmsisDapV1Test, ReportDescriptorDeclaresVendor64ByteInputAndOutputReports) {
  std::vector<std::uint8_t> d;
  ASSERT_EQ(get_descriptor(0x2200, 255, d), UsbStatus::ok);
  EXPECT_EQ(d, UsbCmsisDapV1::report_descriptor());
  // Walk the short items (HID 1.11 6.2.2.2) and collect what a HID parser would.
  unsigned page = 0, report_size = 0, report_count = 0, input_bits = 0, output_bits = 0;
  unsigned collections = 0, report_ids = 0;
  for (std::size_t at = 0; at < d.size();) {
    const std::size_t size = (d[at] & 3) == 3 ? 4 : d[at] & 3;
    ASSERT_LE(at + 1 + size, d.size());
    unsigned value = 0;
    for (std::size_t b = 0; b < size; ++b)
      value |= d[at + 1 + b] << (8 * b);
    switch (d[at] & 0xFC) {
      case 0x04:
        page = value;
        break;
      case 0x74:
        report_size = value;
        break;
      case 0x94:
        report_count = value;
        break;
      case 0x84:
        ++report_ids;
        break;
      case 0x80:
        input_bits += report_size * report_count;
        break;
      case 0x90:
        output_bits += report_size * report_count;
        break;
      case 0xA0:
        ++collections;
        EXPECT_EQ(value, 1u) << "application collection";
        break;
    }
    at += 1 + size;
  }
  EXPECT_EQ(page, 0xFF00u);
  EXPECT_EQ(input_bits, 64u * 8);
  EXPECT_EQ(output_bits, 64u * 8);
  EXPECT_EQ(collections, 1u);
  EXPECT_EQ(report_ids, 0u) << "no report IDs: hid_write sends report ID 0";
  EXPECT_EQ(d.back(), 0xC0);  // End Collection
}

TEST_F(UsbCmsisDapV1Test, InterfaceDescriptorRequestsHonourLengthAndStallOtherwise) {
  std::vector<std::uint8_t> d;
  ASSERT_EQ(get_descriptor(0x2100, 64, d), UsbStatus::ok);
  EXPECT_EQ(d, UsbCmsisDapV1::hid_descriptor());
  ASSERT_EQ(get_descriptor(0x2200, 7, d), UsbStatus::ok);
  EXPECT_EQ(d.size(), 7u);
  EXPECT_EQ(get_descriptor(0x2300, 64, d), UsbStatus::stall);  // physical descriptor: none
  EXPECT_EQ(usb_.control(UsbSetup{0x81, 0x06, 0x2200, 1, 64}, d), UsbStatus::stall)
      << "there is no interface 1";
}

TEST_F(UsbCmsisDapV1Test, DapInfoReportsPacketSize64AndCount) {
  // CMSIS-DAP v2.1 DAP_Info (0x00): 0xFF packet size (u16), 0xFE packet count (u8).
  auto size = command({0x00, 0xFF});
  ASSERT_EQ(size.size(), 64u) << "input reports are always 64 bytes";
  EXPECT_EQ(size[0], 0x00);
  EXPECT_EQ(size[1], 2);
  EXPECT_EQ(le16(size, 2), 64);
  auto count = command({0x00, 0xFE});
  EXPECT_EQ(count[1], 1);
  EXPECT_EQ(count[2], UsbCmsisDapV1::kPacketCount);
}

TEST_F(UsbCmsisDapV1Test, ResponsesComeBackInOrderAndInNaksWhenNoneIsQueued) {
  std::vector<std::uint8_t> r;
  EXPECT_EQ(usb_.in(0x81, 64, r), UsbStatus::nak);
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFE})), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), 2u);
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ(r[1], 2);  // packet size answer first
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ(r[1], 1);
  EXPECT_EQ(usb_.in(0x81, 64, r), UsbStatus::nak);
  // A short read gets the report's beginning.
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  ASSERT_EQ(usb_.in(0x81, 3, r), UsbStatus::ok);
  EXPECT_EQ(r, (std::vector<std::uint8_t>{0x00, 2, 64}));
}

TEST_F(UsbCmsisDapV1Test, ReportsBeyondThePacketCountAreDropped) {
  // The firmware has kPacketCount buffers, each busy until its response has been read.
  for (unsigned i = 0; i < UsbCmsisDapV1::kPacketCount + 2; ++i)
    ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFE})), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), UsbCmsisDapV1::kPacketCount);
  EXPECT_EQ(usb_.discarded_reports(), 2u);
  std::vector<std::uint8_t> r;
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  EXPECT_EQ(usb_.discarded_reports(), 2u) << "a freed buffer takes the next report";
  EXPECT_EQ(usb_.pending_responses(), UsbCmsisDapV1::kPacketCount);
}

TEST_F(UsbCmsisDapV1Test, EmptyReportsAndTransferAbortHaveNoResponse) {
  ASSERT_EQ(usb_.out(0x01, std::vector<std::uint8_t>{}), UsbStatus::ok);
  ASSERT_EQ(usb_.out(0x01, report({0x07})), UsbStatus::ok);  // DAP_TransferAbort
  EXPECT_EQ(usb_.pending_responses(), 0u);
  EXPECT_EQ(usb_.discarded_reports(), 0u);
}

TEST_F(UsbCmsisDapV1Test, QueuedCommandsAnswerOneReportEach) {
  // DAP_QueueCommands (0x7E, NumCmd, commands): held until a packet without it, then
  // each answers like DAP_ExecuteCommands (0x7F, NumCmd, responses) in its own report.
  ASSERT_EQ(usb_.out(0x01, report({0x7E, 1, 0x00, 0xFF})), UsbStatus::ok);
  ASSERT_EQ(usb_.out(0x01, report({0x7E, 1, 0x00, 0xFE})), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), 0u);
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  ASSERT_EQ(usb_.pending_responses(), 3u);
  std::vector<std::uint8_t> r;
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ((std::vector<std::uint8_t>(r.begin(), r.begin() + 6)),
            (std::vector<std::uint8_t>{0x7F, 1, 0x00, 2, 64, 0}));
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ((std::vector<std::uint8_t>(r.begin(), r.begin() + 5)),
            (std::vector<std::uint8_t>{0x7F, 1, 0x00, 1, UsbCmsisDapV1::kPacketCount}));
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ((std::vector<std::uint8_t>(r.begin(), r.begin() + 4)),
            (std::vector<std::uint8_t>{0x00, 2, 64, 0}));
}

TEST_F(UsbCmsisDapV1Test, HidClassRequestsOnEp0) {
  std::vector<std::uint8_t> d;
  // SET_IDLE (HID 1.11 7.2.4), as the host's HID driver sends at enumeration; GET_IDLE
  // reads it back.
  ASSERT_EQ(usb_.control(UsbSetup{0x21, 0x0A, 0x0100, 0, 0}, d), UsbStatus::ok);
  ASSERT_EQ(usb_.control(UsbSetup{0xA1, 0x02, 0x0000, 0, 1}, d), UsbStatus::ok);
  EXPECT_EQ(d, std::vector<std::uint8_t>{1});
  // GET_REPORT on the control pipe: the firmware answers with an empty report and keeps
  // its responses for the interrupt endpoint.
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  ASSERT_EQ(usb_.control(UsbSetup{0xA1, 0x01, 0x0100, 0, 64}, d), UsbStatus::ok);
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(usb_.pending_responses(), 1u);
  // SET_REPORT(Output) is a command like an interrupt OUT report.
  d = report({0x00, 0xFE});
  ASSERT_EQ(usb_.control(UsbSetup{0x21, 0x09, 0x0200, 0, 64}, d), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), 2u);
  // SET_REPORT(Feature) is accepted and means nothing.
  d = {0x55};
  ASSERT_EQ(usb_.control(UsbSetup{0x21, 0x09, 0x0300, 0, 1}, d), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), 2u);
  // Boot-protocol requests and vendor requests are not supported.
  EXPECT_EQ(usb_.control(UsbSetup{0xA1, 0x03, 0, 0, 1}, d), UsbStatus::stall);  // GET_PROTOCOL
  EXPECT_EQ(usb_.control(UsbSetup{0x21, 0x0B, 0, 0, 0}, d), UsbStatus::stall);  // SET_PROTOCOL
  EXPECT_EQ(usb_.control(UsbSetup{0xC0, 0x01, 0, 0, 64}, d), UsbStatus::stall);
  EXPECT_EQ(usb_.control(UsbSetup{0x21, 0x0A, 0, 3, 0}, d), UsbStatus::stall)
      << "SET_IDLE to an interface that does not exist";
}

TEST_F(UsbCmsisDapV1Test, WrongEndpointsStall) {
  std::vector<std::uint8_t> r;
  EXPECT_EQ(usb_.out(0x02, report({0x00, 0xFF})), UsbStatus::stall);
  EXPECT_EQ(usb_.out(0x81, report({0x00, 0xFF})), UsbStatus::stall);
  EXPECT_EQ(usb_.in(0x82, 64, r), UsbStatus::stall);
  EXPECT_EQ(usb_.in(0x01, 64, r), UsbStatus::stall);
  EXPECT_EQ(usb_.pending_responses(), 0u);
}

TEST_F(UsbCmsisDapV1Test, PowerLossEmptiesThePacketBuffers) {
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  ASSERT_EQ(usb_.out(0x01, report({0x7E, 1, 0x00, 0xFE})), UsbStatus::ok);
  usb_.power_lost();
  EXPECT_EQ(usb_.pending_responses(), 0u);
  std::vector<std::uint8_t> r;
  EXPECT_EQ(usb_.in(0x81, 64, r), UsbStatus::nak);
  // The queued packet is gone too: the next command answers alone.
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFE})), UsbStatus::ok);
  EXPECT_EQ(usb_.pending_responses(), 1u);
}

TEST_F(UsbCmsisDapV1Test, OneReportPerFrameInEachDirection) {
  const Picoseconds t0 = board_.now();
  const auto transfers0 = board_.counters().usb_transfers;
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);
  const Picoseconds t1 = board_.now();
  // Full speed: (64 + 13) * 8 bits at 12 Mbit/s, then the next 1 ms frame boundary.
  EXPECT_GE(t1 - t0, kFullSpeedInterrupt64.data_time(64));
  EXPECT_EQ(t1 % kMillisecond, 0u) << "OUT completions land on frame boundaries";
  EXPECT_LE(t1 - t0, kMillisecond);
  EXPECT_EQ(board_.counters().usb_transfers, transfers0 + 1);

  // Back-to-back reports in one direction go one per frame.
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFE})), UsbStatus::ok);
  const Picoseconds t2 = board_.now();
  EXPECT_EQ(t2, t1 + kMillisecond);

  std::vector<std::uint8_t> r;
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  const Picoseconds t3 = board_.now();
  EXPECT_EQ(t3, t2 + kMillisecond) << "an IN report completes on the next frame";
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  EXPECT_EQ(board_.now(), t3 + kMillisecond);
  EXPECT_EQ(board_.counters().usb_transfers, transfers0 + 4);

  // A NAK is not a transfer: no time, no count.
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::nak);
  EXPECT_EQ(board_.now(), t3 + kMillisecond);
  EXPECT_EQ(board_.counters().usb_transfers, transfers0 + 4);
}

TEST_F(UsbCmsisDapV1Test, CommandRoundTripCostsTwoFrames) {
  // DAP_Info needs no SWD traffic, so the round trip is USB time alone: the command lands
  // on one frame boundary, the response on the next.
  ASSERT_EQ(usb_.out(0x01, report({0x00, 0xFF})), UsbStatus::ok);  // align to a frame
  std::vector<std::uint8_t> r;
  ASSERT_EQ(usb_.in(0x81, 64, r), UsbStatus::ok);
  const Picoseconds t0 = board_.now();
  command({0x00, 0xFE});
  EXPECT_EQ(board_.now() - t0, 2 * kMillisecond);
}

}  // namespace
}  // namespace probefarm::sim
