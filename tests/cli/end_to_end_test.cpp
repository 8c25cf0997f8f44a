// Every simulated chip behind every probe kind, through the `probefarm` executable, the
// real libusb backend and the simulator's stand-in library: detect, flash each of the four
// image formats, verify, read back identical bytes, reset and see the demo firmware run.
#include <unistd.h>

#include <filesystem>

#include "cli_test_util.hpp"

namespace probefarm::cli::test {
namespace {

struct Combo {
  std::string chip, probe;
  unsigned dev_id;
  std::uint32_t flash_size;
};

// DEV_IDs: RM0008 31.6.1 (F1 medium density), RM0316 33.6.1 (F303xB/C), RM0090 38.6.1
// (F405/407), RM0385 40.6.1 (F74x/75x). Flash sizes from the part numbers' datasheets.
const Combo kChips[] = {
    {"stm32f103c8", "", 0x410, 64 * 1024},
    {"stm32f303vc", "", 0x422, 256 * 1024},
    {"stm32f407vg", "", 0x413, 1024 * 1024},
    {"stm32f746ng", "", 0x449, 1024 * 1024},
};
const char* const kProbes[] = {"cmsis-dap-v1", "cmsis-dap-v2", "stlink-v2", "stlink-v2-1",
                               "stlink-v3"};

// Test names show the combination, not the bytes of the struct.
void PrintTo(const Combo& c, std::ostream* os) {
  *os << c.chip << " behind " << c.probe;
}

std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (const auto& c : kChips)
    for (const char* p : kProbes) {
      Combo x = c;
      x.probe = p;
      out.push_back(x);
    }
  return out;
}

class EndToEnd : public ::testing::TestWithParam<Combo> {};

TEST_P(EndToEnd, DetectFlashVerifyReadBackAndRunOnEveryImageFormat) {
  const Combo& c = GetParam();
  SimProcess sim({c.chip + ":" + c.probe});
  char dir_tmpl[] = "/tmp/probefarm_e2e.XXXXXX";
  ASSERT_NE(mkdtemp(dir_tmpl), nullptr);
  const std::string dir = dir_tmpl;

  // 1. Detect.
  auto info = probefarm({"--json", "info"});
  ASSERT_EQ(info.status, 0) << said(info);
  auto j = json_of(info);
  EXPECT_EQ(j["chip"]["dev_id"], c.dev_id);
  EXPECT_EQ(j["chip"]["flash_size"], c.flash_size);
  EXPECT_EQ(j["probe"]["serial"], sim.serials()[0]);

  const auto expected = read_file(firmware(c.chip, "bin"));
  ASSERT_GT(expected.size(), 4096u);
  for (const std::string ext : {"elf", "hex", "srec", "bin"}) {
    SCOPED_TRACE("format " + ext);
    // 2. Flash (every sector reprogrammed: the earlier formats left the same bytes).
    std::vector<std::string> args = {"--json", "flash", firmware(c.chip, ext), "--no-skip"};
    if (ext == "bin") args.insert(args.end(), {"--address", "0x08000000"});
    auto flashed = probefarm(args);
    ASSERT_EQ(flashed.status, 0) << said(flashed);
    auto f = json_of(flashed);
    EXPECT_EQ(f["verified"], true);
    EXPECT_GE(f["bytes_programmed"].get<std::uint64_t>(), expected.size() * 9 / 10);

    // 3. Verify, on its own.
    args = {"verify", firmware(c.chip, ext)};
    if (ext == "bin") args.insert(args.end(), {"--address", "0x08000000"});
    auto verified = probefarm(args);
    ASSERT_EQ(verified.status, 0) << said(verified);

    // 4. Read back identical bytes.
    const std::string out = dir + "/readback_" + ext + ".bin";
    auto read = probefarm({"read", "0x08000000", std::to_string(expected.size()), out});
    ASSERT_EQ(read.status, 0) << said(read);
    EXPECT_EQ(read_file(out), expected);
  }

  // 5. Reset, and the demo firmware runs: its counter moves and its pattern is written.
  auto reset = probefarm({"reset"});
  ASSERT_EQ(reset.status, 0) << said(reset);
  auto first = probefarm({"read", "0x20002000", "0x44", dir + "/ram1.bin"});
  auto second = probefarm({"read", "0x20002000", "0x44", dir + "/ram2.bin"});
  ASSERT_EQ(first.status, 0) << said(first);
  ASSERT_EQ(second.status, 0) << said(second);
  auto ram1 = read_file(dir + "/ram1.bin");
  auto ram2 = read_file(dir + "/ram2.bin");
  ASSERT_EQ(ram2.size(), 0x44u);
  EXPECT_GT(le32(ram1, 0), 0u);
  EXPECT_GT(le32(ram2, 0), le32(ram1, 0)) << "the demo's counter did not move";
  EXPECT_EQ(le32(ram2, 4) & 0xFFFFFF00u, 0xC0FFEE00u);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllChipsAllProbes, EndToEnd, ::testing::ValuesIn(all_combos()),
                         [](const auto& info) {
                           std::string name = info.param.chip + "_" + info.param.probe;
                           for (auto& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace probefarm::cli::test
