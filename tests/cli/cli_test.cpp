// `probefarm` behaviour beyond the happy path: skipping unchanged sectors (by the
// simulator's counters), rejecting bad input before the chip is touched, exit codes, an
// unplug in the middle of programming, and --simulate.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "cli_test_util.hpp"

namespace probefarm::cli::test {
namespace {

constexpr const char* kF407 = "stm32f407vg";

std::uint64_t writes_of(const nlohmann::json& stats) {
  return stats["bytes_programmed"].get<std::uint64_t>() +
         stats["pages_erased"].get<std::uint64_t>() + stats["sectors_erased"].get<std::uint64_t>() +
         stats["mass_erases"].get<std::uint64_t>();
}

TEST(Cli, FlashingAnUnchangedImageErasesAndProgramsNothing) {
  for (const std::string board : {"stm32f407vg:cmsis-dap-v2", "stm32f103c8:stlink-v2"}) {
    SCOPED_TRACE(board);
    SimProcess sim({board});
    const std::string chip = board.substr(0, board.find(':'));
    auto first = probefarm({"--json", "flash", firmware(chip, "elf")});
    ASSERT_EQ(first.status, 0) << said(first);
    const auto before = sim.stats(sim.serials()[0]);
    ASSERT_GT(before["bytes_programmed"].get<std::uint64_t>(), 0u);

    auto again = probefarm({"--json", "flash", firmware(chip, "hex")});
    ASSERT_EQ(again.status, 0) << said(again);
    const auto after = sim.stats(sim.serials()[0]);
    EXPECT_EQ(writes_of(after), writes_of(before)) << "the simulator saw flash writes or erases";
    auto j = json_of(again);
    EXPECT_EQ(j["bytes_programmed"], 0);
    EXPECT_EQ(j["sectors_erased"], 0);
    EXPECT_GT(j["sectors_skipped"].get<unsigned>(), 0u);
    EXPECT_EQ(j["verified"], true);
  }
}

TEST(Cli, AMalformedImageIsRejectedBeforeAnyUsbTraffic) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2"});
  const std::string bad = sim.dir() + "/bad.hex";
  {
    std::ofstream f(bad);
    f << ":10000000000102030405060708090A0B0C0D0E0F00\n";  // wrong checksum, no EOF record
  }
  const auto before = sim.stats(sim.serials()[0])["usb_transfers"];
  auto r = probefarm({"--json", "flash", bad});
  EXPECT_EQ(r.status, 3) << said(r);
  auto j = json_of(r);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["category"], "image");
  EXPECT_NE(j["error"]["message"].get<std::string>().find(":1: checksum"), std::string::npos)
      << r.out;
  EXPECT_EQ(sim.stats(sim.serials()[0])["usb_transfers"], before);
}

TEST(Cli, AnImageLargerThanTheFlashIsRejectedBeforeProgramming) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2"});
  const std::string big = sim.dir() + "/big.bin";
  {
    std::ofstream f(big, std::ios::binary);
    std::vector<char> data(128 * 1024, 0x5A);  // the F103C8 has 64 KiB
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  auto r = probefarm({"flash", big, "--address", "0x08000000"});
  EXPECT_EQ(r.status, 3) << said(r);
  EXPECT_NE(r.err.find("larger than"), std::string::npos) << r.err;
  EXPECT_EQ(sim.stats(sim.serials()[0])["bytes_programmed"], 0);
  EXPECT_EQ(sim.stats(sim.serials()[0])["pages_erased"], 0);
}

TEST(Cli, ExitCodesForUsageAndProbeSelection) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2", "stm32f103c8:stlink-v2"});
  auto usage = probefarm({"flash"});
  EXPECT_EQ(usage.status, 2) << said(usage);
  auto unknown_option = probefarm({"info", "--bogus"});
  EXPECT_EQ(unknown_option.status, 2) << said(unknown_option);
  EXPECT_NE(unknown_option.err.find("--bogus"), std::string::npos);

  // Two probes attached: the serial is required.
  auto ambiguous = probefarm({"info"});
  EXPECT_EQ(ambiguous.status, 2) << said(ambiguous);
  auto missing = probefarm({"--probe", "NOSUCHPROBE", "info"});
  EXPECT_EQ(missing.status, 4) << said(missing);
  EXPECT_NE(missing.err.find("NOSUCHPROBE"), std::string::npos);

  // A unique prefix selects.
  auto by_prefix = probefarm({"--json", "--probe", "PFSIM01", "info"});
  ASSERT_EQ(by_prefix.status, 0) << said(by_prefix);
  EXPECT_EQ(json_of(by_prefix)["probe"]["serial"], sim.serials()[0]);
}

TEST(Cli, ListShowsEveryProbeWithItsFirmware) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2", "stm32f103c8:stlink-v2", "stm32f746ng:stlink-v3"});
  auto r = probefarm({"--json", "list"});
  ASSERT_EQ(r.status, 0) << said(r);
  auto probes = json_of(r)["probes"];
  ASSERT_EQ(probes.size(), 3u);
  for (const auto& p : probes) {
    EXPECT_FALSE(p["firmware"].get<std::string>().empty()) << p.dump();
    EXPECT_NE(std::find(sim.serials().begin(), sim.serials().end(), p["serial"]),
              sim.serials().end());
  }
}

// 768 KiB of programming takes long enough (about a second of wall time on the simulator)
// to be interrupted: the unplug comes once the simulator has counted programmed bytes.
TEST(Cli, UnplugDuringProgrammingFailsClearlyAndARetryAfterReplugSucceeds) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2"});
  const std::string serial = sim.serials()[0];
  const std::string image = sim.dir() + "/random.bin";
  {
    std::mt19937 rng(7);
    std::vector<char> data(768 * 1024);
    for (auto& b : data)
      b = static_cast<char>(rng());
    std::ofstream f(image, std::ios::binary);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  const std::string out_path = sim.dir() + "/flash.out", err_path = sim.dir() + "/flash.err";
  int out_fd = open(out_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  int err_fd = open(err_path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  pid_t pid = probefarm::test::spawn_child(
      {PROBEFARM_CLI_EXE, "--json", "flash", image, "--address", "0x08000000"}, out_fd, err_fd);
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool programming = false;
  while (!programming && std::chrono::steady_clock::now() < deadline) {
    programming = sim.stats(serial)["bytes_programmed"].get<std::uint64_t>() > 0;
    if (!programming) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(programming) << "programming never started";
  ASSERT_EQ(sim.ctl({"unplug", serial}), 0);
  const int status = probefarm::test::wait_child(pid);
  close(out_fd);
  close(err_fd);
  const auto out = read_file(out_path);
  const std::string text(out.begin(), out.end());
  EXPECT_EQ(status, 5) << text;
  auto j = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << text;
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["category"], "probe_io");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("unplugged"), std::string::npos) << text;
  EXPECT_LT(sim.stats(serial)["bytes_programmed"].get<std::uint64_t>(), 768u * 1024);

  ASSERT_EQ(sim.ctl({"replug", serial}), 0);
  auto retry = probefarm({"--json", "flash", image, "--address", "0x08000000"});
  ASSERT_EQ(retry.status, 0) << said(retry);
  EXPECT_EQ(json_of(retry)["verified"], true);
  auto verify = probefarm({"verify", image, "--address", "0x08000000", "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

TEST(Cli, SimulateRunsTheCommandOnSimulatedBoards) {
  char tmpl[] = "/tmp/probefarm_state.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  setenv("XDG_STATE_HOME", tmpl, 1);
  unsetenv("PROBEFARM_SIM_SOCKET");
  auto r = probefarm({"--simulate", "stm32f407vg:cmsis-dap-v2", "--json", "info"});
  ASSERT_EQ(r.status, 0) << said(r);
  EXPECT_EQ(json_of(r)["chip"]["dev_id"], 0x413);
  auto bad = probefarm({"--simulate", "stm32f999:cmsis-dap-v2", "info"});
  EXPECT_EQ(bad.status, 2) << said(bad);
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace probefarm::cli::test
