// The stand-in libusb-1.0.so.0 driven through its public API, against a SimServer running
// in a thread and serving an echo device: what goes OUT comes back IN.
#include <gtest/gtest.h>
#include <libusb-1.0/libusb.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <string>
#include <thread>

#include "server.hpp"
#include "usb_device.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint16_t kVid = 0x1209;
constexpr std::uint16_t kPid = 0x0001;

std::vector<std::uint8_t> utf16_string(std::string_view s) {
  std::vector<std::uint8_t> d{static_cast<std::uint8_t>(2 + 2 * s.size()), 3};
  for (char c : s)
    d.insert(d.end(), {static_cast<std::uint8_t>(c), 0});
  return d;
}

class EchoDevice final : public UsbDevice {
 public:
  UsbSpeed speed() const override { return UsbSpeed::high; }
  std::vector<std::uint8_t> device_descriptor() const override {
    return {18,        1,           0x00,      0x02, 0,    0, 0, 64, kVid & 0xFF,
            kVid >> 8, kPid & 0xFF, kPid >> 8, 0x00, 0x01, 1, 2, 3,  1};
  }
  std::vector<std::uint8_t> config_descriptor() const override {
    std::vector<std::uint8_t> d{
        9,    2, 0,    0, 1,    1,    0,    0x80, 50,   9,    4, 0,    0,    2,
        0xFF, 0, 0,    4, 5,    0x24, 0xAA, 0xBB, 0xCC,  // class-specific: interface extra
        7,    5, 0x01, 2, 0x00, 0x02, 0,    7,    5,    0x81, 2, 0x00, 0x02, 0};
    d[2] = static_cast<std::uint8_t>(d.size());
    return d;
  }
  std::vector<std::uint8_t> string_descriptor(std::uint8_t index) const override {
    switch (index) {
      case 0:
        return {4, 3, 0x09, 0x04};
      case 1:
        return utf16_string("Echo Maker");
      case 2:
        return utf16_string("Echo Product");
      case 3:
        return utf16_string("ECHO0001");
      case 4:
        return utf16_string("Echo Interface");
      default:
        return {};
    }
  }
  UsbStatus control(const UsbSetup& setup, std::vector<std::uint8_t>& data) override {
    if (setup.request_type == 0xC0 && setup.request == 0x42) {
      data = {'h', 'i'};
      return UsbStatus::ok;
    }
    return UsbStatus::stall;
  }
  UsbStatus out(std::uint8_t ep, std::span<const std::uint8_t> data) override {
    if (ep != 0x01) return UsbStatus::stall;
    queue_.emplace_back(data.begin(), data.end());
    return UsbStatus::ok;
  }
  UsbStatus in(std::uint8_t ep, std::size_t max_length, std::vector<std::uint8_t>& data) override {
    if (ep != 0x81) return UsbStatus::stall;
    if (queue_.empty()) return UsbStatus::nak;
    data = std::move(queue_.front());
    queue_.pop_front();
    if (data.size() > max_length) data.resize(max_length);
    return UsbStatus::ok;
  }
  [[noreturn]] Board& board() override { std::abort(); }
  std::string serial() const override { return "ECHO0001"; }
  std::string probe_kind() const override { return "echo"; }

 private:
  std::deque<std::vector<std::uint8_t>> queue_;
};

class StandinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pf-standin-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    socket_ = dir_ / "sim.sock";
    server_ = std::make_unique<SimServer>(SimServerOptions{.socket_path = socket_});
    server_->add_device(std::make_unique<EchoDevice>(), nullptr);
    server_->listen();
    thread_ = std::thread([this] { server_->run(); });
    setenv("PROBEFARM_SIM_SOCKET", socket_.c_str(), 1);
    ASSERT_EQ(libusb_init(&ctx_), LIBUSB_SUCCESS);
  }

  void TearDown() override {
    if (handle_) libusb_close(handle_);
    libusb_exit(ctx_);
    stop_server();
    std::filesystem::remove_all(dir_);
  }

  void stop_server() {
    if (!thread_.joinable()) return;
    server_->request_stop();
    thread_.join();
  }

  libusb_device_handle* open_echo() {
    libusb_device** list = nullptr;
    EXPECT_EQ(libusb_get_device_list(ctx_, &list), 1);
    EXPECT_EQ(libusb_open(list[0], &handle_), LIBUSB_SUCCESS);
    libusb_free_device_list(list, 1);
    EXPECT_EQ(libusb_claim_interface(handle_, 0), LIBUSB_SUCCESS);
    return handle_;
  }

  std::filesystem::path dir_;
  std::filesystem::path socket_;
  std::unique_ptr<SimServer> server_;
  std::thread thread_;
  libusb_context* ctx_ = nullptr;
  libusb_device_handle* handle_ = nullptr;
};

TEST_F(StandinTest, ListsDeviceWithParsedDescriptors) {
  libusb_device** list = nullptr;
  ASSERT_EQ(libusb_get_device_list(ctx_, &list), 1);
  libusb_device* dev = list[0];
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(list[1], nullptr);

  libusb_device_descriptor dd;
  ASSERT_EQ(libusb_get_device_descriptor(dev, &dd), LIBUSB_SUCCESS);
  EXPECT_EQ(dd.idVendor, kVid);
  EXPECT_EQ(dd.idProduct, kPid);
  EXPECT_EQ(dd.bcdUSB, 0x0200);
  EXPECT_EQ(dd.iProduct, 2);
  EXPECT_EQ(libusb_get_device_speed(dev), LIBUSB_SPEED_HIGH);
  EXPECT_EQ(libusb_get_bus_number(dev), 1);
  EXPECT_EQ(libusb_get_device_address(dev), 2);
  std::uint8_t ports[7];
  ASSERT_EQ(libusb_get_port_numbers(dev, ports, 7), 1);
  EXPECT_EQ(ports[0], 1);

  libusb_config_descriptor* config = nullptr;
  ASSERT_EQ(libusb_get_active_config_descriptor(dev, &config), LIBUSB_SUCCESS);
  EXPECT_EQ(config->bConfigurationValue, 1);
  ASSERT_EQ(config->bNumInterfaces, 1);
  ASSERT_EQ(config->interface[0].num_altsetting, 1);
  const libusb_interface_descriptor& alt = config->interface[0].altsetting[0];
  EXPECT_EQ(alt.bInterfaceClass, 0xFF);
  EXPECT_EQ(alt.iInterface, 4);
  ASSERT_EQ(alt.extra_length, 5);
  EXPECT_EQ(alt.extra[1], 0x24);
  ASSERT_EQ(alt.bNumEndpoints, 2);
  EXPECT_EQ(alt.endpoint[0].bEndpointAddress, 0x01);
  EXPECT_EQ(alt.endpoint[1].bEndpointAddress, 0x81);
  EXPECT_EQ(alt.endpoint[1].bmAttributes & 3, LIBUSB_TRANSFER_TYPE_BULK);
  EXPECT_EQ(alt.endpoint[1].wMaxPacketSize, 512);
  libusb_free_config_descriptor(config);
  EXPECT_EQ(libusb_get_max_packet_size(dev, 0x81), 512);
  EXPECT_EQ(libusb_get_max_packet_size(dev, 0x82), LIBUSB_ERROR_NOT_FOUND);
  EXPECT_EQ(libusb_get_config_descriptor(dev, 1, &config), LIBUSB_ERROR_NOT_FOUND);
  libusb_free_device_list(list, 1);
}

TEST_F(StandinTest, StringsAndControlTransfers) {
  libusb_device_handle* h = open_echo();
  libusb_device_descriptor dd;
  libusb_get_device_descriptor(libusb_get_device(h), &dd);
  unsigned char text[64];
  ASSERT_EQ(libusb_get_string_descriptor_ascii(h, dd.iProduct, text, sizeof(text)), 12);
  EXPECT_STREQ(reinterpret_cast<char*>(text), "Echo Product");
  ASSERT_GT(libusb_get_string_descriptor_ascii(h, 4, text, sizeof(text)), 0);
  EXPECT_STREQ(reinterpret_cast<char*>(text), "Echo Interface");
  // Truncation keeps room for the terminator.
  EXPECT_EQ(libusb_get_string_descriptor_ascii(h, 3, text, 5), 4);
  EXPECT_STREQ(reinterpret_cast<char*>(text), "ECHO");
  EXPECT_EQ(libusb_get_string_descriptor_ascii(h, 9, text, sizeof(text)), LIBUSB_ERROR_PIPE);

  int config = -1;
  ASSERT_EQ(libusb_get_configuration(h, &config), LIBUSB_SUCCESS);
  EXPECT_EQ(config, 1);
  EXPECT_EQ(libusb_set_configuration(h, 1), LIBUSB_SUCCESS);
  EXPECT_EQ(libusb_set_interface_alt_setting(h, 0, 0), LIBUSB_SUCCESS);
  unsigned char buf[8] = {};
  EXPECT_EQ(libusb_control_transfer(h, 0xC0, 0x42, 0, 0, buf, sizeof(buf), 100), 2);
  EXPECT_EQ(buf[0], 'h');
  EXPECT_EQ(libusb_control_transfer(h, 0xC0, 0x43, 0, 0, buf, sizeof(buf), 100), LIBUSB_ERROR_PIPE);
}

TEST_F(StandinTest, SyncBulkRoundTrip) {
  libusb_device_handle* h = open_echo();
  unsigned char out[3] = {0x00, 0xFF, 0x7E};
  int n = 0;
  ASSERT_EQ(libusb_bulk_transfer(h, 0x01, out, sizeof(out), &n, 1000), LIBUSB_SUCCESS);
  EXPECT_EQ(n, 3);
  unsigned char in[512] = {};
  ASSERT_EQ(libusb_bulk_transfer(h, 0x81, in, sizeof(in), &n, 1000), LIBUSB_SUCCESS);
  ASSERT_EQ(n, 3);
  EXPECT_EQ(in[1], 0xFF);
  EXPECT_EQ(in[2], 0x7E);
  EXPECT_EQ(libusb_bulk_transfer(h, 0x82, in, sizeof(in), &n, 1000), LIBUSB_ERROR_PIPE);
}

TEST_F(StandinTest, NakedInTimesOut) {
  libusb_device_handle* h = open_echo();
  unsigned char in[64];
  int n = 123;
  EXPECT_EQ(libusb_bulk_transfer(h, 0x81, in, sizeof(in), &n, 20), LIBUSB_ERROR_TIMEOUT);
  EXPECT_EQ(n, 0);
}

struct Completion {
  int calls = 0;
  libusb_transfer_status status = LIBUSB_TRANSFER_ERROR;
  int length = -1;
};

extern "C" void on_transfer(libusb_transfer* t) {
  auto* c = static_cast<Completion*>(t->user_data);
  c->calls++;
  c->status = t->status;
  c->length = t->actual_length;
}

void run_events_until(libusb_context* ctx, const Completion& c) {
  for (int i = 0; i < 1000 && c.calls == 0; ++i) {
    timeval tv{0, 10'000};
    ASSERT_EQ(libusb_handle_events_timeout_completed(ctx, &tv, nullptr), LIBUSB_SUCCESS);
  }
}

TEST_F(StandinTest, AsyncTransfersCompleteOnlyInsideHandleEvents) {
  libusb_device_handle* h = open_echo();
  unsigned char in_buf[512] = {};
  unsigned char out_buf[4] = {1, 2, 3, 4};
  Completion in_done, out_done;
  libusb_transfer* in = libusb_alloc_transfer(0);
  libusb_transfer* out = libusb_alloc_transfer(0);
  // The IN is posted before the OUT that produces its data, as a pipelining host does.
  libusb_fill_bulk_transfer(in, h, 0x81, in_buf, sizeof(in_buf), on_transfer, &in_done, 1000);
  libusb_fill_bulk_transfer(out, h, 0x01, out_buf, sizeof(out_buf), on_transfer, &out_done, 1000);
  ASSERT_EQ(libusb_submit_transfer(in), LIBUSB_SUCCESS);
  EXPECT_EQ(libusb_submit_transfer(in), LIBUSB_ERROR_BUSY);
  ASSERT_EQ(libusb_submit_transfer(out), LIBUSB_SUCCESS);
  EXPECT_EQ(in_done.calls, 0);
  EXPECT_EQ(out_done.calls, 0);

  int completed = 0;
  timeval tv{1, 0};
  ASSERT_EQ(libusb_handle_events_timeout_completed(ctx_, &tv, &completed), LIBUSB_SUCCESS);
  EXPECT_EQ(out_done.calls, 1);
  EXPECT_EQ(out_done.status, LIBUSB_TRANSFER_COMPLETED);
  EXPECT_EQ(out_done.length, 4);
  run_events_until(ctx_, in_done);
  EXPECT_EQ(in_done.calls, 1);
  EXPECT_EQ(in_done.status, LIBUSB_TRANSFER_COMPLETED);
  EXPECT_EQ(in_done.length, 4);
  EXPECT_EQ(in_buf[3], 4);
  libusb_free_transfer(in);
  libusb_free_transfer(out);
}

TEST_F(StandinTest, AsyncInTimesOutAndCancels) {
  libusb_device_handle* h = open_echo();
  unsigned char buf[64];
  Completion timed, cancelled;
  libusb_transfer* t1 = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(t1, h, 0x81, buf, sizeof(buf), on_transfer, &timed, 20);
  ASSERT_EQ(libusb_submit_transfer(t1), LIBUSB_SUCCESS);
  run_events_until(ctx_, timed);
  EXPECT_EQ(timed.calls, 1);
  EXPECT_EQ(timed.status, LIBUSB_TRANSFER_TIMED_OUT);

  libusb_transfer* t2 = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(t2, h, 0x81, buf, sizeof(buf), on_transfer, &cancelled, 0);
  ASSERT_EQ(libusb_submit_transfer(t2), LIBUSB_SUCCESS);
  EXPECT_EQ(libusb_cancel_transfer(t2), LIBUSB_SUCCESS);
  run_events_until(ctx_, cancelled);
  EXPECT_EQ(cancelled.calls, 1);
  EXPECT_EQ(cancelled.status, LIBUSB_TRANSFER_CANCELLED);
  EXPECT_EQ(libusb_cancel_transfer(t2), LIBUSB_ERROR_NOT_FOUND);
  libusb_free_transfer(t1);
  libusb_free_transfer(t2);
}

TEST_F(StandinTest, SecondClientCannotClaim) {
  libusb_device_handle* h = open_echo();
  ASSERT_NE(h, nullptr);
  libusb_context* other = nullptr;
  ASSERT_EQ(libusb_init(&other), LIBUSB_SUCCESS);
  libusb_device** list = nullptr;
  ASSERT_EQ(libusb_get_device_list(other, &list), 1);
  libusb_device_handle* h2 = nullptr;
  ASSERT_EQ(libusb_open(list[0], &h2), LIBUSB_SUCCESS);  // opening is shared, as in usbfs
  EXPECT_EQ(libusb_claim_interface(h2, 0), LIBUSB_ERROR_BUSY);
  unsigned char b[1] = {0};
  int n = 0;
  EXPECT_EQ(libusb_bulk_transfer(h2, 0x01, b, 1, &n, 100), LIBUSB_ERROR_BUSY);
  libusb_close(h2);
  libusb_free_device_list(list, 1);
  libusb_exit(other);
}

TEST_F(StandinTest, ServerGoneMeansNoDevice) {
  libusb_device_handle* h = open_echo();
  stop_server();
  unsigned char b[1] = {0};
  int n = 0;
  EXPECT_EQ(libusb_bulk_transfer(h, 0x01, b, 1, &n, 100), LIBUSB_ERROR_NO_DEVICE);
  EXPECT_FALSE(std::filesystem::exists(socket_));
}

TEST(StandinNoServer, MissingSocketGivesEmptyListAndOneClearLine) {
  auto missing = std::filesystem::temp_directory_path() / "pf-standin-no-such.sock";
  std::filesystem::remove(missing);
  setenv("PROBEFARM_SIM_SOCKET", missing.c_str(), 1);
  ::testing::internal::CaptureStderr();
  libusb_context* ctx = nullptr;
  ASSERT_EQ(libusb_init(&ctx), LIBUSB_SUCCESS);
  libusb_device** list = nullptr;
  EXPECT_EQ(libusb_get_device_list(ctx, &list), 0);
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(list[0], nullptr);
  libusb_free_device_list(list, 1);
  libusb_exit(ctx);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(missing.string()), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;

  unsetenv("PROBEFARM_SIM_SOCKET");
  ::testing::internal::CaptureStderr();
  ASSERT_EQ(libusb_init(&ctx), LIBUSB_SUCCESS);
  EXPECT_EQ(libusb_get_device_list(ctx, &list), 0);
  libusb_free_device_list(list, 1);
  libusb_exit(ctx);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("PROBEFARM_SIM_SOCKET is not set"), std::string::npos) << err;
}

}  // namespace
}  // namespace probefarm::sim
