// The job queue without hardware: a temporary database, the event bus and made-up probes.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/database.hpp"
#include "server/event_bus.hpp"
#include "server/metrics.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Recorded {
  std::string type;
  std::optional<std::int64_t> job;
  json data;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/probefarm_sched.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    db_ = std::make_unique<Database>(dir_ / "probefarm.db");
    bus_.subscribe({}, [this](const std::shared_ptr<const Event>& e) {
      std::lock_guard lock(mu_);
      events_.push_back({e->type, e->job, json::parse(*e->text).at("data")});
    });
    sched_ = std::make_unique<Scheduler>(*db_, bus_, metrics_);
    sched_->set_wakeup([this] { ++wakeups_; });
  }
  void TearDown() override {
    sched_.reset();
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static JobSpec erase_on(const std::string& serial) {
    JobSpec s;
    s.operation = Operation::erase;
    s.probe.serial = serial;
    return s;
  }
  static JobSpec erase_on_chip(const std::string& chip, const std::string& label = "") {
    JobSpec s;
    s.operation = Operation::erase;
    s.probe.chip = chip;
    s.probe.label = label;
    return s;
  }
  static ProbeView probe(const std::string& serial, const std::string& chip,
                         ProbeState state = ProbeState::idle,
                         std::vector<std::string> labels = {}) {
    ProbeView p;
    p.serial = serial;
    p.state = state;
    p.labels = std::move(labels);
    TargetInfo t;
    t.chip = chip;
    t.unique_id = "0123456789ABCDEF01234567";
    p.target = t;
    return p;
  }
  std::int64_t submit(const JobSpec& spec, const std::string& who = "ci",
                      const std::string& key = "") {
    return sched_->submit(spec, Principal{who, Role::operator_}, key).job.id;
  }
  std::vector<Recorded> events_of(std::int64_t id, const std::string& type = "") {
    std::lock_guard lock(mu_);
    std::vector<Recorded> out;
    for (const auto& e : events_)
      if (e.job == id && (type.empty() || e.type == type)) out.push_back(e);
    return out;
  }

  fs::path dir_;
  std::unique_ptr<Database> db_;
  EventBus bus_;
  Metrics metrics_;
  std::unique_ptr<Scheduler> sched_;
  std::mutex mu_;
  std::vector<Recorded> events_;
  int wakeups_ = 0;
};

const std::string kF4 = "STM32F405/407/415/417";
const std::string kF1 = "STM32F10x medium-density";

TEST_F(SchedulerTest, JobsNamingASerialRunFirstInFirstOut) {
  const auto a1 = submit(erase_on("A"));
  const auto b1 = submit(erase_on("B"));
  const auto a2 = submit(erase_on("A"));
  EXPECT_EQ(sched_->queue_depth(), 3u);
  EXPECT_EQ(sched_->queued_for("A"), 2u);
  EXPECT_EQ(wakeups_, 3);

  auto first = sched_->take(probe("A", kF4));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, a1);
  EXPECT_EQ(first->state, JobState::running);
  // The job stays A's even while A is busy: it is not handed to B.
  EXPECT_EQ(sched_->take(probe("B", kF4))->id, b1);
  EXPECT_EQ(sched_->take(probe("A", kF4, ProbeState::busy))->id, a2);
  EXPECT_FALSE(sched_->take(probe("A", kF4)));
  EXPECT_EQ(sched_->queue_depth(), 0u);

  auto stored = db_->get_job(a1);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, JobState::running);
  EXPECT_EQ(stored->probe, "A");
  EXPECT_EQ(stored->chip, kF4);
  EXPECT_EQ(stored->target_uid, "0123456789ABCDEF01234567");
  EXPECT_GT(stored->started_at, 0);
}

TEST_F(SchedulerTest, OfflineProbeTakesNothing) {
  submit(erase_on("A"));
  EXPECT_FALSE(sched_->take(probe("A", kF4, ProbeState::offline)));
  EXPECT_EQ(sched_->queue_depth(), 1u);
}

TEST_F(SchedulerTest, SelectorJobGoesToTheFirstEligibleIdleProbe) {
  const auto own = submit(erase_on("F4-1"));
  const auto any_f4 = submit(erase_on_chip("stm32f407vg"));
  // The wrong chip never gets it; a busy probe of the right chip does not either.
  EXPECT_FALSE(sched_->take(probe("F1-1", kF1)));
  // Oldest first among the jobs this probe may run: its own job comes before the selector's.
  EXPECT_EQ(sched_->take(probe("F4-1", kF4))->id, own);
  EXPECT_FALSE(sched_->take(probe("F4-1", kF4, ProbeState::busy)));
  auto got = sched_->take(probe("F4-2", kF4));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, any_f4);
  EXPECT_EQ(got->probe, "F4-2");
  EXPECT_EQ(db_->get_job(any_f4)->probe, "F4-2");
}

TEST_F(SchedulerTest, LabelSelectorNeedsTheLabel) {
  const auto id = submit(erase_on_chip("stm32f4", "hil"));
  EXPECT_FALSE(sched_->take(probe("F4-1", kF4, ProbeState::idle, {"bench"})));
  EXPECT_FALSE(sched_->take(probe("F1-1", kF1, ProbeState::idle, {"hil"})));
  auto got = sched_->take(probe("F4-2", kF4, ProbeState::idle, {"bench", "hil"}));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, id);
}

TEST_F(SchedulerTest, CancelQueuedIsImmediateAndAudited) {
  const auto id = submit(erase_on("A"));
  auto job = sched_->cancel(id, Principal{"alice", Role::operator_});
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::cancelled);
  ASSERT_TRUE(job->error);
  EXPECT_EQ(job->error->category, "cancelled");
  EXPECT_EQ(job->error->message, "cancelled by alice");
  EXPECT_FALSE(sched_->take(probe("A", kF4)));
  EXPECT_EQ(sched_->queue_depth(), 0u);

  auto stored = db_->get_job(id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, JobState::cancelled);
  EXPECT_GT(stored->finished_at, 0);
  auto audit = db_->list_audit({});
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].job_id, id);
  EXPECT_EQ(audit[0].result, "cancelled");
  EXPECT_EQ(audit[0].error, "cancelled by alice");

  auto finished = events_of(id, "job.finished");
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].data["state"], "cancelled");
  EXPECT_NE(metrics_.render().find("probefarm_jobs_total{result=\"cancelled\"} 1"),
            std::string::npos)
      << metrics_.render();

  // Final jobs stay as they are; unknown ids are nullopt.
  EXPECT_EQ(sched_->cancel(id, Principal{"bob", Role::admin})->error->message,
            "cancelled by alice");
  EXPECT_FALSE(sched_->cancel(id + 100, Principal{"bob", Role::admin}));
  EXPECT_EQ(events_of(id, "job.finished").size(), 1u);
}

TEST_F(SchedulerTest, CancelRunningStopsAtTheNextProgressPoint) {
  const auto id = submit(erase_on("A"));
  auto job = sched_->take(probe("A", kF4));
  ASSERT_TRUE(job);
  EXPECT_TRUE(sched_->progress(id, "erase", 0, 100));
  EXPECT_FALSE(sched_->cancel_requested(id));

  auto seen = sched_->cancel(id, Principal{"bob", Role::operator_});
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->state, JobState::running);  // still running until its actor notices
  EXPECT_TRUE(sched_->cancel_requested(id));
  EXPECT_FALSE(sched_->progress(id, "erase", 10, 100));

  job->state = JobState::cancelled;
  job->error = JobError{"cancelled", "cancelled", ""};
  sched_->finish(*job);
  auto stored = db_->get_job(id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, JobState::cancelled);
  ASSERT_TRUE(stored->error);
  EXPECT_EQ(stored->error->message, "cancelled by bob");
  // A second finish (an actor late after an interruption) changes nothing.
  job->state = JobState::failed;
  sched_->finish(*job);
  EXPECT_EQ(db_->get_job(id)->state, JobState::cancelled);
  EXPECT_EQ(db_->list_audit({}).size(), 1u);
  EXPECT_EQ(events_of(id, "job.finished").size(), 1u);
}

TEST_F(SchedulerTest, IdempotencyKeyReturnsTheSameJob) {
  auto first = sched_->submit(erase_on("A"), Principal{"ci", Role::operator_}, "build-17");
  auto again = sched_->submit(erase_on("A"), Principal{"ci", Role::operator_}, "build-17");
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(first.job.id, again.job.id);
  EXPECT_EQ(sched_->queue_depth(), 1u);
  EXPECT_EQ(events_of(first.job.id, "job.queued").size(), 1u);
  // Another submitter's key is another job.
  auto other = sched_->submit(erase_on("A"), Principal{"nightly", Role::operator_}, "build-17");
  EXPECT_TRUE(other.created);
  EXPECT_NE(other.job.id, first.job.id);
}

TEST_F(SchedulerTest, RestoreRequeuesInOriginalOrder) {
  const auto j1 = submit(erase_on("A"));
  const auto j2 = submit(erase_on("A"));
  const auto j3 = submit(erase_on_chip("stm32f407vg"));
  ASSERT_EQ(sched_->take(probe("A", kF4))->id, j1);

  // A restart: a new scheduler over the same file, after the crash recovery step.
  sched_.reset();
  db_.reset();
  db_ = std::make_unique<Database>(dir_ / "probefarm.db");
  auto interrupted = db_->interrupt_running_jobs();
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0].id, j1);
  Metrics metrics;
  Scheduler sched(*db_, bus_, metrics);
  int woken = 0;
  sched.set_wakeup([&] { ++woken; });
  sched.restore();
  EXPECT_EQ(sched.queue_depth(), 2u);
  EXPECT_GE(woken, 1);
  const auto j4 = sched.submit(erase_on("A"), Principal{"ci", Role::operator_}, "").job.id;
  EXPECT_EQ(sched.take(probe("A", kF4))->id, j2);
  EXPECT_EQ(sched.take(probe("A", kF4))->id, j3);
  EXPECT_EQ(sched.take(probe("A", kF4))->id, j4);
  EXPECT_FALSE(sched.take(probe("A", kF4)));
}

TEST_F(SchedulerTest, PublishesTheJobLifecycle) {
  const auto id = submit(erase_on("A"));
  auto job = sched_->take(probe("A", kF4));
  ASSERT_TRUE(job);
  EXPECT_TRUE(sched_->progress(id, "erase", 0, 1000));
  for (std::uint64_t done = 10; done < 1000; done += 10)
    EXPECT_TRUE(sched_->progress(id, "erase", done, 1000));
  EXPECT_TRUE(sched_->progress(id, "erase", 1000, 1000));
  EXPECT_TRUE(sched_->progress(id, "verify", 0, 1000));
  auto live = sched_->get(id);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->phase, "verify");
  job->state = JobState::succeeded;
  job->result.bytes_programmed = 1234;
  sched_->finish(*job);

  auto all = events_of(id);
  ASSERT_GE(all.size(), 4u);
  EXPECT_EQ(all.front().type, "job.queued");
  EXPECT_EQ(all[1].type, "job.started");
  EXPECT_EQ(all[1].data["state"], "running");
  EXPECT_EQ(all[1].data["probe"], "A");
  EXPECT_EQ(all.back().type, "job.finished");
  EXPECT_EQ(all.back().data["state"], "succeeded");

  auto progress = events_of(id, "job.progress");
  // Throttled: not one event per call, but the phase starts and the 100% always come.
  ASSERT_GE(progress.size(), 3u);
  EXPECT_LT(progress.size(), 50u);
  for (const auto& p : progress) {
    EXPECT_EQ(p.data.size(), 5u) << p.data.dump();
    for (const char* key : {"id", "phase", "done", "total", "percent"})
      EXPECT_TRUE(p.data.contains(key)) << key;
  }
  EXPECT_EQ(progress[0].data["phase"], "erase");
  EXPECT_EQ(progress[0].data["done"], 0);
  const auto& full = progress[progress.size() - 2];
  EXPECT_EQ(full.data["done"], 1000);
  EXPECT_DOUBLE_EQ(full.data["percent"].get<double>(), 100.0);
  EXPECT_EQ(progress.back().data["phase"], "verify");

  const std::string m = metrics_.render();
  EXPECT_NE(m.find("probefarm_jobs_total{result=\"succeeded\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("probefarm_bytes_flashed_total 1234"), std::string::npos) << m;
  EXPECT_NE(m.find("probefarm_queue_depth 0"), std::string::npos) << m;
  // Progress of a job that is no longer live asks its actor to stop.
  EXPECT_FALSE(sched_->progress(id, "verify", 1, 1000));
}

}  // namespace
}  // namespace probefarm::server
