// probefarmd over the life of a farm: a probe unplugged in the middle of a job and plugged
// back, the daemon killed in the middle of a job and started again, a graceful SIGTERM.
#include <gtest/gtest.h>

#include "daemon_util.hpp"

namespace probefarm::server::test {
namespace {

std::string random_upload(HttpClient& http, const SimProcess& sim, std::size_t size,
                          unsigned seed) {
  const std::string path = sim.dir() + "/random-" + std::to_string(seed) + ".bin";
  write_file(path, random_bytes(size, seed));
  return upload(http, path, "name=random.bin&address=0x08000000");
}

bool programming(HttpClient& http, std::int64_t id) {
  json j = job_of(http, id);
  return j["state"] == "running" && j["progress"]["phase"] == "program" &&
         j["progress"]["done"].get<std::uint64_t>() > 0;
}

TEST(DaemonLifecycle, UnpluggedProbeFailsItsJobGoesOfflineAndComesBack) {
  SimProcess sim({"stm32f407vg:stlink-v2"}, {"--time-scale", "0"});
  const std::string serial = sim.serials()[0];
  Daemon daemon(temp_dir(sim, "data"));
  auto http = daemon.client(daemon.admin_token());
  ASSERT_TRUE(eventually([&] { return http.get("/api/v1/probes").json()["probes"].size() == 1; }));
  const std::string sha = random_upload(http, sim, 768 * 1024, 21);
  json job = submit(http, {{"probe", {{"serial", serial}}}, {"image", sha}});
  ASSERT_TRUE(eventually([&] { return programming(http, job["id"]); }))
      << job_of(http, job["id"]).dump(2);
  ASSERT_EQ(sim.ctl({"unplug", serial}), 0);

  job = wait_job(http, job["id"]);
  EXPECT_EQ(job["state"], "failed") << job.dump(2);
  EXPECT_EQ(job["error"]["category"], "probe_io") << job.dump(2);
  const std::string message = job["error"]["message"];
  EXPECT_NE(message.find("unplugged"), std::string::npos) << message;
  EXPECT_TRUE(eventually([&] { return probe_of(http, serial)["state"] == "offline"; }))
      << probe_of(http, serial).dump(2);
  // A job for an offline probe waits for it rather than failing.
  json waiting = submit(http, {{"probe", {{"serial", serial}}}, {"image", sha}});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(job_of(http, waiting["id"])["state"], "queued");
  // …but not for longer than its queue_timeout_s: then it fails, naming what it waited for.
  json expiring =
      submit(http, {{"probe", {{"serial", serial}}}, {"image", sha}, {"queue_timeout_s", 1}});
  expiring = wait_job(http, expiring["id"], std::chrono::seconds(10));
  EXPECT_EQ(expiring["state"], "failed") << expiring.dump(2);
  EXPECT_EQ(expiring["error"]["category"], "timeout") << expiring.dump(2);
  const std::string why = expiring["error"]["message"];
  EXPECT_NE(why.find("not started within 1 s"), std::string::npos) << why;
  EXPECT_NE(why.find("probe " + serial), std::string::npos) << why;
  EXPECT_NE(expiring["error"]["hint"].get<std::string>().find("queue_timeout_s"),
            std::string::npos);
  EXPECT_EQ(job_of(http, waiting["id"])["state"], "queued") << "the other job keeps waiting";

  ASSERT_EQ(sim.ctl({"replug", serial}), 0);
  EXPECT_TRUE(eventually([&] { return probe_of(http, serial)["state"] != "offline"; }));
  waiting = wait_job(http, waiting["id"]);
  EXPECT_EQ(waiting["state"], "succeeded") << waiting.dump(2);
  EXPECT_TRUE(waiting["result"]["verified"].get<bool>());
}

TEST(DaemonLifecycle, KilledDuringAJobRestartsWithTheJobInterruptedAndNothingLost) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2", "stm32f103c8:cmsis-dap-v2"}, {"--time-scale", "0"});
  const std::string f407 = sim.serials()[0], f103 = sim.serials()[1];
  const std::string data = temp_dir(sim, "data");
  std::int64_t done_id = 0, killed_id = 0, queued_id = 0;
  std::string sha;
  {
    Daemon daemon(data);
    auto http = daemon.client(daemon.admin_token());
    ASSERT_TRUE(
        eventually([&] { return http.get("/api/v1/probes").json()["probes"].size() == 2; }));
    sha = random_upload(http, sim, 1000 * 1024, 31);
    done_id = wait_job(http, submit(http, {{"operation", "erase"},
                                           {"probe", {{"serial", f103}}},
                                           {"address", 0x08000000},
                                           {"size", 1024}})["id"])["id"];
    ASSERT_EQ(job_of(http, done_id)["state"], "succeeded");
    killed_id = submit(
        http, {{"probe", {{"serial", f407}}}, {"image", sha}, {"skip_unchanged", false}})["id"];
    queued_id = submit(http, {{"operation", "erase"},
                              {"probe", {{"serial", f407}}},
                              {"address", 0x08000000},
                              {"size", 16384}})["id"];
    ASSERT_TRUE(eventually([&] { return programming(http, killed_id); }));
    EXPECT_EQ(daemon.stop(SIGKILL), 128 + SIGKILL);
  }
  Daemon daemon(data);
  auto http = daemon.client(daemon.admin_token());
  json killed = job_of(http, killed_id);
  EXPECT_EQ(killed["state"], "interrupted") << killed.dump(2);
  EXPECT_NE(killed["error"]["message"].get<std::string>().find("stopped"), std::string::npos);
  EXPECT_EQ(job_of(http, done_id)["state"], "succeeded");
  // The job queued behind it was accepted before the crash: it runs now.
  json queued = wait_job(http, queued_id);
  EXPECT_EQ(queued["state"], "succeeded") << queued.dump(2);
  // Every job has its audit row, the interrupted one included.
  json rows = http.get("/api/v1/audit?limit=1000").json()["rows"];
  std::set<std::int64_t> audited;
  for (const auto& r : rows)
    audited.insert(r["job_id"].get<std::int64_t>());
  EXPECT_TRUE(audited.count(done_id));
  EXPECT_TRUE(audited.count(killed_id));
  EXPECT_TRUE(audited.count(queued_id));
  json interrupted = http.get("/api/v1/audit?result=interrupted").json()["rows"];
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0]["job_id"], killed_id);
  EXPECT_EQ(interrupted[0]["image_sha256"], sha);
  // The image store kept the upload too.
  EXPECT_EQ(http.get("/api/v1/images/" + sha).status, 200u);
}

TEST(DaemonLifecycle, SigtermStopsGracefully) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2"}, {"--time-scale", "0"});
  Daemon daemon(temp_dir(sim, "data"));
  auto http = daemon.client(daemon.admin_token());
  EXPECT_EQ(http.get("/api/v1/status").status, 200u);
  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  EXPECT_NE(daemon.log().find("probefarmd.stopped"), std::string::npos) << daemon.log();
}

}  // namespace
}  // namespace probefarm::server::test
