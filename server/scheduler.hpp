#pragma once
// The job queue. Jobs are stored (Database) before anyone is told about them, kept in
// memory while queued or running, and handed to probe actors: each probe runs the jobs
// naming its serial first in, first out, and a selector job ("any idle stm32f407vg") goes
// to the first eligible probe that asks. Cancellation of a queued job is immediate; a
// running job is cancelled at its next progress point by its actor.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/database.hpp"
#include "server/model.hpp"

namespace probefarm::server {

class EventBus;
class Metrics;

class Scheduler {
 public:
  Scheduler(Database& db, EventBus& bus, Metrics& metrics);

  // Stores the job (queued) and publishes "job.queued"; with a repeated idempotency key
  // returns the existing job (created == false) and publishes nothing. The spec must be
  // validated and its image resolved to a sha256 by the caller.
  Database::Inserted submit(const JobSpec& spec, const Principal& who,
                            const std::string& idempotency_key);
  // Startup: jobs a previous run left queued are queued again, in their original order.
  void restore();

  // Queued: cancelled at once (final, audit row, "job.finished"). Running: cancellation is
  // requested and the job ends "cancelled" when its actor next reports progress. Final:
  // unchanged. nullopt for an unknown id.
  std::optional<Job> cancel(std::int64_t id, const Principal& who);

  // The job with live progress when queued or running, else from the database.
  std::optional<Job> get(std::int64_t id);
  std::vector<Job> list(const JobFilter& filter);
  std::size_t queue_depth() const;  // queued jobs
  // Fails ("timeout") every queued job older than its queue_timeout_s, or than
  // `default_timeout_s` when it gives none. Called periodically (ProbeManager's poll).
  void expire_queued(std::uint32_t default_timeout_s);
  unsigned queued_for(const std::string& serial) const;  // queued jobs naming this serial

  // ---- probe actors ----
  // Called whenever a job is queued (or restored), so idle actors look again.
  void set_wakeup(std::function<void()> wakeup);
  // The next job `probe` may run (oldest first among those naming its serial and the
  // selector jobs it matches), already marked running in the database with the probe's
  // serial, chip and target UID; "job.started" published. nullopt when none.
  std::optional<Job> take(const ProbeView& probe);
  // Live progress; publishes "job.progress" at most every 100 ms per job, plus every phase
  // change. Returns false when cancellation was requested: the actor stops the job and
  // finishes it as cancelled.
  bool progress(std::int64_t id, std::string_view phase, std::uint64_t done, std::uint64_t total);
  bool cancel_requested(std::int64_t id) const;
  // A production counter (width and byte order of the value a job writes).
  std::optional<Counter> counter(const std::string& name) { return db_.get_counter(name); }
  // Final state: database (job row + audit row, one transaction), "job.finished", metrics
  // (probefarm_jobs_total{result}, probefarm_bytes_flashed_total).
  void finish(Job job);

 private:
  struct Live {
    Job job;
    bool cancel = false;
    std::string cancelled_by;  // who asked, for the final error text
    bool finishing = false;    // finish() has claimed it: a second finish() is ignored
    std::chrono::steady_clock::time_point last_progress{};
  };
  void wake();
  Database& db_;
  EventBus& bus_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::deque<std::int64_t> queue_;     // queued ids, oldest first
  std::map<std::int64_t, Live> live_;  // queued and running
  std::function<void()> wakeup_;
};

}  // namespace probefarm::server
