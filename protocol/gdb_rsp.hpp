#pragma once
// The GDB Remote Serial Protocol's byte level, without any I/O (GDB manual, "Remote
// Protocol": "Overview" for packets, checksums, escaping and run-length encoding;
// "Packet Acknowledgment"; "Interrupts"): framing of outgoing packets, a decoder that turns
// the client's byte stream into packets, acks and interrupts, and the hex helpers packets
// are written in.
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace probefarm::protocol::rsp {

// Modulo-256 sum of the payload's bytes (the two hex digits after '#').
std::uint8_t checksum(std::string_view payload);

// "$<payload>#<checksum>"; `payload` must already be escaped where it carries binary data.
std::string frame(std::string_view payload);

// Binary data in packets ("Overview"): '$', '#', '}' and '*' are sent as '}' followed by
// the byte XOR 0x20.
std::string escape_binary(std::span<const std::uint8_t> data);
std::string escape_binary(std::string_view data);
// The reverse; a trailing lone '}' is dropped.
std::vector<std::uint8_t> unescape_binary(std::string_view data);

// Run-length decoding: "X*N" repeats X (N - 29) more times. GDB never sends it, but a
// payload with it must decode to what the sender meant.
std::string expand_run_lengths(std::string_view payload);

// Lower-case hex of each byte, in order.
std::string to_hex(std::span<const std::uint8_t> data);
std::string to_hex(std::string_view text);
// Pairs of hex digits to bytes; nullopt on an odd length or a non-hex digit.
std::optional<std::vector<std::uint8_t>> from_hex(std::string_view hex);
// A big-endian hex number as in "m<addr>,<len>" (1 to 8 digits); nullopt otherwise.
std::optional<std::uint32_t> parse_number(std::string_view hex);
// A 32-bit register value as target bytes in memory order (little-endian Cortex-M).
std::string le32_hex(std::uint32_t value);
std::optional<std::uint32_t> parse_le32_hex(std::string_view hex);  // exactly 8 digits

// Splits "a,b,c" (or with another separator) into its parts.
std::vector<std::string_view> split(std::string_view text, char separator);

// What the client sent, one item at a time.
struct Input {
  enum class Kind {
    packet,        // payload: run lengths expanded, binary data still escaped
    bad_checksum,  // a packet whose checksum did not match (payload as received)
    ack,           // '+'
    nack,          // '-': send the last packet again
    interrupt,     // 0x03 outside a packet ("Interrupts": Ctrl-C)
  };
  Kind kind = Kind::packet;
  std::string payload;
};

// Incremental decoder: feed() any split of the stream, then next() until empty. Bytes
// outside a packet other than '+', '-' and 0x03 are ignored (line noise, as the manual
// allows). A packet over `max_packet` bytes is dropped as a bad checksum.
class Decoder {
 public:
  explicit Decoder(std::size_t max_packet = 64 * 1024) : max_packet_(max_packet) {}

  void feed(std::string_view bytes);
  std::optional<Input> next();
  // Drops any half-received packet.
  void reset();

 private:
  enum class State { idle, payload, check1, check2 };
  std::size_t max_packet_;
  State state_ = State::idle;
  std::string payload_;
  std::uint8_t sum_ = 0;
  int check_ = 0;
  bool overflow_ = false;
  std::deque<Input> ready_;
};

}  // namespace probefarm::protocol::rsp
