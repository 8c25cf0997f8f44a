#include "protocol/gdb_rsp.hpp"

namespace probefarm::protocol::rsp {
namespace {

constexpr char kDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool needs_escape(std::uint8_t b) {
  return b == '$' || b == '#' || b == '}' || b == '*';
}

}  // namespace

std::uint8_t checksum(std::string_view payload) {
  std::uint8_t sum = 0;
  for (char c : payload)
    sum = static_cast<std::uint8_t>(sum + static_cast<std::uint8_t>(c));
  return sum;
}

std::string frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 4);
  out += '$';
  out += payload;
  out += '#';
  const std::uint8_t sum = checksum(payload);
  out += kDigits[sum >> 4];
  out += kDigits[sum & 0xF];
  return out;
}

std::string escape_binary(std::span<const std::uint8_t> data) {
  std::string out;
  out.reserve(data.size() + data.size() / 16);
  for (std::uint8_t b : data) {
    if (needs_escape(b)) {
      out += '}';
      out += static_cast<char>(b ^ 0x20);
    } else {
      out += static_cast<char>(b);
    }
  }
  return out;
}

std::string escape_binary(std::string_view data) {
  return escape_binary(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

std::vector<std::uint8_t> unescape_binary(std::string_view data) {
  std::vector<std::uint8_t> out;
  out.reserve(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '}') {
      if (i + 1 >= data.size()) break;
      out.push_back(static_cast<std::uint8_t>(data[++i] ^ 0x20));
    } else {
      out.push_back(static_cast<std::uint8_t>(data[i]));
    }
  }
  return out;
}

std::string expand_run_lengths(std::string_view payload) {
  if (payload.find('*') == std::string_view::npos) return std::string(payload);
  std::string out;
  out.reserve(payload.size() * 2);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    // "Overview": the byte after '*' is the repeat count plus 29; the escape '}' in front
    // of a literal '*' is handled by unescape_binary later, so "}*" is not a run.
    const bool escaped_star = i > 0 && payload[i - 1] == '}' && (i < 2 || payload[i - 2] != '}');
    if (payload[i] == '*' && !out.empty() && !escaped_star && i + 1 < payload.size()) {
      const int count = static_cast<std::uint8_t>(payload[++i]) - 29;
      if (count > 0) out.append(static_cast<std::size_t>(count), out.back());
    } else {
      out += payload[i];
    }
  }
  return out;
}

std::string to_hex(std::span<const std::uint8_t> data) {
  std::string out;
  out.reserve(data.size() * 2);
  for (std::uint8_t b : data) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
  }
  return out;
}

std::string to_hex(std::string_view text) {
  return to_hex(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

std::optional<std::vector<std::uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::vector<std::uint8_t> out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::optional<std::uint32_t> parse_number(std::string_view hex) {
  if (hex.empty() || hex.size() > 8) return std::nullopt;
  std::uint32_t value = 0;
  for (char c : hex) {
    const int v = hex_value(c);
    if (v < 0) return std::nullopt;
    value = value << 4 | static_cast<std::uint32_t>(v);
  }
  return value;
}

std::string le32_hex(std::uint32_t value) {
  const std::uint8_t bytes[4] = {
      static_cast<std::uint8_t>(value), static_cast<std::uint8_t>(value >> 8),
      static_cast<std::uint8_t>(value >> 16), static_cast<std::uint8_t>(value >> 24)};
  return to_hex(bytes);
}

std::optional<std::uint32_t> parse_le32_hex(std::string_view hex) {
  if (hex.size() != 8) return std::nullopt;
  auto bytes = from_hex(hex);
  if (!bytes) return std::nullopt;
  const auto& b = *bytes;
  return std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 | std::uint32_t{b[2]} << 16 |
         std::uint32_t{b[3]} << 24;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = text.find(separator, start);
    if (at == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, at - start));
    start = at + 1;
  }
}

void Decoder::feed(std::string_view bytes) {
  for (char ch : bytes) {
    const auto c = static_cast<std::uint8_t>(ch);
    switch (state_) {
      case State::idle:
        if (c == '$') {
          state_ = State::payload;
          payload_.clear();
          sum_ = 0;
          overflow_ = false;
        } else if (c == '+') {
          ready_.push_back({Input::Kind::ack, {}});
        } else if (c == '-') {
          ready_.push_back({Input::Kind::nack, {}});
        } else if (c == 0x03) {
          ready_.push_back({Input::Kind::interrupt, {}});
        }
        break;
      case State::payload:
        if (c == '#') {
          state_ = State::check1;
        } else if (c == '$') {
          // A new start inside a packet: the sender gave up on the old one.
          payload_.clear();
          sum_ = 0;
          overflow_ = false;
        } else {
          sum_ = static_cast<std::uint8_t>(sum_ + c);
          if (payload_.size() < max_packet_)
            payload_ += ch;
          else
            overflow_ = true;
        }
        break;
      case State::check1:
        check_ = hex_value(ch);
        state_ = State::check2;
        if (check_ < 0) check_ = -256;
        break;
      case State::check2: {
        const int lo = hex_value(ch);
        state_ = State::idle;
        const bool ok = check_ >= 0 && lo >= 0 && (check_ << 4 | lo) == sum_ && !overflow_;
        if (ok)
          ready_.push_back({Input::Kind::packet, expand_run_lengths(payload_)});
        else
          ready_.push_back({Input::Kind::bad_checksum, payload_});
        payload_.clear();
        break;
      }
    }
  }
}

std::optional<Input> Decoder::next() {
  if (ready_.empty()) return std::nullopt;
  Input in = std::move(ready_.front());
  ready_.pop_front();
  return in;
}

void Decoder::reset() {
  state_ = State::idle;
  payload_.clear();
  ready_.clear();
}

}  // namespace probefarm::protocol::rsp
