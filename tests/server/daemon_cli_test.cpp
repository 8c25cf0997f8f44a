// `probefarm --server URL --token T …`: the CLI's remote mode against a running probefarmd,
// with the exit codes a CI step relies on.
#include <gtest/gtest.h>

#include "daemon_util.hpp"

namespace probefarm::server::test {
namespace {

using probefarm::test::run_capture;

TEST(DaemonCli, RemoteFlashVerifyAndListingsWithCiExitCodes) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2"}, {"--time-scale", "0"});
  const std::string serial = sim.serials()[0];
  Daemon daemon(temp_dir(sim, "data"));
  auto http = daemon.client(daemon.admin_token());
  ASSERT_TRUE(eventually([&] {
    auto p = http.get("/api/v1/probes").json()["probes"];
    return p.size() == 1 && p[0]["target"].is_object();
  }));
  const std::vector<std::string> remote = {PROBEFARM_CLI_EXE, "--server", daemon.url(), "--token",
                                           daemon.admin_token()};
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), remote.begin(), remote.end());
    return run_capture(args);
  };
  const std::string elf = std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_stm32f103c8.elf";

  auto r = cli({"flash", "--probe", serial, elf, "--verify", "--reset"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("flashed"), std::string::npos) << r.out;

  r = cli({"--json", "verify", "--probe", serial, elf});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["job"]["state"], "succeeded");
  // --probe takes a unique prefix of the serial, as in local mode.
  r = cli({"--json", "verify", "--probe", serial.substr(0, serial.size() - 3), elf,
           "--queue-timeout", "60"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["job"]["probe"], serial);
  EXPECT_EQ(json::parse(r.out)["job"]["spec"]["queue_timeout_s"], 60);
  r = cli({"verify", "--probe", serial, elf, "--queue-timeout", "0"});
  EXPECT_EQ(r.status, 2) << r.err;

  // Another image does not match: the job fails with a verify error, exit 8.
  const std::string other = sim.dir() + "/other.bin";
  write_file(other, random_bytes(2048, 5));
  r = cli({"verify", "--probe", serial, "--address", "0x08000000", other});
  EXPECT_EQ(r.status, 8) << r.out << r.err;
  EXPECT_NE(r.err.find("failed"), std::string::npos) << r.err;

  r = cli({"read", "--probe", serial, "0x08000000", "1K", sim.dir() + "/read.bin"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(read_file(sim.dir() + "/read.bin").size(), 1024u);

  r = cli({"jobs"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("succeeded"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("failed"), std::string::npos) << r.out;
  r = cli({"audit", "--csv"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(serial), std::string::npos) << r.out;
  r = cli({"images"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("demo_stm32f103c8.elf"), std::string::npos) << r.out;
  r = cli({"list"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(serial), std::string::npos) << r.out;

  // A wrong token is a usage error naming the fix; an unknown probe is exit 4.
  r = run_capture({PROBEFARM_CLI_EXE, "--server", daemon.url(), "--token", "pf_bad", "list"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("token"), std::string::npos) << r.err;
  r = cli({"flash", "--probe", "NOSUCHPROBE", elf});
  EXPECT_EQ(r.status, 4) << r.err;
  EXPECT_NE(r.err.find(serial), std::string::npos) << "names the probes there: " << r.err;
  // No server there: a clear error, not a hang.
  r = run_capture({PROBEFARM_CLI_EXE, "--server", "http://127.0.0.1:1", "--token", "x", "list"});
  EXPECT_EQ(r.status, 5) << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:1"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace probefarm::server::test
