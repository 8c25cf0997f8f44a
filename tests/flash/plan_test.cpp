// The planner (flash/plan.hpp) without hardware: a flash modelled as bytes, its sector CRCs
// computed here as the target's loader would, and every decision checked.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "flash/chip.hpp"
#include "flash/loader.hpp"
#include "flash/plan.hpp"
#include "image_test_util.hpp"
#include "probe/error.hpp"

namespace probefarm::flash {
namespace {

using testing::expect_error;

constexpr std::uint32_t kBase = 0x08000000;

// What the target's flash holds, and the CRCs the programmer would measure on it.
struct FlashModel {
  explicit FlashModel(const ChipInfo& c) : chip(c), bytes(c.flash_size, 0xFF) {}

  void fill(std::uint32_t address, std::uint32_t size, std::uint8_t value) {
    std::fill_n(bytes.begin() + (address - kBase), size, value);
  }
  void put(const Image& image) {
    for (const auto& seg : image.segments)
      std::copy(seg.data.begin(), seg.data.end(), bytes.begin() + (seg.address - kBase));
  }
  std::uint32_t crc_of(std::uint32_t address, std::uint32_t size, std::uint32_t crc = 0) const {
    return crc32(std::span(bytes).subspan(address - kBase, size), crc);
  }
  // Whole-sector CRCs only.
  std::vector<std::uint32_t> whole() const {
    std::vector<std::uint32_t> out;
    for (const auto& s : chip.sectors)
      out.push_back(crc_of(s.address, s.size));
    return out;
  }
  // What the programmer measures: covered/uncovered CRCs in touched sectors.
  std::vector<SectorCrc> measured(const Image& image) const {
    std::vector<SectorCrc> out(chip.sectors.size());
    for (std::size_t i = 0; i < chip.sectors.size(); ++i) {
      const auto& s = chip.sectors[i];
      const auto cov = covered_ranges(image, s);
      if (cov.empty()) {
        out[i].whole = crc_of(s.address, s.size);
        continue;
      }
      std::uint32_t c = 0;
      for (const auto& r : cov)
        c = crc_of(r.address, r.size, c);
      out[i].covered = c;
      const auto unc = uncovered_ranges(image, s);
      if (unc.empty()) {
        out[i].whole = c;
      } else {
        std::uint32_t u = 0;
        for (const auto& r : unc)
          u = crc_of(r.address, r.size, u);
        out[i].uncovered = u;
      }
    }
    return out;
  }

  const ChipInfo& chip;
  std::vector<std::uint8_t> bytes;
};

Image image_at(std::uint32_t address, std::uint32_t size, std::uint8_t seed = 1) {
  Image image;
  Segment seg;
  seg.address = address;
  for (std::uint32_t i = 0; i < size; ++i)
    seg.data.push_back(static_cast<std::uint8_t>(seed + i * 7));
  image.segments.push_back(std::move(seg));
  image.name = "test.bin";
  return image;
}

std::vector<SectorAction> actions(const Plan& plan) {
  std::vector<SectorAction> out;
  for (const auto& sp : plan.sectors)
    out.push_back(sp.action);
  return out;
}

using A = SectorAction;

class F103Plan : public ::testing::Test {
 protected:
  ChipInfo chip = chip_from_ids(0x20036410, 64);  // 64 x 1 KiB pages
  FlashModel flash{chip};
  FlashOptions options;
};

TEST_F(F103Plan, BlankSectorsAreProgrammedWithoutErase) {
  const Image image = image_at(kBase, 3 * 1024 + 100);
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  EXPECT_EQ(actions(plan), (std::vector<A>{A::program, A::program, A::program, A::program}));
  EXPECT_FALSE(plan.mass_erase);
  EXPECT_EQ(plan.program_bytes, 3u * 1024 + 100);
  EXPECT_EQ(plan.sectors[3].covered, 100u);
  EXPECT_FALSE(plan.sectors[3].keep);
}

TEST_F(F103Plan, UnchangedSectorsAreSkipped) {
  const Image image = image_at(kBase, 3 * 1024 + 100);
  flash.put(image);
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  EXPECT_EQ(actions(plan), (std::vector<A>{A::skip, A::skip, A::skip, A::skip}));
  EXPECT_EQ(plan.program_bytes, 0u);
  EXPECT_FALSE(plan.mass_erase);
}

TEST_F(F103Plan, OneChangedSectorIsErasedAlone) {
  const Image image = image_at(kBase, 3 * 1024 + 100);
  flash.put(image);
  flash.fill(kBase + 1024 + 10, 1, 0x00);
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  EXPECT_EQ(actions(plan), (std::vector<A>{A::skip, A::erase_program, A::skip, A::skip}));
  // One page erase costs what a mass erase does, and the mass erase would also have to
  // reprogram the skipped pages.
  EXPECT_FALSE(plan.mass_erase);
  EXPECT_EQ(plan.program_bytes, 1024u);
}

TEST_F(F103Plan, MassEraseWhenFasterAndNothingIsLost) {
  const Image image = image_at(kBase, 6 * 1024 + 100, 1);
  flash.put(image_at(kBase, 6 * 1024 + 100, 2));  // an older firmware of the same size
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  EXPECT_TRUE(plan.mass_erase);
  ASSERT_EQ(plan.sectors.size(), 7u);
  for (const auto& sp : plan.sectors) {
    EXPECT_EQ(sp.action, A::program);
    EXPECT_FALSE(sp.keep);
  }
  EXPECT_EQ(plan.program_bytes, 6u * 1024 + 100);
}

TEST_F(F103Plan, MassEraseRefusedWhenAnUntouchedSectorHasData) {
  const Image image = image_at(kBase, 6 * 1024 + 100, 1);
  flash.put(image_at(kBase, 6 * 1024 + 100, 2));
  flash.fill(kBase + 40 * 1024, 16, 0x12);  // e.g. calibration data in page 40
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  EXPECT_FALSE(plan.mass_erase);
  EXPECT_EQ(actions(plan), std::vector<A>(7, A::erase_program));
}

TEST_F(F103Plan, MassEraseRefusedWhenKeptBytesWouldBeLost) {
  const Image image = image_at(kBase, 6 * 1024 + 100, 1);
  flash.put(image_at(kBase, 6 * 1024 + 100, 2));
  flash.fill(kBase + 6 * 1024 + 512, 16, 0x77);  // data in page 6 past the image's end
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  EXPECT_FALSE(plan.mass_erase);
  ASSERT_EQ(plan.sectors.size(), 7u);
  EXPECT_EQ(actions(plan), std::vector<A>(7, A::erase_program));
  EXPECT_TRUE(plan.sectors[6].keep);
  EXPECT_FALSE(plan.sectors[5].keep);
}

TEST_F(F103Plan, KeepReadsBackUncoveredBytes) {
  // The image covers the first half of page 2; the second half holds data.
  const Image image = image_at(kBase + 2048, 512);
  flash.fill(kBase + 2048, 1024, 0x5A);
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  ASSERT_EQ(plan.sectors.size(), 1u);
  EXPECT_EQ(plan.sectors[0].action, A::erase_program);
  EXPECT_TRUE(plan.sectors[0].keep);
  EXPECT_EQ(plan.sectors[0].covered, 512u);
  EXPECT_EQ(plan.program_bytes, 1024u) << "image bytes plus the kept half";
}

TEST_F(F103Plan, NoKeepWhenTheUncoveredBytesAreBlank) {
  const Image image = image_at(kBase + 2048, 512);
  flash.fill(kBase + 2048, 512, 0x5A);  // only the covered half differs
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  ASSERT_EQ(plan.sectors.size(), 1u);
  EXPECT_EQ(plan.sectors[0].action, A::erase_program);
  EXPECT_FALSE(plan.sectors[0].keep);
  EXPECT_EQ(plan.program_bytes, 512u);
}

TEST_F(F103Plan, WholeCrcOnlyPlaysSafeWithUncoveredBytes) {
  // Without the covered/uncovered split the planner cannot know the rest is blank.
  const Image image = image_at(kBase + 2048, 512);
  flash.fill(kBase + 2048, 512, 0x5A);
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  ASSERT_EQ(plan.sectors.size(), 1u);
  EXPECT_EQ(plan.sectors[0].action, A::erase_program);
  EXPECT_TRUE(plan.sectors[0].keep);
}

TEST_F(F103Plan, PartlyCoveredSectorSkippedWhenItsImageBytesMatch) {
  const Image image = image_at(kBase + 2048, 512);
  flash.put(image);
  flash.fill(kBase + 2048 + 512, 512, 0x33);  // other data next to the image
  Plan plan = make_plan(chip, image, flash.measured(image), options);
  ASSERT_EQ(plan.sectors.size(), 1u);
  EXPECT_EQ(plan.sectors[0].action, A::skip) << "with keep the other half survives as is";

  options.keep = false;  // an erase would blank the other half: not what is there now
  plan = make_plan(chip, image, flash.measured(image), options);
  EXPECT_EQ(plan.sectors[0].action, A::erase_program);
  EXPECT_FALSE(plan.sectors[0].keep);
}

TEST_F(F103Plan, NoSkipReprogramsUnchangedSectors) {
  const Image image = image_at(kBase, 2048);
  flash.put(image);
  options.skip_unchanged = false;
  options.erase = EraseMode::sectors;
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  EXPECT_EQ(actions(plan), (std::vector<A>{A::erase_program, A::erase_program}));
  EXPECT_EQ(plan.program_bytes, 2048u);
}

TEST_F(F103Plan, EraseAllForcesMassEraseEvenOverData) {
  const Image image = image_at(kBase, 1024);
  flash.put(image);
  flash.fill(kBase + 40 * 1024, 16, 0x12);
  options.erase = EraseMode::all;
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  EXPECT_TRUE(plan.mass_erase);
  EXPECT_EQ(actions(plan), (std::vector<A>{A::program}));
  EXPECT_EQ(plan.program_bytes, 1024u);
}

TEST_F(F103Plan, EraseSectorsNeverMassErases) {
  const Image image = image_at(kBase, 6 * 1024 + 100, 1);
  flash.put(image_at(kBase, 6 * 1024 + 100, 2));
  options.erase = EraseMode::sectors;
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  EXPECT_FALSE(plan.mass_erase);
  EXPECT_EQ(actions(plan), std::vector<A>(7, A::erase_program));
}

TEST_F(F103Plan, ImageOutsideFlashFailsBeforeAnything) {
  const Image image = image_at(kBase + 64 * 1024 - 16, 32);  // runs past the end of flash
  expect_error([&] { make_plan(chip, image, flash.whole(), options); }, ErrorCategory::image,
               {"0x08010000"});
  const Image too_big = image_at(kBase, 65 * 1024);
  expect_error([&] { make_plan(chip, too_big, std::span<const std::uint32_t>{}, options); },
               ErrorCategory::image, {"larger"});
}

TEST_F(F103Plan, CrcCountMustMatchSectors) {
  const Image image = image_at(kBase, 16);
  const std::vector<std::uint32_t> crcs(3, 0);
  expect_error([&] { make_plan(chip, image, crcs, options); }, ErrorCategory::internal,
               {"3 sector CRCs"});
}

TEST_F(F103Plan, SegmentsInRamAreNotPlanned) {
  Image image = image_at(kBase, 16);
  Segment ram;
  ram.address = 0x20000100;
  ram.data.assign(8, 0x11);
  image.segments.push_back(ram);
  const Plan plan = make_plan(chip, image, flash.whole(), options);
  EXPECT_EQ(plan.sectors.size(), 1u);
}

TEST(F407Plan, SectorEraseBeatsMassErase) {
  const ChipInfo chip = chip_from_ids(0x10076413, 1024);
  FlashModel flash(chip);
  const Image image = image_at(kBase, 40 * 1024, 1);
  flash.put(image_at(kBase, 40 * 1024, 2));
  const FlashOptions options;
  const Plan plan = make_plan(chip, image, flash.measured(image), options);
  EXPECT_FALSE(plan.mass_erase) << "three 16 KiB sectors are far quicker than tME";
  EXPECT_EQ(actions(plan), std::vector<A>(3, A::erase_program));
  EXPECT_EQ(plan.psize, 2u);
}

TEST(F407Plan, MassEraseWhenMostOfTheFlashChanges) {
  const ChipInfo chip = chip_from_ids(0x10076413, 1024);
  FlashModel flash(chip);
  const Image image = image_at(kBase, 1024 * 1024, 1);
  flash.put(image_at(kBase, 1024 * 1024, 2));
  const Plan plan = make_plan(chip, image, flash.measured(image), FlashOptions{});
  EXPECT_TRUE(plan.mass_erase);
  EXPECT_EQ(actions(plan), std::vector<A>(12, A::program));
}

TEST(F407Plan, LowSupplyPlansNarrowerWrites) {
  const ChipInfo chip = chip_from_ids(0x10076413, 1024);
  FlashModel flash(chip);
  FlashOptions options;
  options.supply_mv = 1800;
  const Plan plan = make_plan(chip, image_at(kBase, 16), flash.whole(), options);
  EXPECT_EQ(plan.psize, 0u);
}

TEST(BlankCrc, MatchesErasedBytes) {
  const std::vector<std::uint8_t> erased(10000, 0xFF);
  EXPECT_EQ(blank_crc(erased.size()), crc32(erased));
  EXPECT_EQ(blank_crc(0, 0x1234), 0x1234u);
  EXPECT_EQ(blank_crc(5000, blank_crc(5000)), crc32(erased));
}

TEST(Ranges, CoveredAndUncovered) {
  const FlashSector sector{kBase, 1024};
  Image image = image_at(kBase + 100, 50);
  Segment second;
  second.address = kBase + 900;
  second.data.assign(200, 1);  // runs into the next sector
  image.segments.push_back(second);
  const auto cov = covered_ranges(image, sector);
  ASSERT_EQ(cov.size(), 2u);
  EXPECT_EQ(cov[0].address, kBase + 100);
  EXPECT_EQ(cov[0].size, 50u);
  EXPECT_EQ(cov[1].address, kBase + 900);
  EXPECT_EQ(cov[1].size, 124u);
  const auto unc = uncovered_ranges(image, sector);
  ASSERT_EQ(unc.size(), 2u);
  EXPECT_EQ(unc[0].address, kBase);
  EXPECT_EQ(unc[0].size, 100u);
  EXPECT_EQ(unc[1].address, kBase + 150);
  EXPECT_EQ(unc[1].size, 750u);
}

}  // namespace
}  // namespace probefarm::flash
