#include "flash/image.hpp"

#include <gtest/gtest.h>

#include <array>
#include <filesystem>

#include "image_test_util.hpp"

namespace probefarm::flash {
namespace {

using testing::bytes_of;
using testing::ElfBuilder;
using testing::expect_error;

// --- format selection ---

TEST(ImageFormatName, ByExtensionCaseInsensitive) {
  EXPECT_EQ(format_from_name("a/b/fw.elf"), ImageFormat::elf);
  EXPECT_EQ(format_from_name("fw.AXF"), ImageFormat::elf);
  EXPECT_EQ(format_from_name("fw.out"), ImageFormat::elf);
  EXPECT_EQ(format_from_name("fw.hex"), ImageFormat::ihex);
  EXPECT_EQ(format_from_name("fw.ihex"), ImageFormat::ihex);
  EXPECT_EQ(format_from_name("fw.ihx"), ImageFormat::ihex);
  for (const char* name : {"fw.srec", "fw.s19", "fw.S28", "fw.s37", "fw.mot"}) {
    EXPECT_EQ(format_from_name(name), ImageFormat::srec) << name;
  }
  EXPECT_EQ(format_from_name("fw.bin"), ImageFormat::bin);
  EXPECT_EQ(format_from_name("fw.txt"), std::nullopt);
  EXPECT_EQ(format_from_name("firmware"), std::nullopt);
  EXPECT_EQ(format_from_name("dir.elf/firmware"), std::nullopt);
  EXPECT_EQ(format_name(ImageFormat::srec), "S-record");
}

TEST(ImageDetect, ContentWinsOverExtension) {
  const std::vector<std::uint8_t> elf = ElfBuilder{}.build();
  EXPECT_EQ(detect_format(elf, "fw.bin"), ImageFormat::elf);
  EXPECT_EQ(detect_format(bytes_of("\r\n:020000040800F2\r\n"), "fw.bin"), ImageFormat::ihex);
  EXPECT_EQ(detect_format(bytes_of("S00600004844521B\n"), "fw"), ImageFormat::srec);
}

TEST(ImageDetect, BinaryOnlyByExtension) {
  // Starts with ':' and 'S' by chance, but the line is not hex records.
  EXPECT_EQ(detect_format(bytes_of(":\x01\x02zz"), "fw.bin"), ImageFormat::bin);
  EXPECT_EQ(detect_format(bytes_of("S1\xff\x00"), "fw.bin"), ImageFormat::bin);
  expect_error([] { detect_format(bytes_of("\x00\x50\x00\x20"), "fw.dat"); }, ErrorCategory::image,
               {"fw.dat", "cannot tell the image format"});
}

TEST(ImageDetect, ExtensionDecidesWhenContentIsBroken) {
  // A broken .hex is reported by the HEX parser, not as "unknown format".
  EXPECT_EQ(detect_format(bytes_of("garbage"), "fw.hex"), ImageFormat::ihex);
  expect_error([] { load_image(bytes_of("garbage\n"), "fw.hex"); }, ErrorCategory::image,
               {"fw.hex:1:", "start with ':'"});
}

// --- raw binary ---

TEST(ImageBin, NeedsAnAddress) {
  expect_error(
      [] {
        load_image(std::vector<std::uint8_t>{1, 2}, "fw.bin");
      },
      ErrorCategory::usage, {"fw.bin: a .bin image needs --address (e.g. --address 0x08000000)"});
}

TEST(ImageBin, AddressIsRejectedForFormatsWithAddresses) {
  expect_error([] { load_image(bytes_of(":00000001FF\n"), "fw.hex", {}, 0x08000000); },
               ErrorCategory::usage, {"fw.hex", "raw binaries only", "Intel HEX"});
}

TEST(ImageBin, LoadsAtTheGivenAddress) {
  const Image image = load_image(std::vector<std::uint8_t>{1, 2, 3}, "fw.bin", {}, 0x08004000);
  EXPECT_EQ(image.format, ImageFormat::bin);
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].address, 0x08004000u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_FALSE(image.entry);
}

TEST(ImageBin, EmptyAndOverflowingAreErrors) {
  expect_error([] { load_image(std::vector<std::uint8_t>{}, "fw.bin", {}, 0x08000000); },
               ErrorCategory::image, {"fw.bin", "no data"});
  expect_error([] { load_image(std::vector<std::uint8_t>(8), "fw.bin", {}, 0xfffffffc); },
               ErrorCategory::image, {"fw.bin", "8 bytes at 0xfffffffc", "4 GiB"});
}

TEST(ImageFile, MissingFileIsAUsageError) {
  expect_error([] { load_image_file("/nonexistent/probefarm/fw.hex"); }, ErrorCategory::usage,
               {"/nonexistent/probefarm/fw.hex", "cannot open"});
}

// --- assembly: order, merge, overlap ---

std::string hex_file(const std::vector<std::string>& records) {
  std::string text = ":020000040800F2\n";  // base 0x08000000
  for (const std::string& r : records)
    text += r;
  return text + ":00000001FF\n";
}

TEST(ImageAssemble, SortsMergesTouchingAndKeepsGaps) {
  const Image image = load_image(bytes_of(hex_file({
                                     testing::ihex_record(0, 0x0104, {5, 6}),
                                     testing::ihex_record(0, 0x0100, {1, 2}),
                                     testing::ihex_record(0, 0x0010, {9}),
                                     testing::ihex_record(0, 0x0102, {3, 4}),
                                 })),
                                 "x.hex");
  ASSERT_EQ(image.segments.size(), 2u);
  EXPECT_EQ(image.segments[0].address, 0x08000010u);
  EXPECT_EQ(image.segments[0].data, std::vector<std::uint8_t>{9});
  EXPECT_EQ(image.segments[1].address, 0x08000100u);
  EXPECT_EQ(image.segments[1].data, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}));
}

TEST(ImageAssemble, OverlapWithIdenticalBytesIsAccepted) {
  const Image image = load_image(bytes_of(hex_file({
                                     testing::ihex_record(0, 0x0000, {1, 2, 3, 4}),
                                     testing::ihex_record(0, 0x0002, {3, 4, 5}),
                                     testing::ihex_record(0, 0x0001, {2}),
                                 })),
                                 "x.hex");
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{1, 2, 3, 4, 5}));
}

TEST(ImageAssemble, OverlapWithDifferentBytesNamesBothLines) {
  // Line 2 writes 0x08000000..3; line 4 (sorted after line 3) disagrees at 0x08000003.
  expect_error(
      [] {
        load_image(bytes_of(hex_file({
                       testing::ihex_record(0, 0x0000, {1, 2, 3, 4}),
                       testing::ihex_record(0, 0x0010, {0}),
                       testing::ihex_record(0, 0x0002, {3, 0xee}),
                   })),
                   "x.hex");
      },
      ErrorCategory::image,
      {"x.hex: line 4 (0x08000002..0x08000003) overlaps line 2 (0x08000000..0x08000003)",
       "at 0x08000003", "0xee vs 0x04"});
}

TEST(ImageAssemble, ContainedOverlapFindsTheOriginalWriter) {
  // Line 3 lies inside line 2's range after line 4 extended the segment.
  expect_error(
      [] {
        load_image(bytes_of(hex_file({
                       testing::ihex_record(0, 0x0000, {1, 2, 3, 4}),
                       testing::ihex_record(0, 0x0004, {5, 6}),
                       testing::ihex_record(0, 0x0005, {7}),
                   })),
                   "x.hex");
      },
      ErrorCategory::image, {"line 4 (0x08000005..0x08000005) overlaps line 3", "0x07 vs 0x06"});
}

// --- fit ---

constexpr std::array<MemoryRange, 2> kF103 = {
    MemoryRange{0x08000000, 64 * 1024, "flash"},
    MemoryRange{0x20000000, 20 * 1024, "sram"},
};

Image image_at(std::uint32_t address, std::size_t size) {
  return load_image(std::vector<std::uint8_t>(size, 0x5a), "fw.bin", {}, address);
}

TEST(ImageFit, FitsFlashAndRam) {
  EXPECT_NO_THROW(check_fits(image_at(0x08000000, 64 * 1024), kF103, 64 * 1024));
  EXPECT_NO_THROW(check_fits(image_at(0x20004000, 0x1000), kF103, 64 * 1024));
}

TEST(ImageFit, LargerThanFlash) {
  expect_error([] { check_fits(image_at(0x08000000, 64 * 1024 + 1), kF103, 64 * 1024); },
               ErrorCategory::image,
               {"fw.bin: image of 65537 bytes is larger than the 65536-byte flash"});
}

TEST(ImageFit, NamesTheFirstByteOutside) {
  expect_error([] { check_fits(image_at(0x0800fff0, 0x20), kF103, 64 * 1024); },
               ErrorCategory::image,
               {"byte at 0x08010000", "segment 0, 0x0800fff0..0x0801000f",
                "flash 0x08000000..0x0800ffff", "sram 0x20000000..0x20004fff"});
  expect_error([] { check_fits(image_at(0x00000000, 4), kF103, 64 * 1024); }, ErrorCategory::image,
               {"byte at 0x00000000"});
}

TEST(ImageFit, WalksAcrossTouchingRanges) {
  const std::array<MemoryRange, 2> banks = {MemoryRange{0x08000000, 0x1000, "bank1"},
                                            MemoryRange{0x08001000, 0x1000, "bank2"}};
  EXPECT_NO_THROW(check_fits(image_at(0x08000800, 0x1000), banks, 0x2000));
  expect_error([&] { check_fits(image_at(0x08001800, 0x1000), banks, 0x2000); },
               ErrorCategory::image, {"byte at 0x08002000"});
}

// --- the demo firmware in every format ---

std::filesystem::path firmware(const std::string& file) {
  return std::filesystem::path(PROBEFARM_FIRMWARE_DIR) / file;
}

class DemoImage : public ::testing::TestWithParam<const char*> {};

TEST_P(DemoImage, AllFormatsLoadTheSameBytes) {
  const std::string chip = GetParam();
  const Image elf = load_image_file(firmware("demo_" + chip + ".elf"));
  const Image hex = load_image_file(firmware("demo_" + chip + ".hex"));
  const Image bin = load_image_file(firmware("demo_" + chip + ".bin"), {}, 0x08000000);
  EXPECT_EQ(elf.format, ImageFormat::elf);
  EXPECT_EQ(hex.format, ImageFormat::ihex);
  ASSERT_FALSE(elf.segments.empty());
  EXPECT_EQ(elf.segments[0].address, 0x08000000u);
  EXPECT_GT(elf.segments[0].data.size(), 1024u);
  // The vector table's reset vector is the ELF entry point.
  const auto& v = elf.segments[0].data;
  EXPECT_EQ(elf.entry, std::uint32_t{v[4]} | v[5] << 8 | v[6] << 16 | std::uint32_t{v[7]} << 24);
  EXPECT_EQ(hex.entry, elf.entry);

  std::vector<const Image*> others = {&hex, &bin};
#ifdef PROBEFARM_HAVE_SREC_DEMOS
  const Image srec =
      load_image_file(std::filesystem::path(PROBEFARM_FLASH_TEST_DIR) / ("demo_" + chip + ".srec"));
  EXPECT_EQ(srec.format, ImageFormat::srec);
  EXPECT_EQ(srec.entry, elf.entry);
  others.push_back(&srec);
#endif
  for (const Image* other : others) {
    ASSERT_EQ(other->segments.size(), elf.segments.size()) << other->name;
    for (std::size_t i = 0; i < elf.segments.size(); ++i) {
      EXPECT_EQ(other->segments[i].address, elf.segments[i].address) << other->name;
      EXPECT_TRUE(other->segments[i].data == elf.segments[i].data) << other->name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Chips, DemoImage,
                         ::testing::Values("stm32f103c8", "stm32f303vc", "stm32f407vg",
                                           "stm32f746ng"));

}  // namespace
}  // namespace probefarm::flash
