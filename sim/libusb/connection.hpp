#pragma once
// The socket connection from a stand-in library to probefarm-sim. Shared by the stand-in
// libusb-1.0.so.0 and the stand-in libhidapi-hidraw.so.0, so it includes neither API's
// header; compiled into each library with hidden visibility.
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../sim_protocol.hpp"

namespace probefarm::sim::standin {

namespace protocol = probefarm::sim::protocol;

struct Reply {
  protocol::Status status = protocol::Status::no_device;
  std::vector<std::uint8_t> payload;  // after the status byte
};

// One blocking request/response connection to the server. Thread-safe: a call holds the
// connection for its whole round trip, so concurrent callers never interleave frames.
class Connection {
 public:
  ~Connection();
  // Empty on success, else a message saying why.
  std::string connect(const std::string& path);
  bool connected() const;
  void disconnect();
  // The response payload (Status byte first), or nothing when the connection is gone.
  std::optional<std::vector<std::uint8_t>> call(protocol::Op op,
                                                const std::vector<std::uint8_t>& payload);
  // call() split into status and payload; a lost connection reads as Status::no_device.
  Reply request(protocol::Op op, const std::vector<std::uint8_t>& payload = {});

 private:
  void drop();  // with mu_ held
  mutable std::mutex mu_;
  int fd_ = -1;
  std::uint32_t seq_ = 0;
};

}  // namespace probefarm::sim::standin
