// Production serial-number counters in the database: creation and its checks, allocation in
// the transaction that starts a job, persistence, the audit row; the job-spec fields of
// guarded operations; writing a value into an image.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "probe/error.hpp"
#include "server/database.hpp"
#include "server/job_runner.hpp"
#include "temp_dir.hpp"

namespace probefarm::server {
namespace {

using nlohmann::json;
using test::TempDir;

Counter counter(const std::string& name, std::uint64_t start, std::uint64_t step, unsigned width,
                bool big = false) {
  Counter c;
  c.name = name;
  c.start = start;
  c.step = step;
  c.width = width;
  c.big_endian = big;
  c.created_by = "admin";
  return c;
}

JobSpec serial_spec(const std::string& name, std::uint32_t address = 0x08000100) {
  JobSpec s;
  s.operation = Operation::flash;
  s.probe.serial = "PFSIM01";
  s.image = "ab12";
  s.serial = SerialRequest{name, address};
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return std::string(e.message());
  }
  return "";
}

TEST(StoreCounters, CreateListGetAndRefuseBadOrDuplicateCounters) {
  TempDir dir;
  Database db(dir.path() / "pf.db");
  const Counter c = db.create_counter(counter("board-sn", 1000, 5, 4, true));
  EXPECT_EQ(c.next_value, 1000u);
  EXPECT_EQ(c.start, 1000u);
  EXPECT_TRUE(c.big_endian);
  EXPECT_GT(c.created_at, 0);
  db.create_counter(counter("a.first", 0, 1, 1));
  auto list = db.list_counters();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "a.first");
  EXPECT_EQ(list[1].name, "board-sn");
  EXPECT_FALSE(db.get_counter("nope"));

  EXPECT_NE(error_of([&] { db.create_counter(counter("board-sn", 0, 1, 4)); }).find("exists"),
            std::string::npos);
  EXPECT_NE(error_of([&] { db.create_counter(counter("w", 0, 1, 9)); }).find("1 to 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { db.create_counter(counter("s", 0, 0, 4)); }).find("step"),
            std::string::npos);
  EXPECT_NE(error_of([&] { db.create_counter(counter("big", 256, 1, 1)); }).find("does not fit"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { db.create_counter(counter("bad/name", 0, 1, 4)); }).find("not a counter name"),
      std::string::npos);
  EXPECT_EQ(db.list_counters().size(), 2u);
}

TEST(StoreCounters, StartingAJobAllocatesTheNextValueOnceAndItSurvivesReopening) {
  TempDir dir;
  std::set<std::uint64_t> seen;
  std::int64_t first_id = 0;
  {
    Database db(dir.path() / "pf.db");
    db.create_counter(counter("sn", 7, 3, 2));
    for (int i = 0; i < 5; ++i) {
      Job job = db.insert_job(serial_spec("sn"), "op", "").job;
      EXPECT_FALSE(job.serial_value);  // queued: nothing allocated yet
      auto v = db.mark_running(job.id, "PFSIM01", "chip", "uid", now_ms(), "sn");
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, 7u + 3u * static_cast<unsigned>(i));
      EXPECT_EQ(db.get_job(job.id)->serial_value, v);
      seen.insert(*v);
      if (!first_id) first_id = job.id;
    }
    // A job cancelled while queued allocates nothing.
    Job cancelled = db.insert_job(serial_spec("sn"), "op", "").job;
    cancelled.state = JobState::cancelled;
    db.finish_job(cancelled);
    EXPECT_EQ(db.get_counter("sn")->next_value, 22u);
  }
  Database db(dir.path() / "pf.db");
  EXPECT_EQ(db.get_counter("sn")->next_value, 22u);
  Job job = db.insert_job(serial_spec("sn"), "op", "").job;
  auto v = db.mark_running(job.id, "PFSIM01", "chip", "uid", now_ms(), "sn");
  EXPECT_EQ(v, 22u);
  EXPECT_FALSE(seen.count(*v));
  // The value stays with a job that ended badly, and its audit row shows it.
  Job failed = *db.get_job(first_id);
  failed.state = JobState::failed;
  failed.error = JobError{"probe_io", "gone", ""};
  db.finish_job(failed);
  EXPECT_EQ(db.get_job(first_id)->serial_value, 7u);
  AuditFilter f;
  auto rows = db.list_audit(f);
  bool found = false;
  for (const auto& r : rows)
    if (r.job_id == first_id) {
      found = true;
      EXPECT_EQ(r.serial_counter, "sn");
      EXPECT_EQ(r.serial_value, 7u);
      EXPECT_EQ(to_json(r)["serial_value"], 7);
    }
  EXPECT_TRUE(found);
  // Interrupted at startup: the value is recorded on the job and its audit row too.
  auto interrupted = db.interrupt_running_jobs();
  ASSERT_EQ(interrupted.size(), 5u);  // jobs 2..5 of the first run, and the one above
  for (const auto& r : db.list_audit(f)) {
    if (r.result == "interrupted") {
      EXPECT_TRUE(r.serial_value) << r.job_id;
    }
  }
}

TEST(StoreCounters, AMissingOrExhaustedCounterLeavesTheJobQueuedAndTheCounterAlone) {
  TempDir dir;
  Database db(dir.path() / "pf.db");
  db.create_counter(counter("tiny", 254, 1, 1));
  Job a = db.insert_job(serial_spec("tiny"), "op", "").job;
  Job b = db.insert_job(serial_spec("tiny"), "op", "").job;
  Job c = db.insert_job(serial_spec("tiny"), "op", "").job;
  EXPECT_EQ(db.mark_running(a.id, "P", "", "", now_ms(), "tiny"), 254u);
  EXPECT_EQ(db.mark_running(b.id, "P", "", "", now_ms(), "tiny"), 255u);
  EXPECT_NE(
      error_of([&] { db.mark_running(c.id, "P", "", "", now_ms(), "tiny"); }).find("exhausted"),
      std::string::npos);
  EXPECT_EQ(db.get_job(c.id)->state, JobState::queued);
  EXPECT_FALSE(db.get_job(c.id)->serial_value);
  EXPECT_EQ(db.get_counter("tiny")->next_value, 256u);
  Job d = db.insert_job(serial_spec("gone"), "op", "").job;
  EXPECT_NE(error_of([&] {
              db.mark_running(d.id, "P", "", "", now_ms(), "gone");
            }).find("does not exist"),
            std::string::npos);
  EXPECT_EQ(db.get_job(d.id)->state, JobState::queued);
}

TEST(StoreCounters, CounterBytesFollowWidthAndByteOrder) {
  EXPECT_EQ(counter_bytes(counter("x", 0, 1, 4), 0x11223344),
            (std::vector<std::uint8_t>{0x44, 0x33, 0x22, 0x11}));
  EXPECT_EQ(counter_bytes(counter("x", 0, 1, 3, true), 0x112233),
            (std::vector<std::uint8_t>{0x11, 0x22, 0x33}));
  EXPECT_EQ(counter_max(1), 255u);
  EXPECT_EQ(counter_max(8), ~std::uint64_t{0});
  const json j = to_json(counter("x", 10, 2, 2, true));
  EXPECT_EQ(j["endian"], "big");
  EXPECT_EQ(j["max_value"], 65535);
}

TEST(StoreCounters, PatchImageWritesIntoASegmentOrAddsOneInFlash) {
  flash::Image image;
  image.segments.push_back({0x08000000, std::vector<std::uint8_t>(64, 0xAA)});
  patch_image(image, 0x08000000, 0x100000, 0x08000010, {1, 2, 3, 4});
  ASSERT_EQ(image.segments.size(), 1u);
  EXPECT_EQ(image.segments[0].data[0x10], 1);
  EXPECT_EQ(image.segments[0].data[0x13], 4);
  EXPECT_EQ(image.segments[0].data[0x14], 0xAA);
  patch_image(image, 0x08000000, 0x100000, 0x08004000, {9, 8});
  ASSERT_EQ(image.segments.size(), 2u);
  EXPECT_EQ(image.segments[1].address, 0x08004000u);
  EXPECT_EQ(image.segments[1].data, (std::vector<std::uint8_t>{9, 8}));
  EXPECT_NE(error_of([&] {
              patch_image(image, 0x08000000, 0x100000, 0x0800003E, {1, 2, 3, 4});
            }).find("straddles"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              patch_image(image, 0x08000000, 0x100000, 0x20000000, {1});
            }).find("neither in the image nor in the chip's flash"),
            std::string::npos);
}

TEST(StoreCounters, JobSpecFieldsOfSerialNumbersAndGuardedOperations) {
  const json flash = {{"probe", {{"serial", "P1"}}},
                      {"image", "ab"},
                      {"serial", {{"counter", "sn"}, {"address", 0x08000100u}}}};
  JobSpec s = job_spec_from_json(flash);
  ASSERT_TRUE(s.serial);
  EXPECT_EQ(s.serial->counter, "sn");
  EXPECT_EQ(s.serial->address, 0x08000100u);
  EXPECT_EQ(job_spec_from_json(to_json(s)).serial->address, 0x08000100u);
  EXPECT_FALSE(s.guarded());
  EXPECT_FALSE(s.queue_timeout_s);

  json waits = flash;
  waits["queue_timeout_s"] = 90u;
  EXPECT_EQ(job_spec_from_json(to_json(job_spec_from_json(waits))).queue_timeout_s, 90u);
  for (unsigned bad : {0u, kMaxQueueTimeoutS + 1}) {
    waits["queue_timeout_s"] = bad;
    EXPECT_NE(error_of([&] { job_spec_from_json(waits); }).find("'queue_timeout_s' must be 1 to"),
              std::string::npos)
        << bad;
  }

  EXPECT_NE(error_of([] {
              job_spec_from_json({{"operation", "erase"},
                                  {"probe", {{"serial", "P1"}}},
                                  {"serial", {{"counter", "sn"}, {"address", 1u}}}});
            }).find("goes with 'flash' only"),
            std::string::npos);
  // A read without a range is a whole-flash backup.
  EXPECT_FALSE(job_spec_from_json({{"operation", "read"}, {"probe", {{"serial", "P1"}}}}).size);

  JobSpec ob = job_spec_from_json({{"operation", "option_bytes"},
                                   {"probe", {{"serial", "P1"}}},
                                   {"option_set", {{"nRST_STOP", "0"}}},
                                   {"confirm", "P1"}});
  EXPECT_TRUE(ob.guarded());
  EXPECT_EQ(ob.confirm, "P1");
  ASSERT_EQ(ob.option_set.size(), 1u);
  EXPECT_EQ(ob.option_set[0].second, "0");
  EXPECT_FALSE(
      job_spec_from_json({{"operation", "option_bytes"}, {"probe", {{"serial", "P1"}}}}).guarded());
  EXPECT_TRUE(
      job_spec_from_json({{"operation", "unlock"}, {"probe", {{"serial", "P1"}}}}).guarded());
  JobSpec wp = job_spec_from_json(
      {{"operation", "protect"}, {"probe", {{"serial", "P1"}}}, {"write_protect", false}});
  EXPECT_TRUE(wp.guarded());
  EXPECT_FALSE(wp.write_protect);
  EXPECT_FALSE(job_spec_from_json(to_json(wp)).write_protect);
  EXPECT_NE(error_of([] {
              job_spec_from_json(
                  {{"operation", "unlock"}, {"probe", {{"serial", "P1"}}}, {"confirm", true}});
            }).find("'confirm' must be the probe's serial"),
            std::string::npos);
}

}  // namespace
}  // namespace probefarm::server
