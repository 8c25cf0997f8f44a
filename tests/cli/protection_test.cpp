// `probefarm option-bytes`, `protect` and `unlock` against probefarm-sim, and the errors
// `flash` and `info` give on a read- or write-protected chip (exit 7, cause and remedy).
#include "cli_test_util.hpp"

namespace probefarm::cli::test {
namespace {

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

nlohmann::json option_values(const std::string& probe) {
  auto r = probefarm({"--probe", probe, "--json", "option-bytes"});
  EXPECT_EQ(r.status, 0) << said(r);
  return json_of(r)["option_bytes"]["values"];
}

TEST(CliProtection, OptionBytesReadSetAndRejectUnknownKeys) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2"});
  const std::string serial = sim.serials()[0];
  auto r = probefarm({"--json", "option-bytes"});
  ASSERT_EQ(r.status, 0) << said(r);
  auto j = json_of(r);
  EXPECT_EQ(j["option_bytes"]["rdp_level"], 0);
  EXPECT_EQ(j["option_bytes"]["values"]["RDP"], 0xAA);
  EXPECT_EQ(j["option_bytes"]["values"]["BOR_LEV"], 3);
  EXPECT_EQ(j["option_bytes"]["values"]["nWRP"], 0xFFF);
  EXPECT_TRUE(j["option_bytes"]["write_protected"].empty());

  r = probefarm({"option-bytes"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_TRUE(has(r.out, "nRST_STOP")) << r.out;
  EXPECT_TRUE(has(r.out, "level 0: no read protection")) << r.out;

  r = probefarm({"option-bytes", "set", "BOR_LEV=1", "nRST_STDBY=0", "--yes"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_TRUE(has(r.out, "read back")) << r.out;
  auto v = option_values(serial);
  EXPECT_EQ(v["BOR_LEV"], 1);
  EXPECT_EQ(v["nRST_STDBY"], 0);

  // An unknown key or value: exit 2, the valid keys for this chip, nothing written.
  r = probefarm({"--json", "option-bytes", "set", "BOR_LEV=3", "IWDG_STOP=0", "--yes"});
  EXPECT_EQ(r.status, 2) << said(r);
  j = json_of(r);
  EXPECT_TRUE(has(j["error"]["hint"].get<std::string>(), "nRST_STOP")) << r.out;
  r = probefarm({"option-bytes", "set", "BOR_LEV=7", "--yes"});
  EXPECT_EQ(r.status, 2) << said(r);
  EXPECT_TRUE(has(r.err, "0|1|2|3")) << r.err;
  r = probefarm({"option-bytes", "set", "RDP=2", "--yes"});
  EXPECT_EQ(r.status, 2) << said(r);
  EXPECT_TRUE(has(r.err, "RDP=2-permanent")) << r.err;
  v = option_values(serial);
  EXPECT_EQ(v["BOR_LEV"], 1) << "a rejected set wrote something";
  EXPECT_EQ(v["RDP"], 0xAA);
}

TEST(CliProtection, WriteProtectedSectorFailsWithExit7AndProtectClearFixesIt) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2"});
  const std::string bin = sim.dir() + "/data.bin";
  {
    std::ofstream f(bin, std::ios::binary);
    for (int i = 0; i < 4096; ++i)
      f.put(static_cast<char>(i * 13));
  }
  // A range inside a sector: exit 2 naming the aligned range.
  auto r = probefarm({"protect", "--set", "0x0800C100", "0x100"});
  EXPECT_EQ(r.status, 2) << said(r);
  EXPECT_TRUE(has(r.err, "0x0800C000 16K")) << r.err;

  r = probefarm({"--json", "protect", "--set", "0x0800C000", "16K"});
  ASSERT_EQ(r.status, 0) << said(r);
  auto j = json_of(r);
  EXPECT_EQ(j["changed"], true);
  ASSERT_EQ(j["write_protected"].size(), 1u);
  EXPECT_EQ(j["write_protected"][0]["address"], 0x0800C000);

  const auto before = sim.stats(sim.serials()[0]);
  r = probefarm({"--json", "flash", bin, "--address", "0x0800C000"});
  EXPECT_EQ(r.status, 7) << said(r);
  j = json_of(r);
  EXPECT_EQ(j["error"]["category"], "protection");
  EXPECT_TRUE(has(j["error"]["message"].get<std::string>(),
                  "sector 3 at 0x0800C000 is write-protected (WRP)"))
      << r.out;
  EXPECT_TRUE(
      has(j["error"]["hint"].get<std::string>(), "probefarm protect --clear 0x0800C000 16K"))
      << r.out;
  const auto after = sim.stats(sim.serials()[0]);
  EXPECT_EQ(after["bytes_programmed"], before["bytes_programmed"]);
  EXPECT_EQ(after["sectors_erased"], before["sectors_erased"]);

  r = probefarm({"protect", "--clear"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_TRUE(has(r.out, "write-protected now: none")) << r.out;
  r = probefarm({"flash", bin, "--address", "0x0800C000"});
  EXPECT_EQ(r.status, 0) << said(r);
}

TEST(CliProtection, ReadProtectedChipAttachesRefusesFlashAndUnlocks) {
  SimProcess sim({"stm32f103c8:stlink-v2"});
  const std::string demo = firmware("stm32f103c8", "elf");
  auto r = probefarm({"flash", demo});
  ASSERT_EQ(r.status, 0) << said(r);
  r = probefarm({"unlock", "--yes"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_TRUE(has(r.out, "already level 0")) << r.out;

  r = probefarm({"option-bytes", "set", "RDP=1", "--yes"});
  ASSERT_EQ(r.status, 0) << said(r);

  // Still attaches; info shows the level.
  r = probefarm({"--json", "info"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_EQ(json_of(r)["rdp_level"], 1);
  r = probefarm({"info"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_TRUE(has(r.out, "RDP       level 1")) << r.out;

  r = probefarm({"--json", "flash", demo});
  EXPECT_EQ(r.status, 7) << said(r);
  auto j = json_of(r);
  EXPECT_EQ(j["error"]["category"], "protection");
  EXPECT_TRUE(has(j["error"]["message"].get<std::string>(), "read protection level 1")) << r.out;
  EXPECT_TRUE(has(j["error"]["hint"].get<std::string>(), "probefarm unlock --yes")) << r.out;

  // Neither a read nor a verify may pass for an answer: the chip blocks the flash.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--json", "verify", demo},
        std::vector<std::string>{"--json", "read", "0x08000000", "1K", sim.dir() + "/r.bin"}}) {
    r = probefarm(args);
    EXPECT_EQ(r.status, 7) << said(r);
    EXPECT_TRUE(has(json_of(r)["error"]["message"].get<std::string>(), "read protection level 1"))
        << r.out;
  }

  r = probefarm({"unlock"});
  EXPECT_EQ(r.status, 2) << said(r);  // --yes is required

  r = probefarm({"unlock", "--yes"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_TRUE(has(r.out, "read protection removed: level 1 -> 0; the chip was mass-erased"))
      << r.out;
  r = probefarm({"--json", "info"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_EQ(json_of(r)["rdp_level"], 0);
  r = probefarm({"flash", demo});
  EXPECT_EQ(r.status, 0) << said(r);
  r = probefarm({"verify", demo});
  EXPECT_EQ(r.status, 0) << said(r);
}

TEST(CliProtection, UnlockOfAnF407MassErasesWithinTheDeadline) {
  SimProcess sim({"stm32f407vg:stlink-v3"});
  const std::string demo = firmware("stm32f407vg", "elf");
  auto r = probefarm({"flash", demo});
  ASSERT_EQ(r.status, 0) << said(r);
  r = probefarm({"option-bytes", "set", "RDP=1", "--yes"});
  ASSERT_EQ(r.status, 0) << said(r);
  const auto erases = sim.stats(sim.serials()[0])["mass_erases"].get<int>();
  r = probefarm({"--json", "unlock", "--yes"});
  ASSERT_EQ(r.status, 0) << said(r);
  auto j = json_of(r);
  EXPECT_EQ(j["changed"], true);
  EXPECT_EQ(j["rdp_level_before"], 1);
  EXPECT_EQ(j["flash_blank"], true);
  EXPECT_EQ(sim.stats(sim.serials()[0])["mass_erases"].get<int>(), erases + 1);
  r = probefarm({"flash", demo});
  EXPECT_EQ(r.status, 0) << said(r);
}

}  // namespace
}  // namespace probefarm::cli::test
