#include "server/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "probe/error.hpp"
#include "server/event_bus.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"

namespace probefarm::server {

using nlohmann::json;

namespace {

constexpr auto kProgressInterval = std::chrono::milliseconds(100);

json progress_json(std::int64_t id, std::string_view phase, std::uint64_t done,
                   std::uint64_t total) {
  const double percent =
      total ? std::round(1000.0 * static_cast<double>(done) / static_cast<double>(total)) / 10
            : 0.0;
  return {{"id", id}, {"phase", phase}, {"done", done}, {"total", total}, {"percent", percent}};
}

}  // namespace

Scheduler::Scheduler(Database& db, EventBus& bus, Metrics& metrics)
    : db_(db), bus_(bus), metrics_(metrics) {
  metrics_.declare_counter("probefarm_jobs_total", "Jobs finished, by final state.");
  metrics_.declare_counter("probefarm_bytes_flashed_total",
                           "Bytes streamed into flash by finished jobs.");
  // Read at scrape time without holding the metrics lock inside ours (no lock-order cycle:
  // this class never calls Metrics while holding mutex_).
  metrics_.declare_gauge("probefarm_queue_depth", "Jobs waiting in the queue.", [this] {
    return std::vector<std::pair<Labels, double>>{{{}, static_cast<double>(queue_depth())}};
  });
}

void Scheduler::wake() {
  std::function<void()> wakeup;
  {
    std::lock_guard lock(mutex_);
    wakeup = wakeup_;
  }
  if (wakeup) wakeup();
}

Database::Inserted Scheduler::submit(const JobSpec& spec, const Principal& who,
                                     const std::string& idempotency_key) {
  Database::Inserted ins = db_.insert_job(spec, who.name, idempotency_key);
  if (!ins.created) {
    // A retried request: the caller gets the job as it is now, live progress included.
    if (auto live = get(ins.job.id)) ins.job = *live;
    return ins;
  }
  {
    std::lock_guard lock(mutex_);
    Live live;
    live.job = ins.job;
    live_[ins.job.id] = std::move(live);
    queue_.push_back(ins.job.id);
  }
  log_event(LogLevel::info, "job.queued",
            {{"id", ins.job.id}, {"operation", operation_name(spec.operation)}, {"by", who.name}});
  bus_.publish("job.queued", spec.probe.serial, ins.job.id, to_json(ins.job));
  wake();
  return ins;
}

void Scheduler::restore() {
  std::size_t restored = 0;
  for (Job& job : db_.jobs_in_state(JobState::queued)) {
    std::lock_guard lock(mutex_);
    if (live_.count(job.id)) continue;
    const std::int64_t id = job.id;
    Live live;
    live.job = std::move(job);
    live_[id] = std::move(live);
    queue_.push_back(id);
    ++restored;
  }
  // jobs_in_state is oldest first; ids grow with submission, so keeping the queue sorted
  // also places restored jobs before anything submitted meanwhile.
  {
    std::lock_guard lock(mutex_);
    std::sort(queue_.begin(), queue_.end());
  }
  if (restored) log_event(LogLevel::info, "jobs.restored", {{"count", restored}});
  wake();
}

std::optional<Job> Scheduler::cancel(std::int64_t id, const Principal& who) {
  std::optional<Job> queued_job;
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      Live& live = it->second;
      if (live.job.state == JobState::running) {
        live.cancel = true;
        if (live.cancelled_by.empty()) live.cancelled_by = who.name;
        return live.job;
      }
      if (live.finishing) return live.job;
      queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
      live.job.state = JobState::cancelled;
      live.job.error = JobError{"cancelled", "cancelled by " + who.name, ""};
      live.job.finished_at = now_ms();
      queued_job = live.job;
    }
  }
  if (queued_job) {
    finish(*queued_job);
    return get(id);
  }
  return db_.get_job(id);
}

std::optional<Job> Scheduler::get(std::int64_t id) {
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    if (it != live_.end()) return it->second.job;
  }
  return db_.get_job(id);
}

std::vector<Job> Scheduler::list(const JobFilter& filter) {
  std::vector<Job> jobs = db_.list_jobs(filter);
  std::lock_guard lock(mutex_);
  for (Job& job : jobs) {
    auto it = live_.find(job.id);
    if (it != live_.end()) job = it->second.job;
  }
  return jobs;
}

namespace {

std::string describe(const ProbeSelector& sel) {
  if (sel.by_serial()) return "probe " + sel.serial;
  std::string s = "an idle probe";
  if (!sel.chip.empty()) s += " with a " + sel.chip;
  if (!sel.label.empty()) s += " labelled '" + sel.label + "'";
  return s;
}

}  // namespace

void Scheduler::expire_queued(std::uint32_t default_timeout_s) {
  std::vector<Job> expired;
  {
    std::lock_guard lock(mutex_);
    const std::int64_t now = now_ms();
    for (auto pos = queue_.begin(); pos != queue_.end();) {
      Live& live = live_.at(*pos);
      Job& job = live.job;
      const std::uint32_t timeout = job.spec.queue_timeout_s.value_or(default_timeout_s);
      if (live.finishing || now - job.created_at < std::int64_t{timeout} * 1000) {
        ++pos;
        continue;
      }
      job.state = JobState::failed;
      job.error = JobError{
          "timeout",
          "job " + std::to_string(job.id) + " was not started within " + std::to_string(timeout) +
              " s: " + describe(job.spec.probe) + " did not become free to take it",
          "'probefarm list' shows whether it is offline, busy or held by a GDB or console "
          "session; give the job a longer \"queue_timeout_s\" (CLI: --queue-timeout) to wait "
          "longer"};
      job.finished_at = now;
      expired.push_back(job);
      pos = queue_.erase(pos);
    }
  }
  for (Job& job : expired)
    finish(std::move(job));
}

std::size_t Scheduler::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

unsigned Scheduler::queued_for(const std::string& serial) const {
  std::lock_guard lock(mutex_);
  unsigned n = 0;
  for (std::int64_t id : queue_) {
    auto it = live_.find(id);
    if (it != live_.end() && it->second.job.spec.probe.serial == serial) ++n;
  }
  return n;
}

void Scheduler::set_wakeup(std::function<void()> wakeup) {
  std::lock_guard lock(mutex_);
  wakeup_ = std::move(wakeup);
}

std::optional<Job> Scheduler::take(const ProbeView& probe) {
  if (probe.state == ProbeState::offline) return std::nullopt;
  Job job;
  std::optional<Job> refused;  // its serial number could not be allocated
  {
    std::lock_guard lock(mutex_);
    auto pos = std::find_if(queue_.begin(), queue_.end(), [&](std::int64_t id) {
      const Live& live = live_.at(id);
      const ProbeSelector& sel = live.job.spec.probe;
      // A selector job waits for an idle probe; a job naming the serial is this probe's own.
      if (!sel.by_serial() && probe.state != ProbeState::idle) return false;
      return matches(sel, probe);
    });
    if (pos == queue_.end()) return std::nullopt;
    const std::int64_t id = *pos;
    Live& live = live_.at(id);
    const std::string chip = probe.target ? probe.target->chip : "";
    const std::string uid = probe.target ? probe.target->unique_id : "";
    const std::int64_t started = now_ms();
    // Marked in the database before anyone is told, under the lock so that a cancel cannot
    // slip between "taken" and "running".
    // The production serial number is allocated in the transaction that marks the job
    // running: once committed it belongs to this job, even if the daemon dies next.
    const std::string counter = live.job.spec.serial ? live.job.spec.serial->counter : "";
    try {
      live.job.serial_value = db_.mark_running(id, probe.serial, chip, uid, started, counter);
    } catch (const Error& e) {
      // A missing or exhausted counter fails the job before it touches the probe; any
      // other database error is the caller's (the actor retries later).
      if (e.category() != ErrorCategory::usage) throw;
      queue_.erase(pos);
      live.job.state = JobState::failed;
      live.job.probe = probe.serial;
      live.job.error = JobError{"usage", std::string(e.message()), e.hint()};
      live.job.finished_at = now_ms();
      refused = live.job;
    }
    if (!refused) {
      queue_.erase(pos);
      live.job.state = JobState::running;
      live.job.probe = probe.serial;
      live.job.chip = chip;
      live.job.target_uid = uid;
      live.job.started_at = started;
      job = live.job;
    }
  }
  if (refused) {
    finish(*refused);
    return take(probe);
  }
  log_event(LogLevel::info, "job.started", {{"id", job.id}, {"probe", job.probe}});
  bus_.publish("job.started", job.probe, job.id, to_json(job));
  return job;
}

bool Scheduler::progress(std::int64_t id, std::string_view phase, std::uint64_t done,
                         std::uint64_t total) {
  bool publish = false;
  bool keep_going = true;
  std::string serial;
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(id);
    // Not live: finished behind the actor's back (interrupted at shutdown). Stop it.
    if (it == live_.end()) return false;
    Live& live = it->second;
    Job& job = live.job;
    const auto now = std::chrono::steady_clock::now();
    const bool new_phase = job.phase != phase;
    const bool complete = total > 0 && done >= total;
    publish = new_phase || complete || now - live.last_progress >= kProgressInterval;
    job.phase = std::string(phase);
    job.done = done;
    job.total = total;
    if (publish) live.last_progress = now;
    keep_going = !live.cancel;
    serial = job.probe;
  }
  if (publish) bus_.publish("job.progress", serial, id, progress_json(id, phase, done, total));
  return keep_going;
}

bool Scheduler::cancel_requested(std::int64_t id) const {
  std::lock_guard lock(mutex_);
  auto it = live_.find(id);
  return it == live_.end() || it->second.cancel;
}

void Scheduler::finish(Job job) {
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(job.id);
    // Already final (an interrupted job whose actor ended later, a second cancel): the first
    // finish wrote the row and the audit entry; a second would log the job twice.
    if (it == live_.end() || it->second.finishing) return;
    it->second.finishing = true;
    if (job.state == JobState::cancelled && !it->second.cancelled_by.empty())
      job.error = JobError{"cancelled", "cancelled by " + it->second.cancelled_by, ""};
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job.id), queue_.end());
    // Keep the last progress the job reported: the API shows where it stopped.
    if (job.phase.empty()) {
      job.phase = it->second.job.phase;
      job.done = it->second.job.done;
      job.total = it->second.job.total;
    }
  }
  if (!is_final(job.state)) {
    log_event(LogLevel::error, "job.finish_not_final",
              {{"id", job.id}, {"state", job_state_name(job.state)}});
    job.state = JobState::failed;
    job.error = JobError{"internal", "job ended without a final state", ""};
  }
  if (job.finished_at == 0) job.finished_at = now_ms();
  try {
    db_.finish_job(job);
  } catch (const Error& e) {
    // The job is over whatever the database says; it stays visible as the caller saw it.
    log_event(LogLevel::error, "job.finish_store_failed",
              {{"id", job.id}, {"error", std::string(e.message())}});
  }
  {
    std::lock_guard lock(mutex_);
    live_.erase(job.id);
  }
  json fields = {{"id", job.id},
                 {"state", job_state_name(job.state)},
                 {"probe", job.probe},
                 {"bytes_programmed", job.result.bytes_programmed}};
  if (job.error) fields["error"] = job.error->message;
  log_event(job.state == JobState::succeeded ? LogLevel::info : LogLevel::warn, "job.finished",
            fields);
  bus_.publish("job.finished", job.probe, job.id, to_json(job));
  metrics_.add("probefarm_jobs_total", {{"result", std::string(job_state_name(job.state))}});
  if (job.result.bytes_programmed)
    metrics_.add("probefarm_bytes_flashed_total", {},
                 static_cast<double>(job.result.bytes_programmed));
}

}  // namespace probefarm::server
