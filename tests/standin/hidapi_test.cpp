// The stand-in libhidapi-hidraw.so.0 driven through its public API, against a SimServer
// running in a thread and serving a CMSIS-DAP v1 probe on a real board (and a v2 probe,
// which has no HID interface and must not be listed).
#include <gtest/gtest.h>
#include <hidapi/hidapi.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cwchar>
#include <filesystem>
#include <string>
#include <thread>

#include "board.hpp"
#include "chip.hpp"
#include "server.hpp"
#include "usb_cmsis_dap_v1.hpp"
#include "usb_cmsis_dap_v2.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint16_t kVid = 0x0D28;
constexpr std::uint16_t kPid = 0x0204;

std::wstring error_text(hid_device* dev) {
  const wchar_t* e = hid_error(dev);
  return e ? e : L"(null)";
}

std::string narrow(const std::wstring& s) {
  return std::string(s.begin(), s.end());
}

BoardOptions options(std::string serial, std::uint32_t uid_seed) {
  BoardOptions o;
  o.serial = std::move(serial);
  o.uid_seed = uid_seed;
  return o;
}

bool contains(const std::wstring& text, const wchar_t* part) {
  return text.find(part) != std::wstring::npos;
}

class HidapiStandinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pf-hidapi-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    socket_ = dir_ / "sim.sock";
    server_ = std::make_unique<SimServer>(SimServerOptions{.socket_path = socket_});
    // A v2 probe first, so the HID probe is not simply the first device.
    auto board2 = std::make_unique<Board>(*find_chip("stm32f407vg"), options("PFTESTV2", 2));
    auto v2 = std::make_unique<UsbCmsisDapV2>(*board2);
    server_->add_device(std::move(v2), std::move(board2));
    auto board = std::make_unique<Board>(*find_chip("stm32f303vc"), options("PFTEST01", 1));
    board_ = board.get();
    auto v1 = std::make_unique<UsbCmsisDapV1>(*board);
    server_->add_device(std::move(v1), std::move(board));
    server_->listen();
    thread_ = std::thread([this] { server_->run(); });
    setenv("PROBEFARM_SIM_SOCKET", socket_.c_str(), 1);
    ASSERT_EQ(hid_init(), 0);
  }

  void TearDown() override {
    if (dev_) hid_close(dev_);
    hid_exit();
    stop_server();
    std::filesystem::remove_all(dir_);
  }

  void stop_server() {
    if (!thread_.joinable()) return;
    server_->request_stop();
    thread_.join();
  }

  std::string first_path() {
    hid_device_info* devs = hid_enumerate(kVid, kPid);
    EXPECT_NE(devs, nullptr) << "hid_error: " << narrow(error_text(nullptr));
    std::string path = devs ? devs->path : "";
    hid_free_enumeration(devs);
    return path;
  }

  hid_device* open_probe() {
    dev_ = hid_open_path(first_path().c_str());
    EXPECT_NE(dev_, nullptr);
    return dev_;
  }

  // hid_write of a command as OpenOCD sends it: report ID 0, then a zero-padded 64 bytes.
  int write_command(std::initializer_list<std::uint8_t> command) {
    std::array<unsigned char, 65> buf{};
    std::copy(command.begin(), command.end(), buf.begin() + 1);
    return hid_write(dev_, buf.data(), buf.size());
  }

  std::filesystem::path dir_;
  std::filesystem::path socket_;
  std::unique_ptr<SimServer> server_;
  Board* board_ = nullptr;
  std::thread thread_;
  hid_device* dev_ = nullptr;
};

TEST_F(HidapiStandinTest, EnumerateListsOnlyTheHidInterface) {
  hid_device_info* devs = hid_enumerate(0, 0);
  ASSERT_NE(devs, nullptr);
  EXPECT_EQ(devs->next, nullptr) << "the v2 probe has no HID interface";
  EXPECT_EQ(devs->vendor_id, kVid);
  EXPECT_EQ(devs->product_id, kPid);
  EXPECT_EQ(devs->release_number, 0x0100);
  EXPECT_EQ(devs->interface_number, 0);
  ASSERT_NE(devs->serial_number, nullptr);
  EXPECT_EQ(std::wstring(devs->serial_number), L"PFTEST01");
  ASSERT_NE(devs->manufacturer_string, nullptr);
  EXPECT_EQ(std::wstring(devs->manufacturer_string), L"probefarm");
  ASSERT_NE(devs->product_string, nullptr);
  EXPECT_NE(std::wcsstr(devs->product_string, L"CMSIS-DAP"), nullptr);
  // From the report descriptor's top-level collection: vendor page 0xFF00, usage 1.
  EXPECT_EQ(devs->usage_page, 0xFF00);
  EXPECT_EQ(devs->usage, 0x0001);
  EXPECT_EQ(devs->bus_type, HID_API_BUS_USB);
  ASSERT_NE(devs->path, nullptr);
  EXPECT_FALSE(std::string(devs->path).empty());
  hid_free_enumeration(devs);

  devs = hid_enumerate(kVid, 0);
  ASSERT_NE(devs, nullptr);
  hid_free_enumeration(devs);
  EXPECT_EQ(hid_enumerate(0x1234, 0x5678), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"No HID devices with requested VID/PID"));
  hid_free_enumeration(nullptr);  // allowed, does nothing
}

TEST_F(HidapiStandinTest, WriteCommandReadResponse) {
  ASSERT_NE(open_probe(), nullptr);
  // 65 bytes in (report ID 0 + 64), 64 bytes out on the interrupt OUT endpoint; the return
  // value counts the report ID byte, as hidraw's write() does.
  EXPECT_EQ(write_command({0x00, 0xFF}), 65);  // DAP_Info: packet size
  std::array<unsigned char, 65> in{};
  ASSERT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 1000), 64)
      << "a whole input report, no report ID in front";
  EXPECT_EQ(in[0], 0x00);
  EXPECT_EQ(in[1], 2);
  EXPECT_EQ(in[2] | in[3] << 8, 64);
  EXPECT_EQ(error_text(dev_), L"Success");

  // Several commands in flight come back in order.
  EXPECT_EQ(write_command({0x00, 0xFE}), 65);  // packet count
  EXPECT_EQ(write_command({0x00, 0xFF}), 65);
  ASSERT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 1000), 64);
  EXPECT_EQ(in[1], 1);
  EXPECT_EQ(in[2], UsbCmsisDapV1::kPacketCount);
  ASSERT_EQ(hid_read(dev_, in.data(), in.size()), 64) << "blocking read, a report is waiting";
  EXPECT_EQ(in[1], 2);

  // A buffer shorter than the report gets its beginning.
  EXPECT_EQ(write_command({0x00, 0xFF}), 65);
  ASSERT_EQ(hid_read_timeout(dev_, in.data(), 3, 1000), 3);
  EXPECT_EQ(in[1], 2);
}

TEST_F(HidapiStandinTest, TrafficAdvancesTheBoardsVirtualClock) {
  ASSERT_NE(open_probe(), nullptr);
  const Picoseconds t0 = board_->now();
  const auto transfers0 = board_->counters().usb_transfers;
  ASSERT_EQ(write_command({0x00, 0xFE}), 65);
  std::array<unsigned char, 65> in{};
  ASSERT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 1000), 64);
  hid_close(dev_);  // the server thread is idle once the handle's requests are answered
  dev_ = nullptr;
  stop_server();
  EXPECT_EQ(board_->counters().usb_transfers, transfers0 + 2);
  EXPECT_GE(board_->now() - t0, kMillisecond) << "at least one full-speed frame";
  EXPECT_LE(board_->now() - t0, 2 * kMillisecond) << "one frame each way";
}

TEST_F(HidapiStandinTest, ReadTimesOutWithZero) {
  ASSERT_NE(open_probe(), nullptr);
  std::array<unsigned char, 65> in{};
  EXPECT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 0), 0) << "poll once";
  EXPECT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 20), 0) << "no report in 20 ms";
  ASSERT_EQ(hid_set_nonblocking(dev_, 1), 0);
  EXPECT_EQ(hid_read(dev_, in.data(), in.size()), 0) << "non-blocking read";
  ASSERT_EQ(hid_set_nonblocking(dev_, 0), 0);
  // The device is still fine after timeouts.
  ASSERT_EQ(write_command({0x00, 0xFF}), 65);
  EXPECT_EQ(hid_read_timeout(dev_, in.data(), in.size(), -1), 64);
}

TEST_F(HidapiStandinTest, StringsAndDeviceInfo) {
  ASSERT_NE(open_probe(), nullptr);
  wchar_t s[64];
  ASSERT_EQ(hid_get_manufacturer_string(dev_, s, 64), 0);
  EXPECT_EQ(std::wstring(s), L"probefarm");
  ASSERT_EQ(hid_get_product_string(dev_, s, 64), 0);
  EXPECT_NE(std::wcsstr(s, L"CMSIS-DAP"), nullptr);
  ASSERT_EQ(hid_get_serial_number_string(dev_, s, 64), 0);
  EXPECT_EQ(std::wstring(s), L"PFTEST01");
  ASSERT_EQ(hid_get_serial_number_string(dev_, s, 5), 0);
  EXPECT_EQ(std::wstring(s), L"PFTE") << "truncated and terminated";
  ASSERT_EQ(hid_get_indexed_string(dev_, 4, s, 64), 0);
  EXPECT_EQ(std::wstring(s), L"CMSIS-DAP v1");
  EXPECT_EQ(hid_get_indexed_string(dev_, 77, s, 64), -1);
  EXPECT_TRUE(contains(error_text(dev_), L"stalled"));
  EXPECT_EQ(hid_get_product_string(dev_, s, 0), -1);

  hid_device_info* info = hid_get_device_info(dev_);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->vendor_id, kVid);
  EXPECT_EQ(info->usage_page, 0xFF00);
  EXPECT_EQ(std::wstring(info->serial_number), L"PFTEST01");
  EXPECT_EQ(hid_get_device_info(dev_), info) << "owned by the handle";

  const hid_api_version* v = hid_version();
  EXPECT_EQ(v->major, HID_API_VERSION_MAJOR);
  EXPECT_EQ(v->minor, HID_API_VERSION_MINOR);
  EXPECT_STREQ(hid_version_str(), HID_API_VERSION_STR);
}

TEST_F(HidapiStandinTest, FeatureAndInputReportsGoThroughEp0) {
  ASSERT_NE(open_probe(), nullptr);
  const unsigned char feature[2] = {0x00, 0x55};
  EXPECT_EQ(hid_send_feature_report(dev_, feature, sizeof(feature)), 2);
  // The firmware answers GET_REPORT with an empty report: only the report ID byte comes
  // back.
  unsigned char buf[65] = {0};
  EXPECT_EQ(hid_get_feature_report(dev_, buf, sizeof(buf)), 1);
  EXPECT_EQ(buf[0], 0);
  EXPECT_EQ(hid_get_input_report(dev_, buf, sizeof(buf)), 1);
}

TEST_F(HidapiStandinTest, OpenByVidPidAndSerial) {
  dev_ = hid_open(kVid, kPid, L"PFTEST01");
  ASSERT_NE(dev_, nullptr);
  ASSERT_EQ(write_command({0x00, 0xFF}), 65);
  std::array<unsigned char, 65> in{};
  EXPECT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 1000), 64);

  EXPECT_EQ(hid_open(kVid, kPid, L"NOSUCHSERIAL"), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"serial number"));
  EXPECT_EQ(hid_open(0x1234, 0x5678, nullptr), nullptr);
  EXPECT_EQ(hid_open_path("0001:00ff:00"), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"no probefarm-sim HID device"));
  EXPECT_EQ(hid_open_path(nullptr), nullptr);
}

TEST_F(HidapiStandinTest, SecondOpenIsRefusedUntilTheFirstCloses) {
  ASSERT_NE(open_probe(), nullptr);
  const std::string path = first_path();
  EXPECT_EQ(hid_open_path(path.c_str()), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"in use by another program"));
  hid_close(dev_);
  dev_ = hid_open_path(path.c_str());
  ASSERT_NE(dev_, nullptr) << "closing released the interface";
  EXPECT_EQ(write_command({0x00, 0xFF}), 65);
}

TEST_F(HidapiStandinTest, ServerGoneMeansErrorsWithText) {
  ASSERT_NE(open_probe(), nullptr);
  stop_server();
  EXPECT_EQ(write_command({0x00, 0xFF}), -1);
  EXPECT_TRUE(contains(error_text(dev_), L"hid_write: device disconnected"))
      << "got: " << narrow(error_text(dev_));
  std::array<unsigned char, 65> in{};
  EXPECT_EQ(hid_read_timeout(dev_, in.data(), in.size(), 100), -1);
  EXPECT_TRUE(contains(error_text(dev_), L"hid_read_timeout: device disconnected"));
  EXPECT_EQ(hid_enumerate(0, 0), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"cannot connect to"));
}

TEST_F(HidapiStandinTest, ZeroLengthCallsFail) {
  ASSERT_NE(open_probe(), nullptr);
  unsigned char b[1] = {0};
  EXPECT_EQ(hid_write(dev_, b, 0), -1);
  EXPECT_TRUE(contains(error_text(dev_), L"zero buffer/length"));
  EXPECT_EQ(hid_read_timeout(dev_, nullptr, 65, 0), -1);
  EXPECT_EQ(hid_write(nullptr, b, 1), -1);
  EXPECT_EQ(hid_read_timeout(nullptr, b, 1, 0), -1);
}

TEST_F(HidapiStandinTest, MissingSocketVariableIsExplained) {
  unsetenv("PROBEFARM_SIM_SOCKET");
  hid_exit();  // forget the connection made so far
  EXPECT_EQ(hid_enumerate(0, 0), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"PROBEFARM_SIM_SOCKET is not set"));
  EXPECT_EQ(hid_open_path("0001:0003:00"), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"PROBEFARM_SIM_SOCKET is not set"));

  setenv("PROBEFARM_SIM_SOCKET", (dir_ / "nothing.sock").c_str(), 1);
  EXPECT_EQ(hid_enumerate(0, 0), nullptr);
  EXPECT_TRUE(contains(error_text(nullptr), L"cannot connect to"));

  // Back on the right socket, the next enumeration reconnects.
  setenv("PROBEFARM_SIM_SOCKET", socket_.c_str(), 1);
  hid_device_info* devs = hid_enumerate(0, 0);
  EXPECT_NE(devs, nullptr);
  hid_free_enumeration(devs);
  EXPECT_EQ(error_text(nullptr), L"Success");
}

}  // namespace
}  // namespace probefarm::sim
