// The libusb backend through the simulator: open, claim, real round trips, errors, unplug.
#include <gtest/gtest.h>
#include <link.h>

#include <array>
#include <chrono>

#include "probe/discovery.hpp"
#include "sim_fixture.hpp"

namespace probefarm::probe::test {
namespace {

using namespace std::chrono_literals;

// Every test here means the simulator's stand-in, not Debian's libusb: CMake's ENVIRONMENT
// (LD_LIBRARY_PATH) must have made the loader pick it.
TEST(UsbBackend, LoadsTheSimulatorsStandInLibusb) {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find("libusb-1.0.so") != std::string::npos)
          *static_cast<std::string*>(data) = name;
        return 0;
      },
      &found);
  EXPECT_NE(found.find("probefarm-sim/libusb-1.0.so.0"), std::string::npos) << found;
}

class UsbTest : public SimTest {
 protected:
  ProbeInfo probe(const std::string& kind) {
    ProbeList list = list_probes(*usb_);
    const ProbeInfo* p = find(list, serials_[kind]);
    if (!p) throw std::runtime_error("no " + kind + " probe listed");
    return *p;
  }

  // CMSIS-DAP v2.1 "DAP_Info": command 0x00, id 0xFE = packet count.
  static std::vector<std::uint8_t> dap_packet_count(UsbDevice& dev, int number) {
    const UsbInterface* itf = nullptr;
    for (const auto& i : dev.configuration().interfaces)
      if (i.number == number) itf = &i;
    EXPECT_NE(itf, nullptr);
    if (!itf) return {};
    const UsbEndpoint* out = itf->find_endpoint(UsbTransferType::bulk, false);
    const UsbEndpoint* in = itf->find_endpoint(UsbTransferType::bulk, true);
    EXPECT_TRUE(out && in);
    if (!out || !in) return {};
    const std::array<std::uint8_t, 2> cmd = {0x00, 0xFE};
    EXPECT_EQ(dev.bulk_write(out->address, cmd, 1000ms), cmd.size());
    std::vector<std::uint8_t> resp(in->max_packet_size);
    resp.resize(dev.bulk_read(in->address, resp, 1000ms));
    return resp;
  }
};

TEST_F(UsbTest, CmsisDapV2DapInfoOverBulk) {
  ProbeInfo info = probe("cmsis-dap-v2");
  auto dev = open_probe(*usb_, info);
  EXPECT_EQ(dev->label(), info.serial);
  EXPECT_EQ(dev->descriptor().speed, UsbSpeed::high);
  auto resp = dap_packet_count(*dev, info.interface_number);
  ASSERT_GE(resp.size(), 3u);
  EXPECT_EQ(resp[0], 0x00);
  EXPECT_EQ(resp[1], 0x01);
  EXPECT_EQ(resp[2], 0x04);
}

TEST_F(UsbTest, CmsisDapV1DapInfoOverInterrupt) {
  ProbeInfo info = probe("cmsis-dap-v1");
  auto dev = open_probe(*usb_, info);
  EXPECT_EQ(dev->descriptor().speed, UsbSpeed::full);
  const UsbInterface* itf = nullptr;
  for (const auto& i : dev->configuration().interfaces)
    if (i.number == info.interface_number) itf = &i;
  ASSERT_NE(itf, nullptr);
  const UsbEndpoint* out = itf->find_endpoint(UsbTransferType::interrupt, false);
  const UsbEndpoint* in = itf->find_endpoint(UsbTransferType::interrupt, true);
  ASSERT_TRUE(out && in);
  // HID reports are fixed size: the command padded to the report (CMSIS-DAP v1, 64 bytes).
  std::vector<std::uint8_t> report(out->max_packet_size, 0);
  report[0] = 0x00;
  report[1] = 0xFE;
  EXPECT_EQ(dev->interrupt_write(out->address, report, 1000ms), report.size());
  std::vector<std::uint8_t> resp(in->max_packet_size);
  ASSERT_GE(dev->interrupt_read(in->address, resp, 1000ms), 3u);
  EXPECT_EQ(resp[0], 0x00);
  EXPECT_EQ(resp[1], 0x01);
}

// ST-Link GET_VERSION (0xF1): a 16-byte command block on the bulk OUT, 6 bytes back: version
// nibbles, then VID and PID little-endian (as OpenOCD's stlink_usb.c decodes it).
void expect_stlink_version(UsbDevice& dev, std::uint8_t out_ep, int major, const ProbeInfo& info) {
  std::array<std::uint8_t, 16> cmd{};
  cmd[0] = 0xF1;
  EXPECT_EQ(dev.bulk_write(out_ep, cmd, 1000ms), cmd.size());
  std::array<std::uint8_t, 6> resp{};
  ASSERT_EQ(dev.bulk_read(0x81, resp, 1000ms), resp.size());
  EXPECT_EQ(resp[0] >> 4, major);
  EXPECT_EQ(resp[2] | resp[3] << 8, info.vid);
  EXPECT_EQ(resp[4] | resp[5] << 8, info.pid);
}

TEST_F(UsbTest, StLinkV3GetVersion) {
  ProbeInfo info = probe("stlink-v3");
  auto dev = open_probe(*usb_, info);
  EXPECT_EQ(dev->descriptor().speed, UsbSpeed::high);
  expect_stlink_version(*dev, 0x01, 3, info);
}

TEST_F(UsbTest, StLinkV2GetVersion) {
  ProbeInfo info = probe("stlink-v2");
  auto dev = open_probe(*usb_, info);
  expect_stlink_version(*dev, 0x02, 2, info);
}

TEST_F(UsbTest, RawSerialOfTheV2IsBinary) {
  ProbeInfo info = probe("stlink-v2");
  auto dev = usb_->open(info.path);
  auto raw = dev->read_string_raw(dev->descriptor().serial_index);
  ASSERT_EQ(raw.size(), 24u);  // 12 UTF-16 units
  EXPECT_EQ(raw[0], 0x50);     // 'P'
  EXPECT_EQ(raw[1], 0x00);
}

TEST_F(UsbTest, SecondClaimIsBusy) {
  ProbeInfo info = probe("cmsis-dap-v2");
  auto first = open_probe(*usb_, info);
  auto other = make_libusb_context();  // another connection: another program
  try {
    open_probe(*other, info);
    FAIL() << "second claim succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::busy);
    EXPECT_NE(e.message().find(info.serial), std::string::npos) << e.message();
  }
}

TEST_F(UsbTest, DroppedResponseTimesOutNamingTheEndpoint) {
  ProbeInfo info = probe("cmsis-dap-v2");
  auto dev = open_probe(*usb_, info);
  ASSERT_EQ(ctl({"fault", info.serial, "drop", "1"}), 0);
  const std::array<std::uint8_t, 2> cmd = {0x00, 0xFE};
  dev->bulk_write(0x01, cmd, 1000ms);
  std::vector<std::uint8_t> resp(512);
  try {
    dev->bulk_read(0x81, resp, 200ms);
    FAIL() << "read of a dropped transfer succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::timeout);
    EXPECT_NE(e.message().find("0x81"), std::string::npos) << e.message();
  }
}

TEST_F(UsbTest, StallIsProbeIoWithTheUsbError) {
  ProbeInfo info = probe("cmsis-dap-v2");
  auto dev = open_probe(*usb_, info);
  ASSERT_EQ(ctl({"fault", info.serial, "stall", "1"}), 0);
  const std::array<std::uint8_t, 2> cmd = {0x00, 0xFE};
  try {
    dev->bulk_write(0x01, cmd, 1000ms);
    FAIL() << "stalled write succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_io);
    EXPECT_NE(e.message().find("endpoint 0x01"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("LIBUSB_ERROR_PIPE"), std::string::npos) << e.message();
  }
}

TEST_F(UsbTest, UnplugFailsTheNextTransferAndReplugBringsItBack) {
  ProbeInfo info = probe("cmsis-dap-v2");
  auto dev = open_probe(*usb_, info);
  ASSERT_EQ(ctl({"unplug", info.serial}), 0);
  try {
    dap_packet_count(*dev, info.interface_number);
    FAIL() << "transfer to an unplugged probe succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_io);
    EXPECT_EQ(std::string(e.message()), "probe " + info.serial + " was unplugged");
    EXPECT_NE(e.hint().find("replug"), std::string::npos);
  }
  dev.reset();

  ProbeList gone = list_probes(*usb_);
  EXPECT_EQ(gone.probes.size(), kBoards.size() - 1);
  EXPECT_EQ(find(gone, info.serial), nullptr);
  EXPECT_THROW(open_probe(*usb_, info), Error);

  ASSERT_EQ(ctl({"replug", info.serial}), 0);
  ProbeList back = list_probes(*usb_);
  const ProbeInfo* again = find(back, info.serial);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->kind, ProbeKind::cmsis_dap_v2);
  auto dev2 = open_probe(*usb_, *again);
  auto resp = dap_packet_count(*dev2, again->interface_number);
  ASSERT_GE(resp.size(), 3u);
  EXPECT_EQ(resp[2], 0x04);
}

}  // namespace
}  // namespace probefarm::probe::test
