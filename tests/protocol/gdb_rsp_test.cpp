// The GDB RSP codec: framing, checksums, escaping, run lengths, acks and interrupts, hex.
#include "protocol/gdb_rsp.hpp"

#include <gtest/gtest.h>

namespace probefarm::protocol::rsp {
namespace {

std::vector<Input> decode(std::string_view bytes) {
  Decoder d;
  d.feed(bytes);
  std::vector<Input> out;
  while (auto in = d.next())
    out.push_back(*in);
  return out;
}

TEST(GdbRsp, FramesWithTheModulo256Checksum) {
  // "Overview": the checksum of "OK" is 0x4f + 0x4b = 0x9a.
  EXPECT_EQ(frame("OK"), "$OK#9a");
  EXPECT_EQ(frame(""), "$#00");
  EXPECT_EQ(checksum("qSupported"), 0x37);
}

TEST(GdbRsp, DecodesPacketsAcksAndInterruptsSplitAnywhere) {
  const std::string stream = "+$qSupported:multiprocess+#c6-\x03$g#67";
  // Byte by byte gives the same as all at once.
  Decoder d;
  for (char c : stream)
    d.feed(std::string_view(&c, 1));
  std::vector<Input> got;
  while (auto in = d.next())
    got.push_back(*in);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].kind, Input::Kind::ack);
  EXPECT_EQ(got[1].kind, Input::Kind::packet);
  EXPECT_EQ(got[1].payload, "qSupported:multiprocess+");
  EXPECT_EQ(got[2].kind, Input::Kind::nack);
  EXPECT_EQ(got[3].kind, Input::Kind::interrupt);
  EXPECT_EQ(got[4].kind, Input::Kind::packet);
  EXPECT_EQ(got[4].payload, "g");
}

TEST(GdbRsp, ABadChecksumIsReportedNotDelivered) {
  auto got = decode("$g#00$m0,4#fd");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, Input::Kind::bad_checksum);
  EXPECT_EQ(got[1].kind, Input::Kind::packet);
  EXPECT_EQ(got[1].payload, "m0,4");
  // Upper-case checksum digits are accepted too.
  got = decode("$OK#9A");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, Input::Kind::packet);
}

TEST(GdbRsp, AnInterruptInsideAPacketIsData) {
  // 0x03 only means Ctrl-C between packets; inside one it is a payload byte.
  const std::string payload = std::string("X0,1:") + '\x03';
  auto got = decode(frame(payload));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, Input::Kind::packet);
  EXPECT_EQ(got[0].payload, payload);
}

TEST(GdbRsp, OversizedPacketIsDropped) {
  Decoder d(8);
  d.feed(frame("0123456789"));
  auto in = d.next();
  ASSERT_TRUE(in);
  EXPECT_EQ(in->kind, Input::Kind::bad_checksum);
}

TEST(GdbRsp, EscapesTheFourSpecialBytesAndBack) {
  const std::vector<std::uint8_t> data = {'$', '#', '}', '*', 0x00, 0x7d ^ 0x20, 0xff};
  const std::string escaped = escape_binary(data);
  EXPECT_EQ(escaped, std::string("}\x04}\x03}]}\x0a") + std::string(1, '\0') + "]\xff");
  EXPECT_EQ(unescape_binary(escaped), data);
  // Escaped binary survives framing and decoding (the '*' is not taken as a run).
  auto got = decode(frame("X8000000,7:" + escaped));
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].kind, Input::Kind::packet);
  EXPECT_EQ(unescape_binary(got[0].payload.substr(11)), data);
}

TEST(GdbRsp, RunLengthsAreExpanded) {
  // "Overview": "0* " is '0' repeated 32 - 29 = 3 more times.
  EXPECT_EQ(expand_run_lengths("0* "), "0000");
  EXPECT_EQ(expand_run_lengths("ab*\"c"), "abbbbbbc");  // '"' is 34: 5 more
  auto got = decode(frame("m0* "));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "m0000");
}

TEST(GdbRsp, HexHelpers) {
  EXPECT_EQ(to_hex(std::string_view("OK\n")), "4f4b0a");
  EXPECT_EQ(from_hex("4f4B0a"), (std::vector<std::uint8_t>{0x4f, 0x4b, 0x0a}));
  EXPECT_FALSE(from_hex("4f4"));
  EXPECT_FALSE(from_hex("zz"));
  EXPECT_EQ(parse_number("8000000"), 0x8000000u);
  EXPECT_EQ(parse_number("FFFFFFFF"), 0xFFFFFFFFu);
  EXPECT_FALSE(parse_number(""));
  EXPECT_FALSE(parse_number("100000000"));
  EXPECT_FALSE(parse_number("12x"));
  EXPECT_EQ(le32_hex(0x08000131), "31010008");
  EXPECT_EQ(parse_le32_hex("31010008"), 0x08000131u);
  EXPECT_FALSE(parse_le32_hex("310100"));
  EXPECT_EQ(split("Z0,8000130,2", ',').size(), 3u);
  EXPECT_EQ(split("a", ',').size(), 1u);
}

}  // namespace
}  // namespace probefarm::protocol::rsp
