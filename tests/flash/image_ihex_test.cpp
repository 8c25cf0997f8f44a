#include <gtest/gtest.h>

#include "flash/image.hpp"
#include "image_test_util.hpp"

namespace probefarm::flash {
namespace {

using testing::bytes_of;
using testing::expect_error;

std::string record(std::uint8_t type, std::uint16_t address, std::vector<std::uint8_t> data) {
  return testing::ihex_record(type, address, std::move(data));
}

Image load(const std::string& text) {
  return load_image(bytes_of(text), "fw.hex", ImageFormat::ihex);
}

TEST(ImageIhex, LoadsLinearAddressedDataAndEntry) {
  const Image image = load(":020000040800F2\n" + record(0, 0x0010, {1, 2, 3, 4}) +
                           ":0400000508000045AA\n:00000001FF\n");
  EXPECT_EQ(image.format, ImageFormat::ihex);
  EXPECT_EQ(image.name, "fw.hex");
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].address, 0x08000010u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(image.entry, 0x08000045u);
}

TEST(ImageIhex, AcceptsCrLfAndBlankTrailingLines) {
  const Image image =
      load(":020000040800F2\r\n" + record(0, 0, {0xaa}) + ":00000001FF\r\n\r\n  \n\n");
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].address, 0x08000000u);
  EXPECT_EQ(image.segments[0].data, std::vector<std::uint8_t>{0xaa});
}

TEST(ImageIhex, ExtendedSegmentAddressIsShiftedByFourAndWrapsInTheSegment) {
  // Base 0x1000 << 4 = 0x10000; a record at offset 0xFFFE with 4 bytes wraps to the
  // segment's start (spec: the offset is added "MOD 64K").
  const Image image = load(record(2, 0, {0x10, 0x00}) + record(0, 0xfffe, {1, 2, 3, 4}) +
                           record(3, 0, {0x12, 0x34, 0x00, 0x05}) + ":00000001FF\n");
  ASSERT_EQ(image.segments.size(), 2u);
  EXPECT_EQ(image.segments[0].address, 0x10000u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{3, 4}));
  EXPECT_EQ(image.segments[1].address, 0x1fffeu);
  EXPECT_EQ(image.segments[1].data, (std::vector<std::uint8_t>{1, 2}));
  EXPECT_EQ(image.entry, 0x12345u);  // CS:IP = 0x1234:0x0005
}

TEST(ImageIhex, LinearRecordsCrossing64KContinueUpwards) {
  const Image image = load(":020000040800F2\n" + record(0, 0xfffe, {1, 2, 3, 4}) + ":00000001FF\n");
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].address, 0x0800fffeu);
  EXPECT_EQ(image.segments[0].data.size(), 4u);
}

TEST(ImageIhex, BadChecksumNamesTheLine) {
  expect_error([] { load(":020000040800F2\n:0400000001020304F1\n:00000001FF\n"); },
               ErrorCategory::image, {"fw.hex:2:", "checksum 0xf1", "need 0xf2"});
}

TEST(ImageIhex, BadHexDigitNamesLineAndColumn) {
  expect_error([] { load(":020000040800F2\n\n:04000000010G0304F2\n:00000001FF\n"); },
               ErrorCategory::image, {"fw.hex:3:", "'G'", "column 13", "not a hex digit"});
}

TEST(ImageIhex, TruncatedRecordNamesTheLine) {
  expect_error([] { load(":020000040800F2\n:1000000001020304E2\n:00000001FF\n"); },
               ErrorCategory::image, {"fw.hex:2:", "truncated", "4 data bytes", "says 16"});
}

TEST(ImageIhex, OddDigitCountIsTruncated) {
  expect_error([] { load(":0400000001020304F\n:00000001FF\n"); }, ErrorCategory::image,
               {"fw.hex:1:", "odd number of hex digits"});
}

TEST(ImageIhex, ShortRecordIsTruncated) {
  expect_error([] { load(":0000\n:00000001FF\n"); }, ErrorCategory::image,
               {"fw.hex:1:", "truncated record"});
}

TEST(ImageIhex, UnknownRecordTypeNamesTheLine) {
  expect_error([] { load(record(0, 0, {1}) + record(6, 0, {}) + ":00000001FF\n"); },
               ErrorCategory::image, {"fw.hex:2:", "unknown record type 0x06"});
}

TEST(ImageIhex, DataAfterEndOfFileNamesTheLine) {
  expect_error([] { load(record(0, 0, {1}) + ":00000001FF\n\n" + record(0, 1, {2})); },
               ErrorCategory::image, {"fw.hex:4:", "after the end-of-file record"});
}

TEST(ImageIhex, MissingEndOfFileRecord) {
  expect_error(
      [] {
        load(":020000040800F2\n" + record(0, 0, {1, 2}));
      },
      ErrorCategory::image, {"fw.hex:2:", "without an end-of-file record"});
}

TEST(ImageIhex, EmptyFileHasNoEndOfFileRecord) {
  expect_error([] { load(""); }, ErrorCategory::image, {"fw.hex: the file is empty"});
}

TEST(ImageIhex, AddressPast4GiBNamesTheLine) {
  expect_error(
      [] {
        load(record(4, 0, {0xff, 0xff}) + record(0, 0xfffc, {1, 2, 3, 4, 5}) + ":00000001FF\n");
      },
      ErrorCategory::image, {"fw.hex:2:", "0xfffffffc", "4 GiB"});
}

TEST(ImageIhex, RecordWithoutColon) {
  expect_error([] { load("020000040800F2\n:00000001FF\n"); }, ErrorCategory::image,
               {"fw.hex:1:", "start with ':'"});
}

TEST(ImageIhex, WrongByteCountForAddressRecord) {
  expect_error([] { load(record(4, 0, {0x08}) + ":00000001FF\n"); }, ErrorCategory::image,
               {"fw.hex:1:", "byte count of 2"});
}

TEST(ImageIhex, OnlyEndOfFileIsAnEmptyImage) {
  expect_error([] { load(":00000001FF\n"); }, ErrorCategory::image, {"fw.hex", "no data"});
}

}  // namespace
}  // namespace probefarm::flash
