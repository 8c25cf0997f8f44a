#pragma once
// SimServer: serves simulated USB devices to stand-in libusb clients over a Unix socket
// (wire format in sim_protocol.hpp). Single-threaded: one poll() loop serves every client.
//
// Ownership and access rules follow Linux usbfs: any client may open a device and read its
// descriptors; claiming an interface is exclusive (others get Status::busy), and a bulk
// transfer on an unclaimed device claims it implicitly.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "board.hpp"
#include "sim_protocol.hpp"
#include "usb_device.hpp"

namespace probefarm::sim {

struct SimServerOptions {
  std::filesystem::path socket_path;
  // 0: unpaced, virtual time advances only with transfers. X > 0: while idle, every
  // board's virtual time keeps pace with wall time * X, and a client whose board ran ahead
  // gets its response only when the wall clock has caught up.
  double time_scale = 0;
};

class SimServer {
 public:
  explicit SimServer(SimServerOptions options);
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  // Serves `device`. `board` is the board behind it; the server owns it and destroys it
  // after the device. Null for devices without a simulated board (tests): such a device's
  // board() is never called. Returns the device id. Call before run().
  std::uint32_t add_device(std::unique_ptr<UsbDevice> device, std::unique_ptr<Board> board);

  // Binds and listens. Throws std::runtime_error with a readable message (path too long,
  // another server already listening there, ...).
  void listen();
  // Serves until request_stop(); then saves board state, closes clients, removes the
  // socket file.
  void run();
  // Async-signal-safe and thread-safe.
  void request_stop();

  // The `ctl stats` document.
  std::string stats_json() const;
  const std::filesystem::path& socket_path() const { return options_.socket_path; }

 private:
  using WallClock = std::chrono::steady_clock;

  // Faults injected through ctl into the next bulk/interrupt transfers that move data.
  struct UsbFaults {
    unsigned drop = 0;    // the data is lost: an OUT never reaches the probe, an IN's
                          // response vanishes; the host sees its IN time out
    unsigned stall = 0;   // the endpoint answers STALL; nothing is delivered or consumed
    unsigned garble = 0;  // every byte of the data arrives inverted
  };

  struct Device {
    std::uint32_t id = 0;           // changes on every replug, like a USB device address
    std::uint8_t port = 0;          // root-hub port, fixed
    bool present = true;            // false while unplugged
    Picoseconds virtual_start = 0;  // board time when serving started (pacing)
    Picoseconds pace_forgiven = 0;  // time the board fell behind the wall clock (pace_idle)
    UsbFaults faults;
    std::unique_ptr<Board> board;  // declared before `usb`: destroyed after it
    std::unique_ptr<UsbDevice> usb;
    int owner = 0;  // client id holding the claim, 0 if none
    std::set<std::uint8_t> claimed_interfaces;
    std::uint8_t configuration = 1;  // the kernel configures a device at enumeration
  };

  struct Client {
    int id = 0;
    int fd = -1;
    std::vector<std::uint8_t> in;
    std::vector<std::uint8_t> out;
    std::set<std::uint32_t> opened;
    std::set<std::uint32_t> touched;  // devices this client moved data through
    // Pacing: output withheld (and no further requests read) until this wall time.
    WallClock::time_point hold_until{};
    std::vector<std::uint8_t> held;
  };

  Device* find_device(std::uint32_t id);  // present devices only
  Device& device_by_serial(const std::string& serial);
  void unplug(Device& d);
  // Consumes one pending stall fault: true if this transfer must answer STALL.
  bool take_stall(Device& d);
  // Applies pending drop/garble faults to data that crossed the bus; false if it was lost.
  bool damage(Device& d, std::vector<std::uint8_t>& data);
  void accept_clients();
  bool read_client(Client& c);   // false: disconnect
  bool flush_client(Client& c);  // false: disconnect
  void process_frames(Client& c);
  std::vector<std::uint8_t> handle(Client& c, const protocol::Header& h,
                                   std::span<const std::uint8_t> payload);
  protocol::Status standard_control(Device& d, const UsbSetup& setup,
                                    std::vector<std::uint8_t>& data);
  protocol::Status transfer_access(Client& c, Device& d);
  std::string ctl(const std::string& command);
  void drop_client(Client& c);
  void release_claims(Client& c, Device& d);
  void save_touched(Client& c);
  // Advances every board towards the wall clock for a bounded slice of host time; true
  // while a board is still behind (the poll loop then comes straight back).
  bool pace_idle();
  WallClock::duration ahead_of_wall(Board& board) const;
  int poll_timeout_ms() const;

  SimServerOptions options_;
  std::vector<Device> devices_;
  bool behind_wall_ = false;  // pace_idle ran out of its host-time slice
  std::map<int, Client> clients_;
  int next_client_id_ = 1;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  WallClock::time_point wall_start_{};
  std::uint32_t next_device_id_ = 1;
};

}  // namespace probefarm::sim
