// probefarmd through real HTTP and WebSocket clients, on two simulated boards: jobs from
// upload to bytes in flash, the audit log, events, metrics, and every error case the API
// promises (bad image, unknown probe, 401/403, foreign Origin, 413, idempotency, cancel).
#include <gtest/gtest.h>

#include "daemon_util.hpp"

namespace probefarm::server::test {
namespace {

class DaemonApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_ = new SimProcess({"stm32f103c8:cmsis-dap-v2", "stm32f407vg:cmsis-dap-v2"},
                          {"--time-scale", "0"});
    const std::string config = sim_->dir() + "/probefarmd.json";
    // A small upload limit so that the 413 case needs no huge file.
    write_file(config, R"({"max_upload_bytes": 1048576,
                           "probes": {")" +
                           sim_->serials()[1] + R"(": {"labels": ["big"]}}})");
    daemon_ = new Daemon(temp_dir(*sim_, "data"), {"--config", config});
    // ctest runs each test in its own process: every one starts once both targets are known.
    auto http = admin();
    ASSERT_TRUE(eventually([&] {
      auto probes = http.get("/api/v1/probes").json()["probes"];
      return probes.size() == 2 && probes[0]["target"].is_object() &&
             probes[1]["target"].is_object();
    })) << http.get("/api/v1/probes").body;
  }
  static void TearDownTestSuite() {
    delete daemon_;
    delete sim_;
  }

  static std::string f103() { return sim_->serials()[0]; }
  static std::string f407() { return sim_->serials()[1]; }
  static HttpClient admin() { return daemon_->client(daemon_->admin_token()); }
  static std::string token(const std::string& name, const std::string& role) {
    auto http = admin();
    return create_token(http, name, role);
  }
  // A raw image of `size` random bytes at the start of flash, uploaded.
  static std::string random_upload(HttpClient& http, std::size_t size, unsigned seed) {
    const std::string path = sim_->dir() + "/random-" + std::to_string(seed) + ".bin";
    write_file(path, random_bytes(size, seed));
    return upload(http, path, "name=random.bin&address=0x08000000");
  }

  static SimProcess* sim_;
  static Daemon* daemon_;
};
SimProcess* DaemonApi::sim_ = nullptr;
Daemon* DaemonApi::daemon_ = nullptr;

TEST_F(DaemonApi, ListsBothProbesWithTheirDetectedTargets) {
  auto http = admin();
  EXPECT_EQ(http.get("/api/v1/probes").json()["probes"].size(), 2u);
  json p = probe_of(http, f407());
  EXPECT_EQ(p["driver"], "cmsis-dap-v2");
  EXPECT_EQ(p["target"]["chip"], "STM32F405/407/415/417");
  EXPECT_EQ(p["target"]["flash_size"], 1024 * 1024);
  EXPECT_EQ(p["target"]["rdp_level"], 0);
  EXPECT_EQ(p["target"]["unique_id"].get<std::string>().size(), 24u);
  EXPECT_EQ(p["labels"], json::array({"big"}));  // from the config file
  EXPECT_EQ(probe_of(http, f103())["target"]["chip"], "STM32F10x medium-density");
}

TEST_F(DaemonApi, FlashJobPutsTheImageInFlashAndIsAudited) {
  auto http = admin();
  const std::string sha = upload(http, demo_elf("stm32f103c8"), "name=demo.elf");
  ASSERT_EQ(sha.size(), 64u);
  json job = submit(http, {{"probe", {{"serial", f103()}}}, {"image", sha}, {"reset", true}});
  EXPECT_EQ(job["state"], "queued");
  job = wait_job(http, job["id"]);
  ASSERT_EQ(job["state"], "succeeded") << job.dump(2);
  EXPECT_TRUE(job["result"]["verified"].get<bool>());
  EXPECT_EQ(job["probe"], f103());
  EXPECT_EQ(job["target_uid"], probe_of(http, f103())["target"]["unique_id"]);
  EXPECT_TRUE(job["result"]["durations"].contains("program") ||
              job["result"]["sectors_skipped"].get<unsigned>() > 0);

  // A read job brings the bytes back through the image store: they are the ELF's.
  json info = http.get("/api/v1/images/" + sha).json();
  const std::uint32_t address = info["segments"][0]["address"];
  const std::uint32_t size = info["segments"][0]["size"];
  json read = wait_job(http, submit(http, {{"operation", "read"},
                                           {"probe", {{"serial", f103()}}},
                                           {"address", address},
                                           {"size", size}})["id"]);
  ASSERT_EQ(read["state"], "succeeded") << read.dump(2);
  const std::string out = sim_->dir() + "/readback.bin";
  auto d = http.download(
      "/api/v1/images/" + read["result"]["output_image"].get<std::string>() + "/content", out);
  ASSERT_EQ(d.status, 200u) << d.body;
  EXPECT_EQ(read_file(out).size(), size);
  // And a verify job agrees with the image.
  json verify = wait_job(http, submit(http, {{"operation", "verify"},
                                             {"probe", {{"serial", f103()}}},
                                             {"image", sha}})["id"]);
  EXPECT_EQ(verify["state"], "succeeded") << verify.dump(2);

  // One audit row per job, with who, the chip's unique ID and the image.
  json audit = http.get("/api/v1/audit?probe=" + f103() + "&limit=1000").json();
  bool found = false;
  for (const auto& row : audit["rows"])
    if (row["job_id"] == job["id"]) {
      found = true;
      EXPECT_EQ(row["who"], "admin");
      EXPECT_EQ(row["result"], "succeeded");
      EXPECT_EQ(row["image_sha256"], sha);
      EXPECT_EQ(row["target_uid"], job["target_uid"]);
      EXPECT_EQ(row["operation"], "flash");
    }
  EXPECT_TRUE(found) << audit.dump(2);
  auto csv = http.get("/api/v1/audit?format=csv&probe=" + f103());
  EXPECT_EQ(csv.status, 200u);
  EXPECT_NE(csv.header("content-type").find("text/csv"), std::string::npos);
  EXPECT_NE(csv.body.find(sha), std::string::npos);
  EXPECT_EQ(csv.body.rfind("id,job_id,at,who,", 0), 0u) << csv.body.substr(0, 200);
}

TEST_F(DaemonApi, EventsStreamTheJobFromQueuedToFinished) {
  auto http = admin();
  WsClient ws(daemon_->address(), "/api/v1/events?probes=" + f103(), daemon_->admin_token());
  auto hello = json::parse(*ws.receive(std::chrono::seconds(5)));
  EXPECT_EQ(hello["type"], "hello");
  const std::string sha = random_upload(http, 16 * 1024, 7);
  json job =
      submit(http, {{"probe", {{"serial", f103()}}}, {"image", sha}, {"skip_unchanged", false}});
  std::vector<std::string> types;
  bool finished = false;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!finished && Clock::now() < deadline) {
    auto text = ws.receive(std::chrono::seconds(1));
    if (!text) continue;
    json e = json::parse(*text);
    EXPECT_EQ(e["probe"], f103()) << "the filter lets only this probe's events through";
    if (e.value("job", json()) != job["id"]) continue;
    types.push_back(e["type"]);
    if (e["type"] == "job.finished") {
      finished = true;
      EXPECT_EQ(e["data"]["state"], "succeeded");
    }
  }
  ASSERT_TRUE(finished);
  ASSERT_GE(types.size(), 4u);
  EXPECT_EQ(types.front(), "job.queued");
  EXPECT_EQ(types[1], "job.started");
  EXPECT_NE(std::find(types.begin(), types.end(), "job.progress"), types.end());

  // Changing the filter on the open connection; events may still arrive in between.
  auto next_reply = [&] {
    for (;;) {
      auto text = ws.receive(std::chrono::seconds(5));
      if (!text) return std::string("(nothing)");
      const std::string type = json::parse(*text)["type"];
      if (type.find('.') == std::string::npos) return type;
    }
  };
  ws.send(R"({"subscribe": {"types": ["probe."]}})");
  EXPECT_EQ(next_reply(), "subscribed");
  ws.send("not json");
  EXPECT_EQ(next_reply(), "error");
}

TEST_F(DaemonApi, MalformedImageIsRefusedWithTheLine) {
  auto http = admin();
  const std::string path = sim_->dir() + "/bad.hex";
  // Line 2's checksum is wrong (0xFF instead of 0xE2).
  write_file(path,
             ":10000000000102030405060708090A0B0C0D0E0F78\n:0400100001020304FF\n:00000001FF\n");
  const auto before = http.get("/api/v1/images").json()["images"].size();
  auto r = http.upload("/api/v1/images?name=bad.hex", path);
  EXPECT_EQ(r.status, 422u) << r.body;
  EXPECT_EQ(r.json()["error"]["category"], "image");
  // file:line, as compilers write it.
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("bad.hex:2:"), std::string::npos)
      << r.body;
  EXPECT_EQ(http.get("/api/v1/images").json()["images"].size(), before) << "nothing stored";
  // A raw binary without its address.
  const std::string bin = sim_->dir() + "/x.bin";
  write_file(bin, "abcd");
  r = http.upload("/api/v1/images?name=x.bin", bin);
  EXPECT_EQ(r.status, 400u) << r.body;
}

TEST_F(DaemonApi, UnknownProbeIs404) {
  auto http = admin();
  EXPECT_EQ(http.get("/api/v1/probes/NOSUCHPROBE").status, 404u);
  const std::string sha = upload(http, demo_elf("stm32f103c8"), "name=demo.elf");
  auto r = http.post_json("/api/v1/jobs", {{"probe", {{"serial", "NOSUCHPROBE"}}}, {"image", sha}});
  EXPECT_EQ(r.status, 404u) << r.body;
  EXPECT_EQ(r.json()["error"]["category"], "probe_not_found");
  r = http.post_json("/api/v1/jobs", {{"probe", {{"chip", "stm32f746ng"}}}, {"image", sha}});
  EXPECT_EQ(r.status, 404u) << "no probe has that chip: " << r.body;
  EXPECT_EQ(http.request("POST", "/api/v1/probes/NOSUCHPROBE/halt").status, 404u);
}

TEST_F(DaemonApi, TokensAndRolesAreEnforced) {
  HttpClient anonymous(daemon_->address());
  auto r = anonymous.get("/api/v1/probes");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.json()["error"]["category"], "unauthorized");
  HttpClient wrong(daemon_->address(), "pf_0000");
  EXPECT_EQ(wrong.get("/api/v1/probes").status, 401u);

  HttpClient viewer(daemon_->address(), token("watcher", "viewer"));
  EXPECT_EQ(viewer.get("/api/v1/probes").status, 200u);
  EXPECT_EQ(viewer.get("/metrics").status, 200u);
  r = viewer.post_json("/api/v1/jobs", {{"probe", {{"serial", f103()}}}, {"operation", "erase"}});
  EXPECT_EQ(r.status, 403u) << r.body;
  EXPECT_NE(r.body.find("operator"), std::string::npos) << "names the role needed: " << r.body;
  EXPECT_EQ(viewer.get("/api/v1/tokens").status, 403u);

  HttpClient op(daemon_->address(), token("line-3", "operator"));
  EXPECT_EQ(op.get("/api/v1/tokens").status, 403u) << "tokens are for admins";
  auto http = admin();
  json tokens = http.get("/api/v1/tokens").json()["tokens"];
  EXPECT_NE(tokens.dump().find("line-3"), std::string::npos);
  EXPECT_EQ(tokens.dump().find("pf_"), std::string::npos) << "never the token itself";
  EXPECT_EQ(http.request("DELETE", "/api/v1/tokens/line-3").status, 200u);
  EXPECT_EQ(op.get("/api/v1/probes").status, 401u) << "a revoked token stops working";
  EXPECT_EQ(http.request("DELETE", "/api/v1/tokens/line-3").status, 404u);
}

TEST_F(DaemonApi, ForeignOriginAndHostAre403) {
  auto http = admin();
  auto r = http.request("GET", "/api/v1/probes", {}, {{"Origin", "http://evil.example"}});
  EXPECT_EQ(r.status, 403u) << r.body;
  r = http.request("POST", "/api/v1/jobs", "{}", {{"Origin", "http://evil.example"}});
  EXPECT_EQ(r.status, 403u) << r.body;
  r = http.request("GET", "/api/v1/probes", {}, {{"Host", "evil.example"}});
  EXPECT_EQ(r.status, 403u) << "DNS rebinding: " << r.body;
  // The daemon's own pages are same-origin.
  r = http.request("GET", "/api/v1/probes", {}, {{"Origin", daemon_->url()}});
  EXPECT_EQ(r.status, 200u) << r.body;
  // And the WebSocket handshake is checked the same way.
  try {
    WsClient ws(daemon_->address(), "/api/v1/events", daemon_->admin_token(),
                {{"Origin", "http://evil.example"}});
    ADD_FAILURE() << "a foreign Origin opened the event stream";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("403"), std::string::npos) << e.what();
  }
  try {
    WsClient ws(daemon_->address(), "/api/v1/events");
    ADD_FAILURE() << "no token opened the event stream";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
  }
}

TEST_F(DaemonApi, OversizeUploadIs413AndStoresNothing) {
  auto http = admin();
  const auto before = http.get("/api/v1/images").json()["images"].size();
  const std::string path = sim_->dir() + "/huge.bin";
  write_file(path, random_bytes(1048576 + 4096, 3));
  auto r = http.upload("/api/v1/images?name=huge.bin&address=0x08000000", path);
  EXPECT_EQ(r.status, 413u) << r.body;
  auto again = admin();
  EXPECT_EQ(again.get("/api/v1/images").json()["images"].size(), before);
  auto big_json = http.post_json("/api/v1/jobs", {{"padding", std::string(2 << 20, 'x')}});
  EXPECT_EQ(big_json.status, 413u);
}

TEST_F(DaemonApi, RepeatedIdempotencyKeyReturnsTheSameJob) {
  auto http = admin();
  const std::string sha = upload(http, demo_elf("stm32f103c8"), "name=demo.elf");
  json spec = {{"probe", {{"serial", f103()}}}, {"image", sha}};
  auto first = http.post_json("/api/v1/jobs", spec, {{"Idempotency-Key", "ci-run-4711"}});
  auto second = http.post_json("/api/v1/jobs", spec, {{"Idempotency-Key", "ci-run-4711"}});
  EXPECT_EQ(first.status, 201u);
  EXPECT_EQ(second.status, 200u);
  EXPECT_EQ(first.json()["id"], second.json()["id"]);
  auto third = http.post_json("/api/v1/jobs", spec, {{"Idempotency-Key", "ci-run-4712"}});
  EXPECT_NE(third.json()["id"], first.json()["id"]);
  wait_job(http, third.json()["id"]);
}

TEST_F(DaemonApi, RunningJobIsCancelled) {
  auto http = admin();
  const std::string sha = random_upload(http, 1000 * 1024, 11);
  json job =
      submit(http, {{"probe", {{"label", "big"}}}, {"image", sha}, {"skip_unchanged", false}});
  ASSERT_TRUE(eventually([&] {
    json j = job_of(http, job["id"]);
    return j["state"] == "running" && j["progress"]["phase"] == "program" &&
           j["progress"]["done"].get<std::uint64_t>() > 0;
  })) << job_of(http, job["id"]).dump(2);
  EXPECT_EQ(job_of(http, job["id"])["probe"], f407()) << "the label selector picked the F407";
  auto r = http.request("POST", "/api/v1/jobs/" + std::to_string(job["id"].get<int>()) + "/cancel");
  EXPECT_TRUE(r.status == 202u || r.status == 200u) << r.body;
  job = wait_job(http, job["id"]);
  EXPECT_EQ(job["state"], "cancelled") << job.dump(2);
  EXPECT_NE(job["error"]["message"].get<std::string>().find("admin"), std::string::npos);
  r = http.request("POST", "/api/v1/jobs/" + std::to_string(job["id"].get<int>()) + "/cancel");
  EXPECT_EQ(r.status, 409u) << "already cancelled";
  EXPECT_EQ(probe_of(http, f407())["state"], "idle");
}

TEST_F(DaemonApi, ProbeNamesLabelsAndActions) {
  auto http = admin();
  auto r = http.request("PATCH", "/api/v1/probes/" + f103(),
                        json{{"name", "bench-1"}, {"labels", {"f1", "hil"}}}.dump());
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(probe_of(http, f103())["name"], "bench-1");
  EXPECT_EQ(probe_of(http, f103())["labels"], json::array({"f1", "hil"}));
  r = http.request("PATCH", "/api/v1/probes/" + f103(), R"({"serial": "x"})");
  EXPECT_EQ(r.status, 400u);

  r = http.request("POST", "/api/v1/probes/" + f103() + "/halt");
  ASSERT_EQ(r.status, 200u) << r.body;
  r = http.request("POST", "/api/v1/probes/" + f103() + "/resume");
  ASSERT_EQ(r.status, 200u) << r.body;
  r = http.post_json("/api/v1/probes/" + f103() + "/reset", {{"halt", true}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json()["halted"], true) << r.body;
  r = http.request("POST", "/api/v1/probes/" + f103() + "/detect");
  ASSERT_EQ(r.status, 200u) << r.body;
  // A label selector job goes to the probe carrying it.
  json job = wait_job(http, submit(http, {{"operation", "erase"},
                                          {"probe", {{"label", "hil"}}},
                                          {"address", 0x0800F000},
                                          {"size", 1024}})["id"]);
  EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
  EXPECT_EQ(job["probe"], f103());
}

TEST_F(DaemonApi, MetricsCountJobsAndRequests) {
  auto http = admin();
  wait_job(http, submit(http, {{"operation", "erase"},
                               {"probe", {{"serial", f103()}}},
                               {"address", 0x0800F000},
                               {"size", 1024}})["id"]);
  auto r = http.get("/metrics");
  ASSERT_EQ(r.status, 200u);
  EXPECT_NE(r.body.find("probefarm_jobs_total{result=\"succeeded\"}"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("probefarm_probes{state=\"idle\"}"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("probefarm_queue_depth"), std::string::npos);
  EXPECT_NE(r.body.find("probefarm_bytes_flashed_total"), std::string::npos);
  EXPECT_NE(r.body.find("probefarm_http_request_duration_seconds_bucket"), std::string::npos);
  auto s = http.get("/api/v1/status").json();
  EXPECT_EQ(s["probes"], 2);
  EXPECT_EQ(s["you"]["role"], "admin");
}

TEST_F(DaemonApi, ImagesAreStoredOnceListedAndDeleted) {
  auto http = admin();
  const std::string path = sim_->dir() + "/dedup.bin";
  write_file(path, random_bytes(4096, 99));
  auto first = http.upload("/api/v1/images?name=dedup.bin&address=0x08000000", path);
  auto second = http.upload("/api/v1/images?name=dedup.bin&address=0x08000000", path);
  EXPECT_EQ(first.status, 201u) << first.body;
  EXPECT_EQ(second.status, 200u) << second.body;
  EXPECT_EQ(second.json()["existed"], true);
  const std::string sha = first.json()["sha256"];
  EXPECT_EQ(http.get("/api/v1/images/" + sha.substr(0, 10)).json()["sha256"], sha);
  const std::string out = sim_->dir() + "/dedup.out";
  ASSERT_EQ(http.download("/api/v1/images/" + sha + "/content", out).status, 200u);
  EXPECT_EQ(read_file(out), read_file(path));
  EXPECT_EQ(http.request("DELETE", "/api/v1/images/" + sha).status, 200u);
  EXPECT_EQ(http.get("/api/v1/images/" + sha).status, 404u);
}

TEST_F(DaemonApi, JobListFiltersAndPages) {
  auto http = admin();
  for (int i = 0; i < 3; ++i)
    wait_job(http, submit(http, {{"operation", "erase"},
                                 {"probe", {{"serial", f103()}}},
                                 {"address", 0x0800F000},
                                 {"size", 1024}})["id"]);
  json page = http.get("/api/v1/jobs?limit=2&probe=" + f103()).json();
  ASSERT_EQ(page["jobs"].size(), 2u);
  ASSERT_TRUE(page["next_before"].is_number());
  EXPECT_GT(page["jobs"][0]["id"].get<int>(), page["jobs"][1]["id"].get<int>());
  json next = http.get("/api/v1/jobs?limit=2&probe=" + f103() +
                       "&before=" + std::to_string(page["next_before"].get<int>()))
                  .json();
  ASSERT_FALSE(next["jobs"].empty());
  EXPECT_LT(next["jobs"][0]["id"].get<int>(), page["jobs"][1]["id"].get<int>());
  for (const auto& j : http.get("/api/v1/jobs?state=succeeded").json()["jobs"])
    EXPECT_EQ(j["state"], "succeeded");
  EXPECT_EQ(http.get("/api/v1/jobs?state=bogus").status, 400u);
}

}  // namespace
}  // namespace probefarm::server::test
