#include <gtest/gtest.h>

#include "flash/image.hpp"
#include "image_test_util.hpp"

namespace probefarm::flash {
namespace {

using testing::ElfBuilder;
using testing::ElfSegment;
using testing::expect_error;

Image load(const std::vector<std::uint8_t>& bytes) {
  return load_image(bytes, "fw.elf", ImageFormat::elf);
}

ElfBuilder typical() {
  ElfBuilder elf;
  // .text in flash; .data runs in RAM (vaddr) but is stored right after .text (paddr); its
  // memsz includes .bss, which must not be programmed.
  elf.segments.push_back({1, 0x08000000, 0x08000000, {1, 2, 3, 4}, 0});
  elf.segments.push_back({1, 0x20000000, 0x08000004, {5, 6}, 0x100});
  elf.segments.push_back({1, 0x20000100, 0x20000100, {}, 0x40});   // .bss only
  elf.segments.push_back({0x70000001, 0, 0x08000100, {9, 9}, 0});  // PT_ARM_EXIDX-like, not LOAD
  return elf;
}

TEST(ImageElf, PlacesLoadSegmentsByPhysicalAddressWithoutBss) {
  const Image image = load(typical().build());
  EXPECT_EQ(image.format, ImageFormat::elf);
  EXPECT_EQ(image.entry, 0x08000045u);
  // .text and .data's load image touch, so they are one segment; .bss and the non-LOAD
  // header contribute nothing.
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].address, 0x08000000u);
  EXPECT_EQ(image.segments[0].data, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}));
}

TEST(ImageElf, RejectsNonElf) {
  expect_error(
      [] {
        load({'M', 'Z', 0, 0, 0, 0});
      },
      ErrorCategory::image, {"fw.elf:", "not an ELF file"});
}

TEST(ImageElf, RejectsTruncatedHeader) {
  std::vector<std::uint8_t> bytes = typical().build();
  bytes.resize(40);
  expect_error([&] { load(bytes); }, ErrorCategory::image,
               {"fw.elf:", "truncated ELF header", "40 bytes"});
}

TEST(ImageElf, Rejects64Bit) {
  ElfBuilder elf = typical();
  elf.elf_class = 2;
  expect_error([&] { load(elf.build()); }, ErrorCategory::image, {"64-bit"});
}

TEST(ImageElf, RejectsBigEndian) {
  ElfBuilder elf = typical();
  elf.data_encoding = 2;
  expect_error([&] { load(elf.build()); }, ErrorCategory::image, {"big-endian"});
}

TEST(ImageElf, RejectsOtherMachines) {
  ElfBuilder elf = typical();
  elf.machine = 62;  // EM_X86_64
  expect_error([&] { load(elf.build()); }, ErrorCategory::image,
               {"e_machine is 62", "not EM_ARM (40)"});
}

TEST(ImageElf, RejectsTruncatedProgramHeaderTable) {
  std::vector<std::uint8_t> bytes = typical().build();
  bytes.resize(52 + 32 + 10);  // the second header is cut
  expect_error([&] { load(bytes); }, ErrorCategory::image,
               {"program header table", "4 entries", "94-byte file"});
}

TEST(ImageElf, RejectsSegmentRunningPastTheEnd) {
  std::vector<std::uint8_t> bytes = typical().build();
  bytes.resize(bytes.size() - 3);  // cuts into segment 1's data (segment 3's 2 bytes + 1)
  expect_error([&] { load(bytes); }, ErrorCategory::image,
               {"program header 1", "PT_LOAD at 0x08000004", "runs past the end of the file"});
}

TEST(ImageElf, RejectsNoLoadableData) {
  ElfBuilder elf;
  elf.segments.push_back({1, 0x20000000, 0x20000000, {}, 0x100});
  expect_error([&] { load(elf.build()); }, ErrorCategory::image, {"no loadable data"});
}

TEST(ImageElf, RejectsRelocatableObject) {
  ElfBuilder elf;
  elf.type = 1;  // ET_REL
  expect_error([&] { load(elf.build()); }, ErrorCategory::image, {"relocatable", "link it"});
}

TEST(ImageElf, RejectsSegmentPast4GiB) {
  ElfBuilder elf;
  elf.segments.push_back({1, 0, 0xfffffffe, {1, 2, 3}, 0});
  expect_error([&] { load(elf.build()); }, ErrorCategory::image, {"program header 0", "4 GiB"});
}

TEST(ImageElf, ConflictingSegmentsNameBothProgramHeaders) {
  ElfBuilder elf;
  elf.segments.push_back({1, 0, 0x08000000, {1, 2, 3, 4}, 0});
  elf.segments.push_back({1, 0, 0x08000002, {3, 7}, 0});
  expect_error(
      [&] { load(elf.build()); }, ErrorCategory::image,
      {"program header 1 (0x08000002..0x08000003)",
       "overlaps program header 0 (0x08000000..0x08000003)", "at 0x08000003", "0x07 vs 0x04"});
}

}  // namespace
}  // namespace probefarm::flash
