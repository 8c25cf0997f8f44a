#include <gtest/gtest.h>

#include <cstdio>

#include "flash/image.hpp"
#include "image_test_util.hpp"

namespace probefarm::flash {
namespace {

using testing::bytes_of;
using testing::expect_error;

// A well-formed record of type S<type>: the address takes 2, 3 or 4 bytes by type.
std::string record(int type, std::uint32_t address, std::vector<std::uint8_t> data) {
  static constexpr int kAddressBytes[10] = {2, 2, 3, 4, 0, 2, 3, 4, 3, 2};
  std::vector<std::uint8_t> r = {static_cast<std::uint8_t>(kAddressBytes[type] + data.size() + 1)};
  for (int i = kAddressBytes[type] - 1; i >= 0; --i) {
    r.push_back(static_cast<std::uint8_t>(address >> (8 * i)));
  }
  r.insert(r.end(), data.begin(), data.end());
  std::uint8_t sum = 0;
  for (std::uint8_t b : r)
    sum = static_cast<std::uint8_t>(sum + b);
  r.push_back(static_cast<std::uint8_t>(~sum));
  std::string out = "S" + std::to_string(type);
  char buf[3];
  for (std::uint8_t b : r) {
    std::snprintf(buf, sizeof buf, "%02X", b);
    out += buf;
  }
  return out + "\n";
}

Image load(const std::string& text) {
  return load_image(bytes_of(text), "fw.srec", ImageFormat::srec);
}

TEST(ImageSrec, LoadsAllAddressWidthsAndEntry) {
  const Image image =
      load(record(0, 0, {'h', 'i'}) + record(1, 0x1000, {1, 2}) + record(2, 0x123456, {3}) +
           record(3, 0x08000000, {4, 5, 6}) + record(5, 3, {}) + record(7, 0x08000045, {}));
  EXPECT_EQ(image.format, ImageFormat::srec);
  ASSERT_EQ(image.segments.size(), 3u);
  EXPECT_EQ(image.segments[0].address, 0x1000u);
  EXPECT_EQ(image.segments[1].address, 0x123456u);
  EXPECT_EQ(image.segments[2].address, 0x08000000u);
  EXPECT_EQ(image.segments[2].data, (std::vector<std::uint8_t>{4, 5, 6}));
  EXPECT_EQ(image.entry, 0x08000045u);
}

TEST(ImageSrec, KnownGoodLiteralRecords) {
  // Checksums by hand: S1 0x05+0xaa+0xbb = 0x16a, ~0x6a = 0x95.
  const Image image = load("S00600004844521B\r\nS1050000AABB95\r\nS9030000FC\r\n\r\n");
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].address, 0u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{0xaa, 0xbb}));
  EXPECT_EQ(image.entry, 0u);
}

TEST(ImageSrec, BadChecksumNamesTheLine) {
  expect_error([] { load(record(0, 0, {}) + "S1050000AABB94\n" + record(9, 0, {})); },
               ErrorCategory::image, {"fw.srec:2:", "checksum 0x94", "need 0x95"});
}

TEST(ImageSrec, BadHexDigitNamesLineAndColumn) {
  expect_error([] { load("S1050000AXBB94\nS9030000FC\n"); }, ErrorCategory::image,
               {"fw.srec:1:", "'X'", "column 10"});
}

TEST(ImageSrec, TruncatedRecordNamesTheLine) {
  expect_error([] { load(record(3, 0x08000000, {1}) + "S1090000AABB94\nS9030000FC\n"); },
               ErrorCategory::image, {"fw.srec:2:", "truncated", "count says 9"});
}

TEST(ImageSrec, ByteCountTooSmallForTheAddress) {
  expect_error([] { load("S30200FD\nS9030000FC\n"); }, ErrorCategory::image,
               {"fw.srec:1:", "too small for an S3 record"});
}

TEST(ImageSrec, ReservedS4IsRejected) {
  expect_error([] { load(record(1, 0, {1}) + "S4050000AABB94\n" + record(9, 0, {})); },
               ErrorCategory::image, {"fw.srec:2:", "S4 is reserved"});
}

TEST(ImageSrec, MissingTypeDigit) {
  expect_error([] { load("SX050000AABB94\n"); }, ErrorCategory::image,
               {"fw.srec:1:", "record type 0 to 9"});
}

TEST(ImageSrec, CountRecordMismatchNamesTheLine) {
  expect_error(
      [] { load(record(1, 0, {1}) + record(1, 1, {2}) + record(5, 3, {}) + record(9, 0, {})); },
      ErrorCategory::image, {"fw.srec:3:", "says 3 data records", "has 2"});
}

TEST(ImageSrec, S6CountIsChecked) {
  EXPECT_NO_THROW(load(record(1, 0, {1}) + record(6, 1, {}) + record(9, 0, {})));
  expect_error([] { load(record(1, 0, {1}) + record(6, 0x10000, {}) + record(9, 0, {})); },
               ErrorCategory::image, {"fw.srec:2:", "says 65536"});
}

TEST(ImageSrec, MissingTerminationRecord) {
  expect_error(
      [] {
        load(record(0, 0, {}) + record(3, 0x08000000, {1, 2}));
      },
      ErrorCategory::image, {"fw.srec:2:", "without a termination record"});
}

TEST(ImageSrec, DataAfterTermination) {
  expect_error([] { load(record(1, 0, {1}) + record(9, 0, {}) + record(1, 1, {2})); },
               ErrorCategory::image, {"fw.srec:3:", "after the termination record"});
}

TEST(ImageSrec, AddressPast4GiBNamesTheLine) {
  expect_error(
      [] {
        load(record(3, 0xfffffffe, {1, 2, 3}) + record(7, 0, {}));
      },
      ErrorCategory::image, {"fw.srec:1:", "0xfffffffe", "4 GiB"});
}

TEST(ImageSrec, RecordNotStartingWithS) {
  expect_error([] { load("T1050000AABB94\n"); }, ErrorCategory::image,
               {"fw.srec:1:", "start with 'S'"});
}

}  // namespace
}  // namespace probefarm::flash
