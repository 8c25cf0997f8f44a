// SimServer over its socket, spoken to frame by frame (sim_protocol.hpp) the way the
// stand-in libraries do: the ctl fault verbs (USB drop/stall/garble, unplug/replug, target
// power, SWD-OFF jumper) and what a client sees of them.
#include "server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "probe_factory.hpp"

namespace probefarm::sim {
namespace {

using protocol::Op;
using protocol::Status;

const std::vector<std::uint8_t> kDapInfoPacketCount = {0x00, 0xFE};  // DAP_Info 0xFE
const std::vector<std::uint8_t> kPacketCountReply = {0x00, 0x01, 4};

// One blocking connection to the server.
class Client {
 public:
  explicit Client(const std::filesystem::path& socket) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { close(fd_); }
  bool connected() const { return connected_; }

  // The response payload, status byte first.
  std::vector<std::uint8_t> call(Op op, protocol::Writer payload = {}) {
    auto w = protocol::begin_frame(protocol::Kind::request, op, ++seq_);
    w.raw(payload.buffer());
    const auto frame = protocol::finish_frame(w);
    EXPECT_EQ(send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frame.size()));
    std::uint8_t len[4];
    EXPECT_TRUE(recv_all(len, 4));
    std::vector<std::uint8_t> body(protocol::frame_length(len));
    EXPECT_TRUE(recv_all(body.data(), body.size()));
    std::span<const std::uint8_t> reply;
    auto h = protocol::parse_header(body, reply);
    EXPECT_TRUE(h && h->seq == seq_ && h->op == op);
    return {reply.begin(), reply.end()};
  }

  std::pair<Status, std::string> ctl(const std::string& command) {
    protocol::Writer w;
    w.string(command);
    auto reply = call(Op::ctl, std::move(w));
    protocol::Reader r(reply);
    auto status = static_cast<Status>(r.u8());
    return {status, r.string()};
  }

  std::vector<protocol::DeviceInfo> devices() {
    auto reply = call(Op::list_devices);
    protocol::Reader r(reply);
    EXPECT_EQ(static_cast<Status>(r.u8()), Status::ok);
    std::vector<protocol::DeviceInfo> list(r.u32());
    for (auto& d : list)
      d = protocol::read_device_info(r);
    return list;
  }

  Status open(std::uint32_t id) {
    protocol::Writer w;
    w.u32(id);
    return static_cast<Status>(call(Op::open, std::move(w)).at(0));
  }

  Status out(std::uint32_t id, const std::vector<std::uint8_t>& data) {
    protocol::Writer w;
    w.u32(id);
    w.u8(0x01);
    w.bytes(data);
    return static_cast<Status>(call(Op::out, std::move(w)).at(0));
  }

  // Status and data of one IN transfer on EP 0x81.
  std::pair<Status, std::vector<std::uint8_t>> in(std::uint32_t id) {
    protocol::Writer w;
    w.u32(id);
    w.u8(0x81);
    w.u32(512);
    auto reply = call(Op::in, std::move(w));
    protocol::Reader r(reply);
    auto status = static_cast<Status>(r.u8());
    return {status, status == Status::ok ? r.bytes() : std::vector<std::uint8_t>{}};
  }

 private:
  bool recv_all(std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      ssize_t got = recv(fd_, p, n, 0);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::uint32_t seq_ = 0;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pf-server-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    server_ = std::make_unique<SimServer>(SimServerOptions{.socket_path = dir_ / "sim.sock"});
    auto board =
        std::make_unique<Board>(*find_chip("stm32f407vg"),
                                BoardOptions{.serial = "PFTEST01", .uid_seed = 1, .state_dir = {}});
    auto probe = make_probe("cmsis-dap-v2", *board);
    server_->add_device(std::move(probe), std::move(board));
    server_->listen();
    thread_ = std::thread([this] { server_->run(); });
    client_ = std::make_unique<Client>(dir_ / "sim.sock");
    ASSERT_TRUE(client_->connected());
  }

  void TearDown() override {
    client_.reset();
    server_->request_stop();
    thread_.join();
    std::filesystem::remove_all(dir_);
  }

  std::uint32_t only_device_id() {
    auto list = client_->devices();
    EXPECT_EQ(list.size(), 1u);
    return list.empty() ? 0 : list[0].id;
  }

  // One DAP_Info round trip that must work.
  void expect_round_trip(std::uint32_t id) {
    ASSERT_EQ(client_->out(id, kDapInfoPacketCount), Status::ok);
    auto [status, data] = client_->in(id);
    ASSERT_EQ(status, Status::ok);
    EXPECT_EQ(data, kPacketCountReply);
  }

  std::filesystem::path dir_;
  std::unique_ptr<SimServer> server_;
  std::thread thread_;
  std::unique_ptr<Client> client_;
};

TEST_F(ServerTest, CtlRejectsUnknownVerbsSerialsAndCounts) {
  auto [s1, t1] = client_->ctl("explode PFTEST01");
  EXPECT_EQ(s1, Status::error);
  EXPECT_NE(t1.find("unknown ctl command 'explode'"), std::string::npos) << t1;
  auto [s2, t2] = client_->ctl("unplug NOPE");
  EXPECT_EQ(s2, Status::error);
  EXPECT_NE(t2.find("no probe with serial 'NOPE' (known: PFTEST01)"), std::string::npos) << t2;
  auto [s3, t3] = client_->ctl("fault PFTEST01 drop lots");
  EXPECT_EQ(s3, Status::error);
  EXPECT_NE(t3.find("'lots' is not a count"), std::string::npos) << t3;
  auto [s4, t4] = client_->ctl("fault PFTEST01 melt 1");
  EXPECT_EQ(s4, Status::error);
  EXPECT_NE(t4.find("drop|stall|garble"), std::string::npos) << t4;
  auto [s5, t5] = client_->ctl("power PFTEST01 sideways");
  EXPECT_EQ(s5, Status::error);
  EXPECT_NE(t5.find("off|on|cycle"), std::string::npos) << t5;
}

TEST_F(ServerTest, DroppedOutNeverReachesTheProbe) {
  const auto id = only_device_id();
  ASSERT_EQ(client_->open(id), Status::ok);
  ASSERT_EQ(client_->ctl("fault PFTEST01 drop 1").first, Status::ok);
  EXPECT_EQ(client_->out(id, kDapInfoPacketCount), Status::ok) << "the host saw it leave";
  EXPECT_EQ(client_->in(id).first, Status::nak) << "no response ever comes";
  expect_round_trip(id);
}

TEST_F(ServerTest, DroppedInLosesTheResponse) {
  const auto id = only_device_id();
  ASSERT_EQ(client_->open(id), Status::ok);
  ASSERT_EQ(client_->out(id, kDapInfoPacketCount), Status::ok);
  ASSERT_EQ(client_->ctl("fault PFTEST01 drop 1").first, Status::ok);
  EXPECT_EQ(client_->in(id).first, Status::nak);
  EXPECT_EQ(client_->in(id).first, Status::nak) << "the response is gone, not delayed";
  expect_round_trip(id);
}

TEST_F(ServerTest, StalledTransfersDeliverNothing) {
  const auto id = only_device_id();
  ASSERT_EQ(client_->open(id), Status::ok);
  ASSERT_EQ(client_->ctl("fault PFTEST01 stall 2").first, Status::ok);
  EXPECT_EQ(client_->out(id, kDapInfoPacketCount), Status::stall);
  EXPECT_EQ(client_->in(id).first, Status::stall);
  EXPECT_EQ(client_->in(id).first, Status::nak) << "the stalled OUT was not delivered";
  expect_round_trip(id);
}

TEST_F(ServerTest, GarbledOutIsAnUnknownCommandGarbledInIsInverted) {
  const auto id = only_device_id();
  ASSERT_EQ(client_->open(id), Status::ok);
  ASSERT_EQ(client_->ctl("fault PFTEST01 garble 1").first, Status::ok);
  ASSERT_EQ(client_->out(id, kDapInfoPacketCount), Status::ok);
  auto [status, data] = client_->in(id);
  ASSERT_EQ(status, Status::ok);
  // 0x00 0xFE arrived as 0xFF 0x01: command 0xFF is unknown, answered with 0xFF
  // (CMSIS-DAP v2.1 "Commands": DAP_Invalid).
  EXPECT_EQ(data, std::vector<std::uint8_t>{0xFF});

  ASSERT_EQ(client_->out(id, kDapInfoPacketCount), Status::ok);
  ASSERT_EQ(client_->ctl("fault PFTEST01 garble 1").first, Status::ok);
  std::tie(status, data) = client_->in(id);
  ASSERT_EQ(status, Status::ok);
  EXPECT_EQ(data, (std::vector<std::uint8_t>{0xFF, 0xFE, 0xFB}));
  expect_round_trip(id);
  EXPECT_EQ(client_->ctl("fault PFTEST01 garble 0").first, Status::ok);
}

TEST_F(ServerTest, UnplugMakesHandlesStaleAndReplugGivesANewDevice) {
  const auto id = only_device_id();
  ASSERT_EQ(client_->open(id), Status::ok);
  ASSERT_EQ(client_->out(id, kDapInfoPacketCount), Status::ok);  // response left queued
  auto [status, text] = client_->ctl("unplug PFTEST01");
  ASSERT_EQ(status, Status::ok) << text;
  EXPECT_TRUE(client_->devices().empty());
  EXPECT_EQ(client_->out(id, kDapInfoPacketCount), Status::no_device);
  EXPECT_EQ(client_->in(id).first, Status::no_device);
  EXPECT_EQ(client_->open(id), Status::no_device);
  EXPECT_NE(client_->ctl("unplug PFTEST01").second.find("already unplugged"), std::string::npos);

  ASSERT_EQ(client_->ctl("replug PFTEST01").first, Status::ok);
  auto list = client_->devices();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].serial, "PFTEST01");
  EXPECT_NE(list[0].id, id) << "a replugged device is a new device";
  EXPECT_NE(list[0].address, 0);
  EXPECT_EQ(client_->open(id), Status::no_device) << "the old handle stays stale";
  ASSERT_EQ(client_->open(list[0].id), Status::ok);
  EXPECT_EQ(client_->in(list[0].id).first, Status::nak)
      << "the probe rebooted: the response queued before the unplug is gone";
  expect_round_trip(list[0].id);
}

TEST_F(ServerTest, PowerAndJumperShowInStats) {
  ASSERT_EQ(client_->ctl("power PFTEST01 off").first, Status::ok);
  auto stats = client_->ctl("stats").second;
  EXPECT_NE(stats.find("\"powered\": false"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"swd_pins_connected\": false"), std::string::npos) << stats;
  ASSERT_EQ(client_->ctl("power PFTEST01 on").first, Status::ok);
  ASSERT_EQ(client_->ctl("swd-off PFTEST01 on").first, Status::ok);
  stats = client_->ctl("stats").second;
  EXPECT_NE(stats.find("\"powered\": true"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"swd_off_jumper\": true"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"swd_pins_connected\": true"), std::string::npos)
      << "the jumper acts through the firmware, not at once: " << stats;
}

}  // namespace
}  // namespace probefarm::sim
