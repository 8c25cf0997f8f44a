// The "Faults" table of issue 5, through the `probefarm` CLI against probefarm-sim: each
// fault ends in an error that names it (never in a reported success), within bounded time,
// and once the fault is cleared the same command succeeds and the flash is verified.
// Faults are injected with `probefarm-sim ctl`; mid-operation ones once the simulator's
// counters show the phase (erase: sectors erased, program: bytes programmed, verify: all
// bytes programmed).
#include <algorithm>
#include <cctype>

#include "fault_util.hpp"

namespace probefarm::cli::test {
namespace {

std::string chip_of(const std::string& board) {
  return board.substr(0, board.find(':'));
}

// --- USB transfer faults: every probe kind --------------------------------------------------

struct UsbFault {
  const char* kind;   // fault SERIAL <kind> N
  const char* names;  // what the error message must say
};

class UsbFaultTest : public ::testing::TestWithParam<std::string> {};

// One faulty transfer is absorbed by the bounded retry (the command succeeds); a fault
// that persists ends in Error(probe_io) naming it; after `fault … 0` the same flash works.
void check_usb_fault(const std::string& board, const UsbFault& f) {
  SCOPED_TRACE(board + " " + f.kind);
  SimProcess sim({board});
  const std::string serial = sim.serials()[0];
  const std::string image = firmware(chip_of(board), "elf");

  ASSERT_EQ(sim.ctl({"fault", serial, f.kind, "1"}), 0);
  expect_flashed(probefarm({"--json", "flash", image, "--no-skip"}));

  ASSERT_EQ(sim.ctl({"fault", serial, f.kind, "1000"}), 0);
  const auto start = std::chrono::steady_clock::now();
  auto failed = probefarm({"--json", "flash", image, "--no-skip"});
  expect_failure(failed, 5, "probe_io", f.names);
  // Bounded: a few USB timeouts (1 s each), never a hang.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));

  ASSERT_EQ(sim.ctl({"fault", serial, f.kind, "0"}), 0);
  expect_flashed(probefarm({"--json", "flash", image, "--no-skip"}));
  auto verify = probefarm({"verify", image, "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

TEST_P(UsbFaultTest, DroppedTransfer) {
  check_usb_fault(GetParam(), {"drop", "timed out"});
}

TEST_P(UsbFaultTest, StalledTransfer) {
  check_usb_fault(GetParam(), {"stall", "stall"});
}

TEST_P(UsbFaultTest, GarbledTransfer) {
  check_usb_fault(GetParam(), {"garble", "garbled"});
}

INSTANTIATE_TEST_SUITE_P(FaultTest, UsbFaultTest,
                         ::testing::Values("stm32f407vg:cmsis-dap-v2", "stm32f303vc:cmsis-dap-v1",
                                           "stm32f103c8:stlink-v2", "stm32f746ng:stlink-v3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace_if(
                               n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return n;
                         });

// --- Target faults: one CMSIS-DAP and one ST-Link kind --------------------------------------

// F407 (1 MiB, 12 sectors) behind both kinds: large enough for a fault to land mid-phase.
class TargetFaultTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TargetFaultTest, WaitStormEndsInATimeoutNamingWait) {
  SimProcess sim({GetParam()});
  const std::string serial = sim.serials()[0];
  const std::string image = firmware("stm32f407vg", "elf");
  ASSERT_EQ(sim.ctl({"wait", serial, "100000000"}), 0);
  expect_failure(probefarm({"--json", "flash", image}), 9, "timeout", "WAIT");
  ASSERT_EQ(sim.ctl({"wait", serial, "0"}), 0);
  expect_flashed(probefarm({"--json", "flash", image}));
  auto verify = probefarm({"verify", image, "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

TEST_P(TargetFaultTest, UnplugDuringErase) {
  SimProcess sim({GetParam()});
  const std::string serial = sim.serials()[0];
  // Program something first, so that the erase has work in every sector.
  const std::string image = random_image(sim, "full.bin", 1024 * 1024, 11);
  expect_flashed(probefarm({"--json", "flash", image, "--address", "0x08000000"}));
  const auto erased_before = counter(sim, serial, "sectors_erased");

  auto run = run_with_fault(
      sim, {"--json", "erase", "0x08000000", "1M"},
      [&] { return counter(sim, serial, "sectors_erased") > erased_before; },
      [&] {
        ASSERT_EQ(sim.ctl({"unplug", serial}), 0);
      });
  ASSERT_TRUE(run.injected) << "the erase ended before the unplug\n" << said(run.result);
  expect_failure(run.result, 5, "probe_io", "unplugged");
  expect_failure(run.result, 5, "probe_io", "during erase of sector");
  EXPECT_LT(counter(sim, serial, "sectors_erased") - erased_before, 12u)
      << "the unplug did not land during the erase";

  ASSERT_EQ(sim.ctl({"replug", serial}), 0);
  auto again = probefarm({"--json", "erase", "0x08000000", "1M"});
  ASSERT_EQ(again.status, 0) << said(again);
  const std::string out = sim.dir() + "/erased.bin";
  auto read = probefarm({"read", "0x08000000", "1M", out});
  ASSERT_EQ(read.status, 0) << said(read);
  const auto bytes = read_file(out);
  ASSERT_EQ(bytes.size(), 1024u * 1024);
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0xFF; }))
      << "flash not erased after the retry";
}

TEST_P(TargetFaultTest, UnplugDuringProgram) {
  SimProcess sim({GetParam()});
  const std::string serial = sim.serials()[0];
  const std::string image = random_image(sim, "image.bin", 768 * 1024, 7);
  auto run = run_with_fault(
      sim, {"--json", "flash", image, "--address", "0x08000000"},
      [&] { return counter(sim, serial, "bytes_programmed") > 0; },
      [&] {
        ASSERT_EQ(sim.ctl({"unplug", serial}), 0);
      });
  ASSERT_TRUE(run.injected) << said(run.result);
  expect_failure(run.result, 5, "probe_io", "unplugged");
  expect_failure(run.result, 5, "probe_io", "during programming at 0x08000000");
  EXPECT_LT(counter(sim, serial, "bytes_programmed"), 768u * 1024)
      << "the unplug did not land during programming";

  ASSERT_EQ(sim.ctl({"replug", serial}), 0);
  expect_flashed(probefarm({"--json", "flash", image, "--address", "0x08000000"}));
  auto verify = probefarm({"verify", image, "--address", "0x08000000", "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

// Verification follows programming; the unplug comes once every byte is programmed. The
// read-back verify of 1 MiB is the widest window; should a run still finish before the
// unplug, it is repeated with a new image (bounded).
TEST_P(TargetFaultTest, UnplugDuringVerify) {
  SimProcess sim({GetParam()});
  const std::string serial = sim.serials()[0];
  constexpr std::size_t kSize = 1024 * 1024;
  std::string image;
  FaultedRun run;
  bool landed = false;
  for (unsigned attempt = 0; attempt < 5 && !landed; ++attempt) {
    image = random_image(sim, "image" + std::to_string(attempt) + ".bin", kSize, 20 + attempt);
    const auto before = counter(sim, serial, "bytes_programmed");
    // The last byte programmed is not yet the verify: the host still collects the loader's
    // result. 50 USB transfers later it is reading back (1 MiB takes hundreds).
    std::uint64_t programmed_at = 0;
    run = run_with_fault(
        sim, {"--json", "flash", image, "--address", "0x08000000", "--readback"},
        [&] {
          const auto transfers = counter(sim, serial, "usb_transfers");
          if (programmed_at == 0 && counter(sim, serial, "bytes_programmed") >= before + kSize)
            programmed_at = transfers;
          return programmed_at != 0 && transfers >= programmed_at + 50;
        },
        [&] {
          ASSERT_EQ(sim.ctl({"unplug", serial}), 0);
        });
    // Too late: the run verified and ended before the unplug reached the probe.
    landed = run.injected && run.result.status != 0;
    if (!landed) {
      ASSERT_EQ(run.result.status, 0) << said(run.result);
      if (run.injected) {
        ASSERT_EQ(sim.ctl({"replug", serial}), 0);
      }
    }
  }
  ASSERT_TRUE(landed) << "every run verified before the unplug came";
  expect_failure(run.result, 5, "probe_io", "unplugged");
  expect_failure(run.result, 5, "probe_io", "during verify");

  ASSERT_EQ(sim.ctl({"replug", serial}), 0);
  expect_flashed(probefarm({"--json", "flash", image, "--address", "0x08000000"}));
  auto verify = probefarm({"verify", image, "--address", "0x08000000", "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

TEST_P(TargetFaultTest, PowerOffMidWrite) {
  SimProcess sim({GetParam()});
  const std::string serial = sim.serials()[0];
  const std::string image = random_image(sim, "image.bin", 768 * 1024, 9);
  auto run = run_with_fault(
      sim, {"--json", "flash", image, "--address", "0x08000000"},
      [&] { return counter(sim, serial, "bytes_programmed") > 0; },
      [&] {
        ASSERT_EQ(sim.ctl({"power", serial, "off"}), 0);
      });
  ASSERT_TRUE(run.injected) << said(run.result);
  expect_failure(run.result, 6, "target_not_responding", "power");
  expect_failure(run.result, 6, "target_not_responding", "during programming at");

  ASSERT_EQ(sim.ctl({"power", serial, "on"}), 0);
  expect_flashed(probefarm({"--json", "flash", image, "--address", "0x08000000"}));
  auto verify = probefarm({"verify", image, "--address", "0x08000000", "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

// Firmware that turns the SWD pins into GPIOs after reset (the demo with the SWD-OFF jumper
// fitted): a plain connect fails and suggests --connect-under-reset; with it, info, flash
// and verify work.
TEST_P(TargetFaultTest, SwdDisabledNeedsConnectUnderReset) {
  SimProcess sim({GetParam()});
  const std::string serial = sim.serials()[0];
  const std::string image = firmware("stm32f407vg", "elf");
  expect_flashed(probefarm({"--json", "flash", image}));
  ASSERT_EQ(sim.ctl({"swd-off", serial, "on"}), 0);
  ASSERT_EQ(sim.ctl({"power", serial, "cycle"}), 0);

  auto plain = probefarm({"--json", "info"});
  expect_failure(plain, 6, "target_not_responding", "");
  auto j = nlohmann::json::parse(plain.out, nullptr, false);
  EXPECT_NE(j["error"].value("hint", "").find("--connect-under-reset"), std::string::npos)
      << said(plain);
  expect_failure(probefarm({"--json", "flash", image, "--no-skip"}), 6, "target_not_responding",
                 "");

  auto info = probefarm({"--json", "--connect-under-reset", "info"});
  ASSERT_EQ(info.status, 0) << said(info);
  EXPECT_EQ(json_of(info)["chip"]["dev_id"], 0x413);
  expect_flashed(probefarm({"--json", "--connect-under-reset", "flash", image, "--no-skip"}));
  auto verify = probefarm({"--connect-under-reset", "verify", image, "--readback"});
  EXPECT_EQ(verify.status, 0) << said(verify);
}

// A bus fault (an unmapped address) leaves a sticky error in the DP when the command ends;
// the next session must clear it and work, not FAULT forever until a power cycle.
TEST_P(TargetFaultTest, BusFaultDoesNotPoisonTheNextSession) {
  SimProcess sim({GetParam()});
  const std::string out = sim.dir() + "/unmapped.bin";
  expect_failure(probefarm({"--json", "read", "0x60000000", "64", out}), 6, "target_not_responding",
                 "0x60000000");
  auto info = probefarm({"--json", "info"});
  ASSERT_EQ(info.status, 0) << said(info);
  EXPECT_EQ(json_of(info)["chip"]["dev_id"], 0x413);
}

INSTANTIATE_TEST_SUITE_P(FaultTest, TargetFaultTest,
                         ::testing::Values("stm32f407vg:cmsis-dap-v2", "stm32f407vg:stlink-v3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace_if(
                               n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return n;
                         });

}  // namespace
}  // namespace probefarm::cli::test
