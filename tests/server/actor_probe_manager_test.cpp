// Probe actors on simulated boards: target detection, jobs through the whole stack, two
// boards at once, unplug and replug mid-job, quick actions. One probefarm-sim serves every
// test of this file (the process-wide libusb context connects to it once).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iomanip>
#include <iterator>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/sim_process.hpp"
#include "probe/error.hpp"
#include "server/config.hpp"
#include "server/database.hpp"
#include "server/event_bus.hpp"
#include "server/image_store.hpp"
#include "server/job_runner.hpp"
#include "server/metrics.hpp"
#include "server/probe_manager.hpp"
#include "server/probe_session.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kFlashBase = 0x08000000;

// Polls `pred` until it holds or 30 s passed.
bool wait_for(const std::function<bool()>& pred,
              std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v)
    b = static_cast<std::uint8_t>(rng());
  return v;
}

std::vector<std::uint8_t> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct ActionResult {
  json result;
  std::optional<JobError> error;
};

class ProbeManagerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_ = new test::SimProcess({"stm32f103c8:cmsis-dap-v2", "stm32f407vg:cmsis-dap-v2"},
                                {"--time-scale", "0"});
  }
  static void TearDownTestSuite() {
    delete sim_;
    sim_ = nullptr;
  }

  void SetUp() override {
    f1_ = sim_->serials().at(0);
    f4_ = sim_->serials().at(1);
    char tmpl[] = "/tmp/probefarm_actor.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_.poll_interval_ms = 50;
    config_.probes[f4_].labels = {"bench"};
    db_ = std::make_unique<Database>(dir_ / "probefarm.db");
    images_ = std::make_unique<ImageStore>(dir_ / "images", *db_);
    bus_.subscribe({}, [this](const std::shared_ptr<const Event>& e) {
      std::lock_guard lock(mu_);
      events_.push_back({e->type, e->probe, e->job, json::parse(*e->text).at("data")});
    });
    sched_ = std::make_unique<Scheduler>(*db_, bus_, metrics_);
    manager_ = std::make_unique<ProbeManager>(config_, *db_, *images_, *sched_, bus_, metrics_);
    manager_->start();
    ASSERT_TRUE(wait_for([&] { return ready(f1_) && ready(f4_); }))
        << "the simulated probes did not come up with a detected target";
  }

  void TearDown() override {
    manager_->stop(std::chrono::seconds(10));
    manager_.reset();
    sched_.reset();
    images_.reset();
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  bool ready(const std::string& serial) {
    auto v = manager_->get(serial);
    return v && v->state == ProbeState::idle && v->target;
  }

  std::string upload_bin(const std::vector<std::uint8_t>& bytes, const std::string& name,
                         std::uint32_t address = kFlashBase) {
    UploadParams p;
    p.name = name;
    p.format = "bin";
    p.bin_address = address;
    return images_->add(bytes, p, "tester").sha256;
  }

  std::int64_t submit(const JobSpec& spec) {
    return sched_->submit(spec, Principal{"tester", Role::operator_}, "").job.id;
  }

  static JobSpec flash_spec(const std::string& serial, const std::string& image) {
    JobSpec s;
    s.operation = Operation::flash;
    s.probe.serial = serial;
    s.image = image;
    return s;
  }

  static JobSpec read_spec(const std::string& serial, std::uint32_t address, std::uint32_t size) {
    JobSpec s;
    s.operation = Operation::read;
    s.probe.serial = serial;
    s.address = address;
    s.size = size;
    return s;
  }

  Job wait_final(std::int64_t id, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    std::optional<Job> job;
    EXPECT_TRUE(wait_for(
        [&] {
          job = sched_->get(id);
          return job && is_final(job->state);
        },
        timeout))
        << "job " << id << " did not finish";
    return job ? *job : Job{};
  }

  // The bytes a succeeded read job stored.
  // `named`: the bytes are new to the store, so the stored name is the read job's (the same
  // bytes uploaded before keep their first name: the store is content-addressed).
  std::vector<std::uint8_t> read_back(const std::string& serial, std::uint32_t address,
                                      std::uint32_t size, bool named = false) {
    Job job = wait_final(submit(read_spec(serial, address, size)));
    EXPECT_EQ(job.state, JobState::succeeded) << (job.error ? job.error->message : "");
    if (job.state != JobState::succeeded) return {};
    auto meta = images_->find(job.result.output_image);
    EXPECT_TRUE(meta);
    if (!meta) return {};
    if (named) {
      EXPECT_EQ(meta->name, "read-" + serial + "-0x" +
                                (std::ostringstream() << std::hex << std::uppercase << std::setw(8)
                                                      << std::setfill('0') << address)
                                    .str() +
                                "-" + std::to_string(size) + ".bin");
    }
    return file_bytes(images_->path_of(meta->sha256));
  }

  ActionResult act(const std::string& serial, ProbeAction action) {
    auto promise = std::make_shared<std::promise<ActionResult>>();
    auto future = promise->get_future();
    manager_->action(serial, action, [promise](json result, std::optional<JobError> error) {
      promise->set_value({std::move(result), std::move(error)});
    });
    if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "action did not complete";
      return {};
    }
    return future.get();
  }

  struct Recorded {
    std::string type, probe;
    std::optional<std::int64_t> job;
    json data;
  };
  std::vector<Recorded> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::size_t index_of(const std::string& type, std::optional<std::int64_t> job) {
    auto all = events();
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i].type == type && all[i].job == job) return i;
    return std::string::npos;
  }

  static test::SimProcess* sim_;
  std::string f1_, f4_;
  fs::path dir_;
  Config config_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<ImageStore> images_;
  EventBus bus_;
  Metrics metrics_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<ProbeManager> manager_;
  std::mutex mu_;
  std::vector<Recorded> events_;
};

test::SimProcess* ProbeManagerTest::sim_ = nullptr;

TEST_F(ProbeManagerTest, DetectsTheTargets) {
  auto f1 = manager_->get(f1_);
  ASSERT_TRUE(f1 && f1->target);
  EXPECT_EQ(f1->driver, "cmsis-dap-v2");
  EXPECT_FALSE(f1->firmware.empty());
  EXPECT_FALSE(f1->target_error);
  const TargetInfo& t = *f1->target;
  EXPECT_EQ(t.chip, "STM32F10x medium-density");
  EXPECT_EQ(t.dev_id, 0x410);
  EXPECT_NE(t.core.find("Cortex-M3"), std::string::npos) << t.core;
  EXPECT_EQ(t.flash_base, kFlashBase);
  EXPECT_EQ(t.flash_size, 64u * 1024);
  EXPECT_EQ(t.sectors, 64u);
  EXPECT_EQ(t.ram_base, 0x20000000u);
  EXPECT_GT(t.ram_size, 0u);
  EXPECT_EQ(t.rdp_level, 0);
  EXPECT_GT(t.speed_khz, 0u);
  ASSERT_EQ(t.unique_id.size(), 24u);

  // The UID is the three words at 0x1FFFF7E8 (RM0008 30.2), lowest address first.
  auto uid = read_back(f1_, 0x1FFFF7E8, 12, true);
  ASSERT_EQ(uid.size(), 12u);
  std::string expected;
  for (int w = 0; w < 3; ++w) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%02X%02X%02X%02X", uid[4 * w + 3], uid[4 * w + 2],
                  uid[4 * w + 1], uid[4 * w]);
    expected += buf;
  }
  EXPECT_EQ(t.unique_id, expected);

  auto f4 = manager_->get(f4_);
  ASSERT_TRUE(f4 && f4->target);
  EXPECT_EQ(f4->target->chip, "STM32F405/407/415/417");
  EXPECT_EQ(f4->target->flash_size, 1024u * 1024);
  EXPECT_EQ(f4->labels, std::vector<std::string>{"bench"});
  EXPECT_NE(f4->target->unique_id, t.unique_id);

  EXPECT_NE(index_of("probe.arrived", std::nullopt), std::string::npos);
  std::size_t arrivals = 0;
  for (const auto& e : events())
    if (e.type == "probe.arrived") {
      ++arrivals;
      EXPECT_EQ(e.data["state"], "idle");
      EXPECT_TRUE(e.data["target"].is_object());
    }
  EXPECT_EQ(arrivals, 2u);
  EXPECT_TRUE(manager_->any_matches(ProbeSelector{"", "stm32f103c8", ""}));
  EXPECT_TRUE(manager_->any_matches(ProbeSelector{"", "stm32f407vg", "bench"}));
  EXPECT_FALSE(manager_->any_matches(ProbeSelector{"", "stm32f746ng", ""}));
  EXPECT_NE(metrics_.render().find("probefarm_probes{state=\"idle\"} 2"), std::string::npos)
      << metrics_.render();
}

TEST_F(ProbeManagerTest, FlashJobPutsTheImageInFlash) {
  const auto bytes = random_bytes(20 * 1024, 1);
  const std::string sha = upload_bin(bytes, "app.bin");
  const auto id = submit(flash_spec(f1_, sha));
  Job job = wait_final(id);
  ASSERT_EQ(job.state, JobState::succeeded) << (job.error ? job.error->message : "");
  EXPECT_EQ(job.probe, f1_);
  EXPECT_EQ(job.chip, "STM32F10x medium-density");
  EXPECT_EQ(job.target_uid, manager_->get(f1_)->target->unique_id);
  EXPECT_TRUE(job.result.verified);
  EXPECT_EQ(job.result.image_bytes, bytes.size());
  EXPECT_GE(job.result.bytes_programmed, bytes.size());
  EXPECT_EQ(job.result.sectors_programmed + job.result.sectors_skipped, 20u);
  std::vector<std::string> phases;
  for (const auto& p : job.result.phases)
    phases.push_back(p.phase);
  for (const char* want : {"attach", "plan", "program", "verify"})
    EXPECT_NE(std::find(phases.begin(), phases.end(), want), phases.end()) << want;

  EXPECT_EQ(read_back(f1_, kFlashBase, static_cast<std::uint32_t>(bytes.size())), bytes);

  auto audit = db_->list_audit({});
  ASSERT_GE(audit.size(), 1u);
  bool found = false;
  for (const auto& row : audit)
    if (row.job_id == id) {
      found = true;
      EXPECT_EQ(row.result, "succeeded");
      EXPECT_EQ(row.probe, f1_);
      EXPECT_EQ(row.image_sha256, sha);
    }
  EXPECT_TRUE(found);
  EXPECT_NE(index_of("job.finished", id), std::string::npos);
  EXPECT_NE(metrics_.render().find("probefarm_bytes_flashed_total " +
                                   std::to_string(job.result.bytes_programmed)),
            std::string::npos)
      << metrics_.render();

  // The same image again: every sector's CRC matches, nothing is programmed.
  Job again = wait_final(submit(flash_spec(f1_, sha)));
  ASSERT_EQ(again.state, JobState::succeeded);
  EXPECT_EQ(again.result.sectors_skipped, 20u);
  EXPECT_EQ(again.result.bytes_programmed, 0u);
}

TEST_F(ProbeManagerTest, SelectorJobRunsOnTheMatchingBoard) {
  const std::string sha = upload_bin(random_bytes(4096, 2), "sel.bin");
  JobSpec spec = flash_spec("", sha);
  spec.probe.chip = "stm32f407vg";
  spec.probe.label = "bench";
  Job job = wait_final(submit(spec));
  ASSERT_EQ(job.state, JobState::succeeded) << (job.error ? job.error->message : "");
  EXPECT_EQ(job.probe, f4_);
}

TEST_F(ProbeManagerTest, TwoBoardsRunJobsAtOnce) {
  const std::string a = upload_bin(random_bytes(48 * 1024, 3), "a.bin");
  const std::string b = upload_bin(random_bytes(128 * 1024, 4), "b.bin");
  const auto ja = submit(flash_spec(f1_, a));
  const auto jb = submit(flash_spec(f4_, b));
  Job fa = wait_final(ja), fb = wait_final(jb);
  ASSERT_EQ(fa.state, JobState::succeeded) << (fa.error ? fa.error->message : "");
  ASSERT_EQ(fb.state, JobState::succeeded) << (fb.error ? fb.error->message : "");
  // Both started before either finished: they ran at the same time.
  const auto started_a = index_of("job.started", ja), started_b = index_of("job.started", jb);
  const auto done_a = index_of("job.finished", ja), done_b = index_of("job.finished", jb);
  ASSERT_NE(started_a, std::string::npos);
  ASSERT_NE(started_b, std::string::npos);
  EXPECT_LT(std::max(started_a, started_b), std::min(done_a, done_b));
}

TEST_F(ProbeManagerTest, UnplugMidJobFailsItAndReplugBringsTheProbeBack) {
  const auto bytes = random_bytes(512 * 1024, 5);
  const std::string sha = upload_bin(bytes, "big.bin");
  const auto id = submit(flash_spec(f4_, sha));
  ASSERT_TRUE(wait_for([&] {
    auto j = sched_->get(id);
    return j && (is_final(j->state) || (j->phase == "program" && j->done > 0));
  }));
  ASSERT_EQ(sim_->ctl({"unplug", f4_}), 0);
  Job job = wait_final(id);
  ASSERT_EQ(job.state, JobState::failed) << "the job ended before the unplug";
  ASSERT_TRUE(job.error);
  EXPECT_EQ(job.error->category, "probe_io");
  EXPECT_NE(job.error->message.find("probe " + f4_ + " was unplugged"), std::string::npos)
      << job.error->message;
  EXPECT_NE(job.error->message.find("during"), std::string::npos) << job.error->message;
  ASSERT_TRUE(wait_for([&] { return manager_->get(f4_)->state == ProbeState::offline; }));
  bool left = false;
  for (const auto& e : events())
    left = left || (e.type == "probe.left" && e.probe == f4_);
  EXPECT_TRUE(left) << "no probe.left event";
  // A job queued meanwhile waits for the probe; an action is refused.
  auto refused = act(f4_, ProbeAction::halt);
  ASSERT_TRUE(refused.error);
  EXPECT_EQ(refused.error->category, "probe_io");

  const std::string small = upload_bin(random_bytes(8 * 1024, 6), "small.bin");
  const auto next = submit(flash_spec(f4_, small));
  ASSERT_EQ(sim_->ctl({"replug", f4_}), 0);
  ASSERT_TRUE(wait_for([&] { return ready(f4_) || is_final(sched_->get(next)->state); }));
  Job after = wait_final(next);
  ASSERT_EQ(after.state, JobState::succeeded) << (after.error ? after.error->message : "");
  EXPECT_TRUE(after.result.verified);
}

TEST_F(ProbeManagerTest, QuickActions) {
  // The demo firmware, running: reset vectors and halting mean something.
  const fs::path elf = fs::path(PROBEFARM_FIRMWARE_DIR) / "demo_stm32f103c8.elf";
  UploadParams p;
  p.name = "demo.elf";
  ImageMeta demo = images_->add(file_bytes(elf), p, "tester");
  ASSERT_TRUE(demo.entry);
  JobSpec spec = flash_spec(f1_, demo.sha256);
  spec.reset = true;
  Job flashed = wait_final(submit(spec));
  ASSERT_EQ(flashed.state, JobState::succeeded) << (flashed.error ? flashed.error->message : "");

  auto halted = act(f1_, ProbeAction::halt);
  ASSERT_FALSE(halted.error) << halted.error->message;
  EXPECT_EQ(halted.result["was_halted"], false);
  EXPECT_EQ(halted.result["halted"], true);
  EXPECT_TRUE(halted.result["pc"].is_number());
  // The halt outlived the probe being closed: resume finds the core halted.
  auto resumed = act(f1_, ProbeAction::resume);
  ASSERT_FALSE(resumed.error) << resumed.error->message;
  EXPECT_EQ(resumed.result["was_halted"], true);
  EXPECT_EQ(resumed.result["halted"], false);

  auto reset_halt = act(f1_, ProbeAction::reset_halt);
  ASSERT_FALSE(reset_halt.error) << reset_halt.error->message;
  EXPECT_EQ(reset_halt.result["halted"], true);
  EXPECT_EQ(reset_halt.result["pc"].get<std::uint32_t>(), *demo.entry & ~1u);
  auto reset = act(f1_, ProbeAction::reset);
  ASSERT_FALSE(reset.error) << reset.error->message;
  EXPECT_EQ(reset.result["halted"], false);

  auto detect = act(f1_, ProbeAction::detect);
  ASSERT_FALSE(detect.error) << detect.error->message;
  EXPECT_EQ(detect.result["chip"], "STM32F10x medium-density");

  auto unknown = act("NO-SUCH-PROBE", ProbeAction::reset);
  ASSERT_TRUE(unknown.error);
  EXPECT_EQ(unknown.error->category, "probe_not_found");
}

TEST_F(ProbeManagerTest, ActionOnABusyProbeIsRefusedAndARunningJobCanBeCancelled) {
  const std::string sha = upload_bin(random_bytes(512 * 1024, 7), "long.bin");
  JobSpec spec = flash_spec(f4_, sha);
  spec.skip_unchanged = false;
  const auto id = submit(spec);
  ASSERT_TRUE(wait_for([&] {
    auto v = manager_->get(f4_);
    return v && v->current_job == id;
  }));
  auto busy = act(f4_, ProbeAction::reset);
  ASSERT_TRUE(busy.error);
  EXPECT_EQ(busy.error->category, "busy");
  EXPECT_EQ(busy.error->message, "probe " + f4_ + " is running job " + std::to_string(id));
  EXPECT_EQ(manager_->get(f4_)->state, ProbeState::busy);

  auto seen = sched_->cancel(id, Principal{"carol", Role::operator_});
  ASSERT_TRUE(seen);
  Job job = wait_final(id);
  ASSERT_EQ(job.state, JobState::cancelled);
  ASSERT_TRUE(job.error);
  EXPECT_EQ(job.error->message, "cancelled by carol");
  ASSERT_TRUE(wait_for([&] { return manager_->get(f4_)->state == ProbeState::idle; }));
}

TEST_F(ProbeManagerTest, ASessionHoldsTheProbeAndJobsWaitForIt) {
  JobError refused;
  auto session = manager_->open_session(f1_, "gdb", "alice", refused);
  ASSERT_TRUE(session) << refused.message;
  auto view = manager_->get(f1_);
  EXPECT_EQ(view->state, ProbeState::busy);
  ASSERT_TRUE(view->session);
  EXPECT_EQ(view->session->kind, "gdb");
  EXPECT_EQ(view->session->who, "alice");

  // One connection for the whole session: a halt stays in force between calls.
  session->run([](ProbeConnection& c) { c.target->core().halt(); });
  bool halted = false;
  std::uint32_t pc = 0;
  session->run([&](ProbeConnection& c) {
    halted = c.target->core().is_halted();
    pc = c.target->core().read_register(protocol::CoreRegister::pc);
  });
  EXPECT_TRUE(halted);
  EXPECT_NE(pc, 0u);
  // An error thrown by the call reaches the caller, and the session goes on.
  EXPECT_THROW(session->run([](ProbeConnection&) { throw Error(ErrorCategory::usage, "no"); }),
               Error);

  JobError second;
  EXPECT_FALSE(manager_->open_session(f1_, "console", "bob", second));
  EXPECT_EQ(second.category, "busy");
  EXPECT_EQ(second.message, "probe " + f1_ + " is held by a gdb session of alice");
  auto action = act(f1_, ProbeAction::reset);
  ASSERT_TRUE(action.error);
  EXPECT_EQ(action.error->message, "probe " + f1_ + " is held by a gdb session of alice");

  // A job for the probe waits until the session ends, then runs.
  const auto id = submit(read_spec(f1_, kFlashBase, 1024));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(sched_->get(id)->state, JobState::queued);
  session->close();
  EXPECT_THROW(session->run([](ProbeConnection&) {}), Error);
  EXPECT_EQ(wait_final(id).state, JobState::succeeded);
  EXPECT_FALSE(manager_->get(f1_)->session);
  EXPECT_FALSE(manager_->session_refusal(f1_)) << "waiting is the default";
}

TEST_F(ProbeManagerTest, SessionJobsRefuseSaysWhoHoldsTheProbe) {
  manager_->stop(std::chrono::seconds(10));
  config_.refuse_jobs_during_session = true;
  manager_ = std::make_unique<ProbeManager>(config_, *db_, *images_, *sched_, bus_, metrics_);
  manager_->start();
  ASSERT_TRUE(wait_for([&] { return ready(f1_); }));
  EXPECT_FALSE(manager_->session_refusal(f1_));
  JobError refused;
  auto session = manager_->open_session(f1_, "console", "dave", refused);
  ASSERT_TRUE(session) << refused.message;
  auto held = manager_->session_refusal(f1_);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->category, "busy");
  EXPECT_EQ(held->message, "probe " + f1_ +
                               " is held by a console session of dave, and this daemon refuses "
                               "jobs meanwhile");
  EXPECT_FALSE(manager_->session_refusal(f4_));
  session->close();
  ASSERT_TRUE(wait_for([&] { return !manager_->session_refusal(f1_); }));
}

TEST_F(ProbeManagerTest, UnplugEndsASession) {
  JobError refused;
  auto session = manager_->open_session(f4_, "console", "carol", refused);
  ASSERT_TRUE(session) << refused.message;
  session->run([](ProbeConnection& c) { c.target->core().halt(); });
  ASSERT_EQ(sim_->ctl({"unplug", f4_}), 0);
  ASSERT_TRUE(wait_for([&] { return session->closed(); }));
  EXPECT_EQ(session->end_reason(), "probe " + f4_ + " was unplugged");
  try {
    session->run([](ProbeConnection&) {});
    ADD_FAILURE() << "a call after the unplug ran";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_io);
    EXPECT_NE(std::string(e.message()).find("was unplugged"), std::string::npos) << e.message();
  }
  ASSERT_EQ(sim_->ctl({"replug", f4_}), 0);
  ASSERT_TRUE(wait_for([&] { return ready(f4_); }));
  EXPECT_FALSE(manager_->get(f4_)->session);
}

TEST_F(ProbeManagerTest, NamesAndLabelsPersist) {
  auto v =
      manager_->update_meta(f1_, std::string("bench-1"), std::vector<std::string>{"f1", "hil"});
  EXPECT_EQ(v.name, "bench-1");
  EXPECT_EQ(v.labels, (std::vector<std::string>{"f1", "hil"}));
  bool stored = false;
  for (const auto& m : db_->probe_metas())
    if (m.serial == f1_) {
      stored = true;
      EXPECT_EQ(m.name, "bench-1");
    }
  EXPECT_TRUE(stored);
  try {
    manager_->update_meta(f1_, std::nullopt, std::vector<std::string>{"a", "a"});
    ADD_FAILURE() << "a repeated label was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::usage);
  }
  EXPECT_THROW(manager_->update_meta("NO-SUCH", std::string("x"), std::nullopt), Error);
  EXPECT_EQ(manager_->get(f1_)->labels, (std::vector<std::string>{"f1", "hil"}));
}

TEST_F(ProbeManagerTest, StopInterruptsJobsPastTheGracePeriod) {
  const std::string sha = upload_bin(random_bytes(512 * 1024, 8), "stop.bin");
  JobSpec spec = flash_spec(f4_, sha);
  spec.skip_unchanged = false;
  const auto id = submit(spec);
  ASSERT_TRUE(wait_for([&] {
    auto j = sched_->get(id);
    return j && j->state == JobState::running && j->done > 0;
  }));
  manager_->stop(std::chrono::milliseconds(0));
  auto job = db_->get_job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->state, JobState::interrupted);
  ASSERT_TRUE(job->error);
  EXPECT_NE(job->error->message.find("stopped during the job"), std::string::npos);
}

}  // namespace
}  // namespace probefarm::server
