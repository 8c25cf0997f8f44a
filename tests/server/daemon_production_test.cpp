// Production on a farm of simulated boards: serial numbers from a counter written into each
// board's flash, never issued twice (not even across SIGKILL), whole-flash backups that
// restore onto another board bit for bit, and guarded operations that need the admin role
// and a confirmation.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "daemon_util.hpp"

namespace probefarm::server::test {
namespace {

std::string bin_upload(HttpClient& http, const SimProcess& sim, std::size_t size, unsigned seed) {
  const std::string path = sim.dir() + "/prod-" + std::to_string(seed) + ".bin";
  write_file(path, random_bytes(size, seed));
  return upload(http, path, "name=prod-" + std::to_string(seed) + ".bin&address=0x08000000");
}

std::string content_of(HttpClient& http, const std::string& sha) {
  auto r = http.get("/api/v1/images/" + sha + "/content");
  EXPECT_EQ(r.status, 200u) << r.body;
  return r.body;
}

std::uint64_t le_value(const std::string& bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;)
    v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

void create_counter(HttpClient& http, const json& body) {
  auto r = http.post_json("/api/v1/counters", body);
  ASSERT_EQ(r.status, 201u) << r.body;
}

bool wait_probes(HttpClient& http, std::size_t n) {
  return eventually([&] {
    json probes = http.get("/api/v1/probes").json()["probes"];
    if (probes.size() != n) return false;
    for (const auto& p : probes)
      if (!p["target"].is_object()) return false;
    return true;
  });
}

TEST(DaemonProduction, CountersThroughTheApiAndTheCli) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2"}, {"--time-scale", "0"});
  Daemon daemon(temp_dir(sim, "data"));
  auto admin = daemon.client(daemon.admin_token());
  create_counter(admin, {{"name", "sn"}, {"start", 100}, {"step", 2}, {"width", 2}});
  auto dup = admin.post_json("/api/v1/counters", {{"name", "sn"}});
  EXPECT_EQ(dup.status, 409u) << dup.body;
  auto bad = admin.post_json("/api/v1/counters", {{"name", "w"}, {"width", 9}});
  EXPECT_EQ(bad.status, 400u) << bad.body;
  EXPECT_NE(bad.body.find("1 to 8"), std::string::npos) << bad.body;
  const std::string op_token =
      admin.post_json("/api/v1/tokens", {{"name", "line1"}, {"role", "operator"}}).json()["token"];
  auto op = daemon.client(op_token);
  EXPECT_EQ(op.post_json("/api/v1/counters", {{"name", "x"}}).status, 403u);
  json c = op.get("/api/v1/counters/sn").json();
  EXPECT_EQ(c["next_value"], 100);
  EXPECT_EQ(c["endian"], "little");
  EXPECT_EQ(op.get("/api/v1/counters/none").status, 404u);

  const std::vector<std::string> base = {PROBEFARM_CLI_EXE, "--server", daemon.url(), "--token",
                                         daemon.admin_token()};
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> all = base;
    all.insert(all.end(), args.begin(), args.end());
    return probefarm::test::run_capture(all);
  };
  auto created = cli({"counters", "create", "mac", "--start", "0x0080E1000000", "--width", "6",
                      "--endian", "big"});
  EXPECT_EQ(created.status, 0) << created.err;
  auto again = cli({"counters", "create", "mac"});
  EXPECT_EQ(again.status, 2) << "a name taken is a usage error: " << again.err;
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_NE(created.out.find("counter mac: next value 553530687488"), std::string::npos)
      << created.out;
  auto list = cli({"counters", "list"});
  EXPECT_EQ(list.status, 0) << list.err;
  EXPECT_NE(list.out.find("mac"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("sn"), std::string::npos) << list.out;
  auto shown = cli({"--json", "counters", "show", "mac"});
  ASSERT_EQ(shown.status, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out)["counter"]["width"], 6);
  auto missing = cli({"counters", "show", "nope"});
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
}

TEST(DaemonProduction, HundredJobsGetConsecutiveValuesAndEachBoardHoldsItsOwn) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2", "stm32f103c8:stlink-v2"}, {"--time-scale", "0"});
  Daemon daemon(temp_dir(sim, "data"));
  auto http = daemon.client(daemon.admin_token());
  ASSERT_TRUE(wait_probes(http, 2));
  const std::string sha = bin_upload(http, sim, 1024, 41);
  create_counter(http, {{"name", "board"}, {"start", 5000}, {"step", 1}, {"width", 4}});
  constexpr std::uint32_t kAddress = 0x08000200;

  // Refused at submission: an unknown counter, an address outside image and flash.
  auto r =
      http.post_json("/api/v1/jobs", {{"probe", {{"serial", sim.serials()[0]}}},
                                      {"image", sha},
                                      {"serial", {{"counter", "nope"}, {"address", kAddress}}}});
  EXPECT_EQ(r.status, 404u) << r.body;
  r = http.post_json("/api/v1/jobs", {{"probe", {{"serial", sim.serials()[0]}}},
                                      {"image", sha},
                                      {"serial", {{"counter", "board"}, {"address", 0x20000000}}}});
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_NE(r.body.find("neither in the image nor in the flash"), std::string::npos) << r.body;

  // Each flash job is followed on its board by a read of the value's bytes: a probe runs the
  // jobs naming it first in, first out, so the read sees what that flash wrote.
  struct Pair {
    std::int64_t flash = 0, read = 0;
  };
  std::vector<Pair> pairs;
  for (int i = 0; i < 100; ++i) {
    const std::string& serial = sim.serials()[i % 2];
    Pair p;
    p.flash = submit(http, {{"probe", {{"serial", serial}}},
                            {"image", sha},
                            {"serial", {{"counter", "board"}, {"address", kAddress}}}})["id"];
    p.read = submit(http, {{"operation", "read"},
                           {"probe", {{"serial", serial}}},
                           {"address", kAddress},
                           {"size", 4}})["id"];
    pairs.push_back(p);
  }
  std::set<std::uint64_t> values;
  std::map<std::int64_t, std::uint64_t> value_of_job;
  for (const auto& p : pairs) {
    json f = wait_job(http, p.flash);
    ASSERT_EQ(f["state"], "succeeded") << f.dump(2);
    ASSERT_TRUE(f["serial_value"].is_number()) << f.dump(2);
    const std::uint64_t v = f["serial_value"];
    EXPECT_TRUE(f["result"]["verified"].get<bool>());
    values.insert(v);
    value_of_job[p.flash] = v;
    json rd = wait_job(http, p.read);
    ASSERT_EQ(rd["state"], "succeeded") << rd.dump(2);
    EXPECT_EQ(rd["probe"], f["probe"]);
    EXPECT_EQ(le_value(content_of(http, rd["result"]["output_image"])), v) << "job " << p.flash;
  }
  ASSERT_EQ(values.size(), 100u);
  EXPECT_EQ(*values.begin(), 5000u);
  EXPECT_EQ(*values.rbegin(), 5099u);
  EXPECT_EQ(http.get("/api/v1/counters/board").json()["next_value"], 5100);
  // The audit rows carry the values too.
  json rows = http.get("/api/v1/audit?limit=1000").json()["rows"];
  unsigned audited = 0;
  for (const auto& row : rows)
    if (value_of_job.count(row["job_id"])) {
      EXPECT_EQ(row["serial_counter"], "board");
      EXPECT_EQ(row["serial_value"], value_of_job[row["job_id"]]);
      ++audited;
    }
  EXPECT_EQ(audited, 100u);
}

TEST(DaemonProduction, AValueAllocatedBeforeSigkillIsNeverIssuedAgain) {
  SimProcess sim({"stm32f407vg:cmsis-dap-v2"}, {"--time-scale", "0"});
  const std::string serial = sim.serials()[0];
  const std::string data = temp_dir(sim, "data");
  std::int64_t killed_id = 0;
  std::uint64_t killed_value = 0;
  std::string sha;
  {
    Daemon daemon(data);
    auto http = daemon.client(daemon.admin_token());
    ASSERT_TRUE(wait_probes(http, 1));
    sha = bin_upload(http, sim, 1000 * 1024, 43);
    create_counter(http, {{"name", "sn"}, {"start", 1}, {"width", 4}});
    killed_id = submit(http, {{"probe", {{"serial", serial}}},
                              {"image", sha},
                              {"skip_unchanged", false},
                              {"serial", {{"counter", "sn"}, {"address", 0x08000100}}}})["id"];
    // A job queued behind it, cancelled while queued: it takes no value.
    json queued = submit(http, {{"probe", {{"serial", serial}}},
                                {"image", sha},
                                {"serial", {{"counter", "sn"}, {"address", 0x08000100}}}});
    auto c = http.post_json("/api/v1/jobs/" + std::to_string(queued["id"].get<int>()) + "/cancel",
                            json::object());
    EXPECT_EQ(c.status, 200u) << c.body;
    ASSERT_TRUE(eventually([&] {
      json j = job_of(http, killed_id);
      return j["state"] == "running" && j["progress"]["phase"] == "program";
    })) << job_of(http, killed_id).dump(2);
    killed_value = job_of(http, killed_id)["serial_value"];
    EXPECT_EQ(killed_value, 1u);
    EXPECT_EQ(job_of(http, queued["id"])["serial_value"], nullptr);
    EXPECT_EQ(daemon.stop(SIGKILL), 128 + SIGKILL);
  }
  Daemon daemon(data);
  auto http = daemon.client(daemon.admin_token());
  json killed = job_of(http, killed_id);
  EXPECT_EQ(killed["state"], "interrupted") << killed.dump(2);
  EXPECT_EQ(killed["serial_value"], killed_value);
  EXPECT_EQ(http.get("/api/v1/counters/sn").json()["next_value"], 2);
  json next = wait_job(
      http, submit(http, {{"probe", {{"serial", serial}}},
                          {"image", sha},
                          {"serial", {{"counter", "sn"}, {"address", 0x08000100}}}})["id"]);
  EXPECT_EQ(next["state"], "succeeded") << next.dump(2);
  EXPECT_EQ(next["serial_value"], killed_value + 1);
  json rows = http.get("/api/v1/audit?result=interrupted").json()["rows"];
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["serial_value"], killed_value);
}

TEST(DaemonProduction, BackupRestoredOntoAnotherBoardReadsBackTheSame) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2", "stm32f103c8:stlink-v2"}, {"--time-scale", "0"});
  const std::string a = sim.serials()[0], b = sim.serials()[1];
  Daemon daemon(temp_dir(sim, "data"));
  auto http = daemon.client(daemon.admin_token());
  ASSERT_TRUE(wait_probes(http, 2));
  // Different contents on the two boards first, so that equal backups mean something.
  ASSERT_EQ(
      wait_job(http,
               submit(http, {{"probe", {{"serial", a}}},
                             {"image", bin_upload(http, sim, 20 * 1024, 51)}})["id"])["state"],
      "succeeded");
  ASSERT_EQ(
      wait_job(http,
               submit(http, {{"probe", {{"serial", b}}},
                             {"image", bin_upload(http, sim, 40 * 1024, 52)}})["id"])["state"],
      "succeeded");
  auto backup = [&](const std::string& serial) {
    auto r = http.post_json("/api/v1/probes/" + serial + "/backup", json::object());
    EXPECT_EQ(r.status, 201u) << r.body;
    json job = wait_job(http, r.json()["id"]);
    EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
    EXPECT_EQ(job["result"]["read_address"], 0x08000000);
    EXPECT_EQ(job["result"]["read_size"], 64 * 1024);
    return job["result"]["output_image"].get<std::string>();
  };
  const std::string sha_a = backup(a);
  const std::string sha_b_before = backup(b);
  EXPECT_NE(sha_a, sha_b_before);
  json image = http.get("/api/v1/images/" + sha_a).json();
  EXPECT_EQ(image["data_bytes"], 64 * 1024);
  EXPECT_EQ(image["bin_address"], 0x08000000);

  json restore = wait_job(http, submit(http, {{"probe", {{"serial", b}}}, {"image", sha_a}})["id"]);
  ASSERT_EQ(restore["state"], "succeeded") << restore.dump(2);
  EXPECT_EQ(backup(b), sha_a);
  // A range works too, and a bad body says what is accepted.
  auto ranged =
      http.post_json("/api/v1/probes/" + a + "/backup", {{"address", 0x08000000}, {"size", 1024}});
  ASSERT_EQ(ranged.status, 201u) << ranged.body;
  EXPECT_EQ(wait_job(http, ranged.json()["id"])["result"]["image_bytes"], 1024);
  auto bad = http.post_json("/api/v1/probes/" + a + "/backup", {{"sectors", 1}});
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.body.find("unknown backup field"), std::string::npos) << bad.body;
  EXPECT_EQ(http.post_json("/api/v1/probes/NOPE/backup", json::object()).status, 404u);
}

TEST(DaemonProduction, GuardedOperationsNeedAdminAndConfirmation) {
  SimProcess sim({"stm32f103c8:cmsis-dap-v2"}, {"--time-scale", "0"});
  const std::string serial = sim.serials()[0];
  Daemon daemon(temp_dir(sim, "data"));
  auto admin = daemon.client(daemon.admin_token());
  ASSERT_TRUE(wait_probes(admin, 1));
  const std::string op_token =
      admin.post_json("/api/v1/tokens", {{"name", "line1"}, {"role", "operator"}}).json()["token"];
  auto op = daemon.client(op_token);
  const json write = {{"operation", "option_bytes"},
                      {"probe", {{"serial", serial}}},
                      {"option_set", {{"nRST_STOP", "0"}}}};
  auto with = [](json spec, const json& confirm) {
    spec["confirm"] = confirm;
    return spec;
  };

  auto r = op.post_json("/api/v1/jobs", with(write, serial));
  EXPECT_EQ(r.status, 403u) << r.body;
  EXPECT_NE(r.body.find("needs the admin role"), std::string::npos) << r.body;
  r = admin.post_json("/api/v1/jobs", write);
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_NE(r.body.find("'confirm' is missing"), std::string::npos) << r.body;
  r = admin.post_json("/api/v1/jobs", with(write, "SOMEONE-ELSE"));
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_NE(r.body.find("not the probe's serial"), std::string::npos) << r.body;
  for (const char* guarded : {"unlock", "protect"}) {
    r = admin.post_json("/api/v1/jobs", {{"operation", guarded}, {"probe", {{"serial", serial}}}});
    EXPECT_EQ(r.status, 400u) << guarded << ": " << r.body;
    r = op.post_json(
        "/api/v1/jobs",
        {{"operation", guarded}, {"probe", {{"serial", serial}}}, {"confirm", serial}});
    EXPECT_EQ(r.status, 403u) << guarded << ": " << r.body;
  }
  // Nothing was queued by the refusals.
  EXPECT_EQ(admin.get("/api/v1/jobs").json()["jobs"].size(), 0u);

  // Reading the option bytes is not guarded.
  json before = wait_job(
      op, submit(op, {{"operation", "option_bytes"}, {"probe", {{"serial", serial}}}})["id"]);
  ASSERT_EQ(before["state"], "succeeded") << before.dump(2);
  EXPECT_EQ(before["result"]["option_bytes"]["values"]["nRST_STOP"], 1);

  json written = wait_job(admin, submit(admin, with(write, serial))["id"]);
  ASSERT_EQ(written["state"], "succeeded") << written.dump(2);
  EXPECT_TRUE(written["result"]["option_bytes"]["changed"].get<bool>());
  json after = wait_job(
      op, submit(op, {{"operation", "option_bytes"}, {"probe", {{"serial", serial}}}})["id"]);
  EXPECT_EQ(after["result"]["option_bytes"]["values"]["nRST_STOP"], 0) << after.dump(2);

  // Write protection of the first 4 KiB, then cleared again.
  json prot = wait_job(admin, submit(admin, {{"operation", "protect"},
                                             {"probe", {{"serial", serial}}},
                                             {"address", 0x08000000},
                                             {"size", 4096},
                                             {"confirm", serial}})["id"]);
  ASSERT_EQ(prot["state"], "succeeded") << prot.dump(2);
  ASSERT_EQ(prot["result"]["option_bytes"]["write_protected"].size(), 1u) << prot.dump(2);
  EXPECT_EQ(prot["result"]["option_bytes"]["write_protected"][0]["address"], 0x08000000);
  json unprot = wait_job(admin, submit(admin, {{"operation", "protect"},
                                               {"probe", {{"serial", serial}}},
                                               {"write_protect", false},
                                               {"confirm", serial}})["id"]);
  ASSERT_EQ(unprot["state"], "succeeded") << unprot.dump(2);
  EXPECT_TRUE(unprot["result"]["option_bytes"]["write_protected"].empty()) << unprot.dump(2);

  // RDP level 1, then the unlock that takes it back to 0 and erases the flash.
  json rdp1 = wait_job(admin, submit(admin, {{"operation", "option_bytes"},
                                             {"probe", {{"serial", serial}}},
                                             {"option_set", {{"RDP", "1"}}},
                                             {"confirm", serial}})["id"]);
  ASSERT_EQ(rdp1["state"], "succeeded") << rdp1.dump(2);
  EXPECT_EQ(rdp1["result"]["option_bytes"]["rdp_level"], 1);
  json unlocked = wait_job(admin, submit(admin, {{"operation", "unlock"},
                                                 {"probe", {{"serial", serial}}},
                                                 {"confirm", serial}})["id"]);
  ASSERT_EQ(unlocked["state"], "succeeded") << unlocked.dump(2);
  EXPECT_EQ(unlocked["result"]["option_bytes"]["rdp_level"], 0);
  EXPECT_TRUE(unlocked["result"]["mass_erase"].get<bool>());

  // Audit-logged like every job, the confirmation included.
  json rows = admin.get("/api/v1/audit?limit=100").json()["rows"];
  unsigned guarded_rows = 0;
  for (const auto& row : rows)
    if ((row["operation"] == "option_bytes" || row["operation"] == "protect" ||
         row["operation"] == "unlock") &&
        row["who"] == "admin" && row["operations"].contains("confirm")) {
      EXPECT_EQ(row["operations"]["confirm"], serial);
      ++guarded_rows;
    }
  EXPECT_EQ(guarded_rows, 5u) << rows.dump(2);
}

}  // namespace
}  // namespace probefarm::server::test
