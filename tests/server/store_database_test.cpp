#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "probe/error.hpp"
#include "server/database.hpp"
#include "temp_dir.hpp"

namespace probefarm::server {
namespace {

using test::TempDir;

namespace fs = std::filesystem;

// One value of a query, read through a second connection: what is really in the file.
std::string query_text(const fs::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

void exec_raw(const fs::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);
}

JobSpec flash_spec(const std::string& serial = "PFSIM01", const std::string& image = "ab12") {
  JobSpec s;
  s.operation = Operation::flash;
  s.probe.serial = serial;
  s.image = image;
  return s;
}

// Starts and finishes a job the way an actor would.
Job run_job(Database& db, const std::string& who, const std::string& probe, JobState state,
            std::optional<JobError> error = {}) {
  Job job = db.insert_job(flash_spec(probe), who, "").job;
  db.mark_running(job.id, probe, "STM32F405/407/415/417", "0123456789abcdef01234567", now_ms());
  job = *db.get_job(job.id);
  job.state = state;
  job.result.phases = {{"erase", 0.5}, {"program", 1.25}};
  job.result.bytes_programmed = 4096;
  job.result.image_bytes = 5000;
  job.error = error;
  db.finish_job(job);
  return *db.get_job(job.id);
}

std::string error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return std::string(category_name(e.category())) + ": " + e.what();
  }
  return "no error";
}

TEST(StoreDatabase, OpensInWalModeWithSchemaVersion) {
  TempDir dir;
  const fs::path path = dir.path() / "sub" / "probefarm.db";
  { Database db(path); }
  EXPECT_EQ(query_text(path, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query_text(path, "PRAGMA user_version"), "2");
  EXPECT_EQ(query_text(path,
                       "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name "
                       "IN ('jobs', 'audit', 'images', 'probes', 'tokens')"),
            "5");
  // Reopening an existing database keeps it (no second schema creation).
  Database again(path);
  EXPECT_TRUE(again.list_jobs({}).empty());
}

TEST(StoreDatabase, RefusesForeignAndNewerDatabases) {
  TempDir dir;
  const fs::path foreign = dir.path() / "foreign.db";
  exec_raw(foreign, "CREATE TABLE customers (id INTEGER)");
  EXPECT_EQ(error_text([&] { Database db(foreign); }),
            "internal: database " + foreign.string() + " is not a probefarmd database");

  const fs::path newer = dir.path() / "newer.db";
  { Database db(newer); }
  exec_raw(newer, "PRAGMA user_version = 7");
  EXPECT_NE(error_text([&] { Database db(newer); }).find("has schema version 7, newer than"),
            std::string::npos);

  const fs::path garbage = dir.path() / "garbage.db";
  { std::ofstream(garbage) << std::string(4096, 'x'); }
  const std::string text = error_text([&] { Database db(garbage); });
  EXPECT_EQ(text.rfind("internal: ", 0), 0u) << text;
  EXPECT_NE(text.find(garbage.string()), std::string::npos) << text;
}

TEST(StoreDatabase, InsertAssignsIdsAndStoresTheSpecAsJson) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  JobSpec spec;
  spec.operation = Operation::erase;
  spec.probe.chip = "stm32f407vg";
  spec.address = 0x08004000;
  spec.size = 0x4000;
  const auto first = db.insert_job(spec, "ci", "");
  const auto second = db.insert_job(flash_spec(), "ci", "");
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.job.state, JobState::queued);
  EXPECT_GT(second.job.id, first.job.id);
  EXPECT_GT(first.job.created_at, 0);
  const Job stored = *db.get_job(first.job.id);
  EXPECT_EQ(stored.spec.operation, Operation::erase);
  EXPECT_EQ(stored.spec.probe.chip, "stm32f407vg");
  EXPECT_EQ(stored.spec.address, 0x08004000u);
  EXPECT_EQ(stored.spec.size, 0x4000u);
  EXPECT_EQ(stored.submitted_by, "ci");
  EXPECT_FALSE(db.get_job(9999).has_value());
  const std::string spec_text = query_text(dir.path() / "p.db", "SELECT spec FROM jobs LIMIT 1");
  EXPECT_EQ(nlohmann::json::parse(spec_text)["operation"], "erase");
}

TEST(StoreDatabase, IdempotencyKeyReturnsTheSameJobPerSubmitter) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  const auto a = db.insert_job(flash_spec(), "ci", "build-42");
  const auto again = db.insert_job(flash_spec(), "ci", "build-42");
  const auto other_token = db.insert_job(flash_spec(), "line-3", "build-42");
  const auto no_key1 = db.insert_job(flash_spec(), "ci", "");
  const auto no_key2 = db.insert_job(flash_spec(), "ci", "");
  EXPECT_TRUE(a.created);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.job.id, a.job.id);
  EXPECT_EQ(again.job.idempotency_key, "build-42");
  EXPECT_TRUE(other_token.created);
  EXPECT_NE(other_token.job.id, a.job.id);
  EXPECT_TRUE(no_key1.created && no_key2.created);
  EXPECT_NE(no_key1.job.id, no_key2.job.id);
  EXPECT_EQ(db.list_jobs({}).size(), 4u);
}

TEST(StoreDatabase, ConcurrentRetriesWithOneKeyCreateOneJob) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  std::vector<Database::Inserted> results(8);
  std::vector<std::thread> threads;
  for (auto& r : results)
    threads.emplace_back([&db, &r] { r = db.insert_job(flash_spec(), "ci", "retry"); });
  for (auto& t : threads)
    t.join();
  int created = 0;
  for (const auto& r : results) {
    created += r.created;
    EXPECT_EQ(r.job.id, results[0].job.id);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(db.list_jobs({}).size(), 1u);
}

TEST(StoreDatabase, FinishWritesJobAndAuditRow) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  Job job = db.insert_job(flash_spec("PFSIM07", "c0ffee"), "ci", "k").job;
  db.mark_running(job.id, "PFSIM07", "STM32F405/407/415/417", "112233445566778899aabbcc", 1000);
  job = *db.get_job(job.id);
  EXPECT_EQ(job.state, JobState::running);
  EXPECT_EQ(job.started_at, 1000);
  EXPECT_EQ(job.probe, "PFSIM07");
  EXPECT_EQ(db.count_audit({}), 0u);

  job.state = JobState::failed;
  job.result.phases = {{"attach", 0.25}, {"erase", 1.5}};
  job.result.bytes_programmed = 2048;
  job.result.image_bytes = 3000;
  job.result.sectors_erased = 2;
  job.result.verified = false;
  job.error = JobError{"verify", "flash differs at 0x08000010", "erase and flash again"};
  db.finish_job(job);

  const Job stored = *db.get_job(job.id);
  EXPECT_EQ(stored.state, JobState::failed);
  EXPECT_GT(stored.finished_at, 0);
  ASSERT_TRUE(stored.error.has_value());
  EXPECT_EQ(stored.error->category, "verify");
  EXPECT_EQ(stored.error->hint, "erase and flash again");
  ASSERT_EQ(stored.result.phases.size(), 2u);
  EXPECT_EQ(stored.result.phases[1].phase, "erase");
  EXPECT_DOUBLE_EQ(stored.result.phases[1].seconds, 1.5);
  EXPECT_EQ(stored.result.sectors_erased, 2u);
  EXPECT_EQ(stored.result.bytes_programmed, 2048u);

  const auto rows = db.list_audit({});
  ASSERT_EQ(rows.size(), 1u);
  const AuditRow& r = rows[0];
  EXPECT_EQ(r.job_id, job.id);
  EXPECT_EQ(r.at, stored.finished_at);
  EXPECT_EQ(r.who, "ci");
  EXPECT_EQ(r.probe, "PFSIM07");
  EXPECT_EQ(r.chip, "STM32F405/407/415/417");
  EXPECT_EQ(r.target_uid, "112233445566778899aabbcc");
  EXPECT_EQ(r.image_sha256, "c0ffee");
  EXPECT_EQ(r.operation, "flash");
  EXPECT_EQ(r.result, "failed");
  EXPECT_EQ(r.bytes_programmed, 2048u);
  EXPECT_EQ(r.image_bytes, 3000u);
  EXPECT_EQ(r.error, "flash differs at 0x08000010");
  EXPECT_EQ(nlohmann::json::parse(r.durations), (nlohmann::json{{"attach", 0.25}, {"erase", 1.5}}));
  EXPECT_EQ(nlohmann::json::parse(r.operations)["probe"]["serial"], "PFSIM07");
  // The job filter: its row, and none for another id; the count and the CSV agree.
  AuditFilter by_job;
  by_job.job_id = job.id;
  EXPECT_EQ(db.list_audit(by_job).size(), 1u);
  EXPECT_EQ(db.count_audit(by_job), 1u);
  by_job.job_id = job.id + 1;
  EXPECT_TRUE(db.list_audit(by_job).empty());
  EXPECT_EQ(db.count_audit(by_job), 0u);
  EXPECT_EQ(db.audit_csv(by_job).find("PFSIM07"), std::string::npos);

  // A job is finished once: a second finish would be a second, contradicting audit row.
  job.state = JobState::succeeded;
  EXPECT_NE(error_text([&] { db.finish_job(job); }).find("is already failed"), std::string::npos);
  EXPECT_EQ(db.count_audit({}), 1u);
  EXPECT_EQ(db.get_job(job.id)->state, JobState::failed);
}

TEST(StoreDatabase, FinishRejectsNonFinalStatesAndMarkRunningOnlyQueued) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  Job job = db.insert_job(flash_spec(), "ci", "").job;
  job.state = JobState::running;
  EXPECT_NE(error_text([&] { db.finish_job(job); }).find("not a final state"), std::string::npos);
  EXPECT_EQ(db.count_audit({}), 0u);

  // A queued job can be cancelled without ever running.
  job.state = JobState::cancelled;
  db.finish_job(job);
  EXPECT_EQ(db.get_job(job.id)->state, JobState::cancelled);
  EXPECT_NE(error_text([&] { db.mark_running(job.id, "P", "", "", 1); }).find("is cancelled"),
            std::string::npos);
  EXPECT_NE(error_text([&] { db.mark_running(424242, "P", "", "", 1); }).find("does not exist"),
            std::string::npos);
}

TEST(StoreDatabase, InterruptRunningJobsAfterRestart) {
  TempDir dir;
  const fs::path path = dir.path() / "p.db";
  std::int64_t queued_id = 0, running_id = 0, done_id = 0;
  {
    Database db(path);
    queued_id = db.insert_job(flash_spec(), "ci", "").job.id;
    running_id = db.insert_job(flash_spec("PFSIM02"), "line", "").job.id;
    db.mark_running(running_id, "PFSIM02", "STM32F10x medium-density", "aabb", now_ms());
    done_id = run_job(db, "ci", "PFSIM03", JobState::succeeded).id;
  }  // the daemon "crashes" with one job running
  Database db(path);
  const std::vector<Job> interrupted = db.interrupt_running_jobs();
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0].id, running_id);
  const Job job = *db.get_job(running_id);
  EXPECT_EQ(job.state, JobState::interrupted);
  EXPECT_GT(job.finished_at, 0);
  ASSERT_TRUE(job.error.has_value());
  EXPECT_EQ(job.error->category, "internal");
  EXPECT_EQ(job.error->message,
            "probefarmd stopped while the job was running (crash or kill); the target may be "
            "partly programmed");
  EXPECT_EQ(job.error->hint, "submit the job again");
  EXPECT_EQ(db.get_job(queued_id)->state, JobState::queued);
  EXPECT_EQ(db.get_job(done_id)->state, JobState::succeeded);

  AuditFilter f;
  f.result = "interrupted";
  const auto rows = db.list_audit(f);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].job_id, running_id);
  EXPECT_EQ(rows[0].probe, "PFSIM02");
  EXPECT_EQ(rows[0].who, "line");
  EXPECT_TRUE(db.interrupt_running_jobs().empty());
  EXPECT_EQ(db.count_audit({}), 2u);

  const auto queued = db.jobs_in_state(JobState::queued);
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].id, queued_id);
}

TEST(StoreDatabase, ListJobsFiltersAndPages) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(
        db.insert_job(flash_spec(i % 2 ? "PFSIM02" : "PFSIM01"), i < 3 ? "ci" : "line", "").job.id);
  JobSpec any;
  any.operation = Operation::erase;
  any.probe.label = "hil";
  const std::int64_t selector_job = db.insert_job(any, "ci", "").job.id;
  db.mark_running(selector_job, "PFSIM02", "", "", now_ms());

  JobFilter f;
  f.probe = "PFSIM02";  // asked for it (ids[1], ids[3]) or ran on it (selector_job)
  std::vector<std::int64_t> got;
  for (const Job& j : db.list_jobs(f))
    got.push_back(j.id);
  EXPECT_EQ(got, (std::vector<std::int64_t>{selector_job, ids[3], ids[1]}));

  f = {};
  f.submitted_by = "line";
  EXPECT_EQ(db.list_jobs(f).size(), 2u);
  f = {};
  f.state = JobState::running;
  ASSERT_EQ(db.list_jobs(f).size(), 1u);
  EXPECT_EQ(db.list_jobs(f)[0].id, selector_job);

  // Paging newest first: two per page.
  f = {};
  f.limit = 2;
  const auto page1 = db.list_jobs(f);
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_EQ(page1[0].id, selector_job);
  f.before_id = page1[1].id;
  const auto page2 = db.list_jobs(f);
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].id, ids[3]);
  EXPECT_EQ(page2[1].id, ids[2]);
}

TEST(StoreDatabase, AuditFiltersCountsAndPages) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  const Job a = run_job(db, "ci", "PFSIM01", JobState::succeeded);
  const Job b = run_job(db, "line", "PFSIM02", JobState::failed, JobError{"probe_io", "gone", ""});
  const Job c = run_job(db, "ci", "PFSIM02", JobState::succeeded);
  const Job d = run_job(db, "ci", "PFSIM01", JobState::cancelled);

  AuditFilter f;
  EXPECT_EQ(db.count_audit(f), 4u);
  f.who = "ci";
  EXPECT_EQ(db.count_audit(f), 3u);
  f.probe = "PFSIM02";
  ASSERT_EQ(db.list_audit(f).size(), 1u);
  EXPECT_EQ(db.list_audit(f)[0].job_id, c.id);
  f = {};
  f.result = "failed";
  ASSERT_EQ(db.list_audit(f).size(), 1u);
  EXPECT_EQ(db.list_audit(f)[0].job_id, b.id);
  EXPECT_EQ(db.list_audit(f)[0].error, "gone");
  f = {};
  f.target_uid = "0123456789abcdef01234567";
  EXPECT_EQ(db.count_audit(f), 4u);
  f.target_uid = "ffff";
  EXPECT_EQ(db.count_audit(f), 0u);
  f = {};
  f.image_sha256 = "ab12";
  EXPECT_EQ(db.count_audit(f), 4u);

  // Time window (inclusive), on the rows' own timestamps.
  const auto all = db.list_audit({});
  ASSERT_EQ(all.size(), 4u);
  f = {};
  f.since = all[0].at + 1;
  EXPECT_EQ(db.count_audit(f), 0u);
  f.since = all[3].at;
  f.until = all[0].at;
  EXPECT_EQ(db.count_audit(f), 4u);
  f = {};
  f.until = all[3].at - 1;
  EXPECT_EQ(db.count_audit(f), 0u);

  // Newest first; offset pages, count ignores limit/offset.
  EXPECT_EQ(all[0].job_id, d.id);
  EXPECT_EQ(all[3].job_id, a.id);
  f = {};
  f.limit = 2;
  f.offset = 2;
  const auto page = db.list_audit(f);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].job_id, b.id);
  EXPECT_EQ(page[1].job_id, a.id);
  EXPECT_EQ(db.count_audit(f), 4u);
  f.limit = 0;  // no limit
  f.offset = 0;
  EXPECT_EQ(db.list_audit(f).size(), 4u);
}

TEST(StoreDatabase, AuditCsvQuotesPerRfc4180) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  const Job j = run_job(db, "ci", "PFSIM01", JobState::failed,
                        JobError{"verify", "mismatch, said \"the chip\"", "retry"});
  const std::string csv = db.audit_csv({});
  const std::string header =
      "id,job_id,at,who,probe,target_uid,chip,image_sha256,operation,operations,result,"
      "durations,bytes_programmed,image_bytes,error,detail,serial_counter,serial_value\r\n";
  ASSERT_EQ(csv.compare(0, header.size(), header), 0) << csv;
  const std::string row = csv.substr(header.size());
  const std::string expected_start = "1," + std::to_string(j.id) + "," + iso_time(j.finished_at) +
                                     ",ci,PFSIM01,0123456789abcdef01234567,STM32F405/407/415/417,"
                                     "ab12,flash,\"{\"\"erase\"\":";
  EXPECT_EQ(row.compare(0, expected_start.size(), expected_start), 0) << row;
  const std::string expected_end =
      ",failed,\"{\"\"erase\"\":0.5,\"\"program\"\":1.25}\",4096,5000,"
      "\"mismatch, said \"\"the chip\"\"\",,,\r\n";
  ASSERT_GE(row.size(), expected_end.size());
  EXPECT_EQ(row.substr(row.size() - expected_end.size()), expected_end) << row;
  EXPECT_EQ(iso_time(j.finished_at).size(), 24u);

  AuditFilter none;
  none.who = "nobody";
  EXPECT_EQ(db.audit_csv(none), header);
}

TEST(StoreDatabase, ImagesKeepTheFirstRow) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  ImageMeta m;
  m.sha256 = std::string(64, 'a');
  m.name = "first.hex";
  m.format = "ihex";
  m.size = 100;
  m.data_bytes = 32;
  m.segments = {{0x08000000, 16}, {0x08001000, 16}};
  m.entry = 0x08000101;
  m.uploaded_by = "ci";
  const ImageMeta stored = db.put_image(m);
  EXPECT_EQ(stored.name, "first.hex");
  EXPECT_GT(stored.created_at, 0);
  ASSERT_EQ(stored.segments.size(), 2u);
  EXPECT_EQ(stored.segments[1].address, 0x08001000u);
  EXPECT_EQ(stored.entry, 0x08000101u);
  EXPECT_FALSE(stored.bin_address.has_value());

  m.name = "second.hex";
  EXPECT_EQ(db.put_image(m).name, "first.hex");
  EXPECT_EQ(db.list_images().size(), 1u);
  EXPECT_TRUE(db.delete_image(m.sha256));
  EXPECT_FALSE(db.delete_image(m.sha256));
  EXPECT_FALSE(db.get_image(m.sha256).has_value());
}

TEST(StoreDatabase, ProbeMetaAndTokens) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  db.put_probe_meta({"PFSIM01", "bench-1", {"f4", "hil"}});
  db.put_probe_meta({"PFSIM01", "bench-one", {"f4"}});
  db.put_probe_meta({"PFSIM00", "", {}});
  const auto metas = db.probe_metas();
  ASSERT_EQ(metas.size(), 2u);
  EXPECT_EQ(metas[1].serial, "PFSIM01");
  EXPECT_EQ(metas[1].name, "bench-one");
  EXPECT_EQ(metas[1].labels, std::vector<std::string>{"f4"});

  db.put_token({"ci", Role::operator_, std::string(64, '1'), 5});
  db.put_token({"ci", Role::viewer, std::string(64, '2'), 6});
  const auto tokens = db.tokens();
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].role, Role::viewer);
  EXPECT_EQ(tokens[0].sha256, std::string(64, '2'));
  EXPECT_TRUE(db.delete_token("ci"));
  EXPECT_FALSE(db.delete_token("ci"));
  EXPECT_TRUE(db.tokens().empty());
}

}  // namespace
}  // namespace probefarm::server

namespace probefarm::server {
namespace {

TEST(StoreDatabase, SessionRowsHaveNoJobAndSayWhatWasDone) {
  TempDir dir;
  Database db(dir.path() / "p.db");
  const Job a = run_job(db, "ci", "PFSIM01", JobState::succeeded);
  AuditRow row;
  row.who = "alice";
  row.probe = "PFSIM01";
  row.operation = "gdb";
  row.result = "succeeded";
  row.detail = "gdb session, 12.5 s: load 2 regions (1024 bytes)";
  const std::int64_t id = db.add_audit(row);
  auto rows = db.list_audit({});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].id, id);
  EXPECT_EQ(rows[0].job_id, 0);
  EXPECT_EQ(rows[0].detail, row.detail);
  EXPECT_GT(rows[0].at, 0);
  EXPECT_EQ(rows[1].job_id, a.id);
  EXPECT_TRUE(to_json(rows[0])["job_id"].is_null());
  const std::string csv = db.audit_csv({});
  EXPECT_NE(csv.find("\r\n" + std::to_string(id) + ",,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("gdb session"), std::string::npos);
}

TEST(StoreDatabase, VersionOneAuditRowsSurviveTheMigration) {
  TempDir dir;
  const auto path = dir.path() / "p.db";
  std::int64_t job_id = 0;
  {
    Database db(path);
    job_id = run_job(db, "ci", "PFSIM01", JobState::failed, JobError{"probe_io", "gone", ""}).id;
  }
  // Back to version 1: the old audit table (no detail or serial columns, job_id NOT NULL),
  // no counters, no serial number on jobs.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  const char* downgrade = R"sql(
    DROP TABLE counters;
    ALTER TABLE jobs DROP COLUMN serial_value;
    CREATE TABLE audit_v1 AS SELECT id, job_id, at, who, probe, target_uid, chip, image_sha256,
      operation, operations, result, durations, bytes_programmed, image_bytes, error FROM audit;
    DROP TABLE audit;
    ALTER TABLE audit_v1 RENAME TO audit;
    PRAGMA user_version=1;
  )sql";
  ASSERT_EQ(sqlite3_exec(raw, downgrade, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  Database db(path);
  auto rows = db.list_audit({});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].job_id, job_id);
  EXPECT_EQ(rows[0].error, "gone");
  EXPECT_EQ(rows[0].detail, "");
  EXPECT_FALSE(rows[0].serial_value);
  AuditRow session;
  session.who = "bob";
  session.operation = "console";
  EXPECT_GT(db.add_audit(session), rows[0].id);
}

}  // namespace
}  // namespace probefarm::server
