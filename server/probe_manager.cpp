#include "server/probe_manager.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "probe/error.hpp"
#include "probe/hotplug.hpp"
#include "probe/usb_libusb.hpp"
#include "server/config.hpp"
#include "server/database.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"
#include "server/probe_actor.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {

using nlohmann::json;

std::optional<ProbeAction> parse_probe_action(std::string_view name) {
  if (name == "reset") return ProbeAction::reset;
  if (name == "reset_halt" || name == "reset-halt") return ProbeAction::reset_halt;
  if (name == "halt") return ProbeAction::halt;
  if (name == "resume") return ProbeAction::resume;
  if (name == "detect") return ProbeAction::detect;
  return std::nullopt;
}

ProbeManager::ProbeManager(const Config& config, Database& db, ImageStore& images,
                           Scheduler& scheduler, EventBus& bus, Metrics& metrics)
    : config_(config),
      db_(db),
      images_(images),
      scheduler_(scheduler),
      bus_(bus),
      metrics_(metrics) {
  metrics_.declare_gauge("probefarm_probes", "Probes by state.", [this] {
    double n[3] = {0, 0, 0};
    for (ProbeActor* a : actors())
      n[static_cast<int>(a->view().state)] += 1;
    std::vector<std::pair<Labels, double>> out;
    for (auto s : {ProbeState::idle, ProbeState::busy, ProbeState::offline})
      out.push_back({{{"state", std::string(probe_state_name(s))}}, n[static_cast<int>(s)]});
    return out;
  });
}

ProbeManager::~ProbeManager() {
  stop();
}

std::vector<ProbeActor*> ProbeManager::actors() const {
  std::lock_guard lock(mutex_);
  std::vector<ProbeActor*> out;
  for (const auto& [serial, actor] : actors_)
    out.push_back(actor.get());
  return out;
}

ProbeActor* ProbeManager::find(const std::string& serial) const {
  std::lock_guard lock(mutex_);
  auto it = actors_.find(serial);
  return it == actors_.end() ? nullptr : it->second.get();
}

ProbeActor& ProbeManager::ensure_actor(const probe::ProbeInfo& info) {
  {
    std::lock_guard lock(mutex_);
    auto it = actors_.find(info.serial);
    if (it != actors_.end()) return *it->second;
  }
  // The configuration file gives the defaults; names and labels set through the API
  // (the database) win.
  ProbeSettings settings;
  settings.speed_khz = config_.default_speed_khz;
  settings.connect_under_reset = config_.connect_under_reset;
  std::string name;
  std::vector<std::string> labels;
  if (auto it = config_.probes.find(info.serial); it != config_.probes.end()) {
    name = it->second.name;
    labels = it->second.labels;
    if (it->second.speed_khz) settings.speed_khz = *it->second.speed_khz;
    if (it->second.connect_under_reset)
      settings.connect_under_reset = *it->second.connect_under_reset;
  }
  try {
    for (const ProbeMeta& m : db_.probe_metas())
      if (m.serial == info.serial) {
        name = m.name;
        labels = m.labels;
      }
  } catch (const Error& e) {
    log_event(LogLevel::error, "probe.meta_unreadable",
              {{"serial", info.serial}, {"error", std::string(e.message())}});
  }
  auto actor =
      std::make_unique<ProbeActor>(info, settings, name, labels, scheduler_, images_, bus_);
  std::lock_guard lock(mutex_);
  auto [it, inserted] = actors_.emplace(info.serial, std::move(actor));
  if (inserted) it->second->start();
  return *it->second;
}

void ProbeManager::start() {
  {
    std::lock_guard lock(mutex_);
    if (poller_.joinable() || stopping_) return;
  }
  scheduler_.set_wakeup([this] {
    for (ProbeActor* a : actors())
      a->wake();
  });
  refresh();
  std::lock_guard lock(mutex_);
  poller_ = std::thread([this] { poll_loop(); });
}

void ProbeManager::refresh() {
  try {
    if (!watcher_) {
      // Its own context: listing opens and closes every probe to read its strings, and
      // that must not touch the handles the actors hold on the default context (the
      // simulator's stand-in libusb tracks opens per context connection).
      watcher_ = std::make_unique<probe::ProbeWatcher>(probe::make_libusb_context());
    } else {
      for (const auto& e : watcher_->refresh())
        log_event(LogLevel::debug, e.arrived ? "usb.arrived" : "usb.left",
                  {{"serial", e.probe.serial}, {"path", e.probe.path}});
    }
  } catch (const Error& e) {
    // The bus could not be listed this time; the next poll tries again.
    log_event(LogLevel::warn, "usb.list_failed", {{"error", std::string(e.message())}});
    if (!watcher_) return;
  }
  // Bring every actor in line with the listing rather than trusting single events: an
  // actor that marked itself offline (its job saw the probe vanish) comes back here even if
  // the probe returned between two polls on the same path.
  std::set<std::string> seen;
  for (const auto& info : watcher_->current()) {
    if (!seen.insert(info.serial).second) continue;  // the same serial twice: keep the first
    ensure_actor(info).present(info);
  }
  for (ProbeActor* a : actors())
    if (!seen.count(a->view().serial)) a->absent();
}

void ProbeManager::poll_loop() {
  const auto interval = std::chrono::milliseconds(std::max(10u, config_.poll_interval_ms));
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    cv_.wait_for(lock, interval, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    refresh();
    scheduler_.expire_queued(config_.queue_timeout_s);
    lock.lock();
  }
}

void ProbeManager::stop(std::chrono::milliseconds grace) {
  std::lock_guard stop_lock(stop_mutex_);
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  scheduler_.set_wakeup(nullptr);

  const auto all = actors();
  for (ProbeActor* a : all)
    a->request_stop();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (ProbeActor* a : all) {
    if (a->wait_exited(deadline)) continue;
    // Past the grace period: the job is recorded as interrupted now. Its actor stops at its
    // next progress point (Scheduler::progress says no for a job that is no longer live).
    auto id = a->current_job();
    if (!id) continue;
    auto job = scheduler_.get(*id);
    if (!job || job->state != JobState::running) continue;
    job->state = JobState::interrupted;
    job->error = JobError{"interrupted",
                          "probefarmd stopped during the job (it was still running " +
                              std::to_string(grace.count()) + " ms after the shutdown began)",
                          "check the target and submit the job again"};
    log_event(LogLevel::warn, "job.interrupted", {{"id", *id}, {"probe", job->probe}});
    scheduler_.finish(*job);
  }
  // Every hardware wait has a deadline, so these end.
  for (ProbeActor* a : all)
    a->join();
  std::lock_guard lock(mutex_);
  stopped_ = true;
}

std::vector<ProbeView> ProbeManager::list() const {
  std::vector<ProbeView> out;
  for (ProbeActor* a : actors()) {
    ProbeView v = a->view();
    v.queued_jobs = scheduler_.queued_for(v.serial);
    out.push_back(std::move(v));
  }
  return out;
}

std::optional<ProbeView> ProbeManager::get(const std::string& serial) const {
  ProbeActor* a = find(serial);
  if (!a) return std::nullopt;
  ProbeView v = a->view();
  v.queued_jobs = scheduler_.queued_for(serial);
  return v;
}

ProbeView ProbeManager::update_meta(const std::string& serial, std::optional<std::string> name,
                                    std::optional<std::vector<std::string>> labels) {
  ProbeActor* a = find(serial);
  if (!a)
    throw Error(ErrorCategory::probe_not_found, "no probe with serial '" + serial + "'",
                "list the probes (GET /api/v1/probes)");
  if (labels) {
    std::set<std::string> unique;
    for (const auto& l : *labels) {
      if (l.empty())
        throw Error(ErrorCategory::usage, "probe labels: a label must not be empty",
                    "drop the empty label");
      if (!unique.insert(l).second)
        throw Error(ErrorCategory::usage, "probe labels: '" + l + "' is given twice",
                    "give each label once");
    }
  }
  ProbeView current = a->view();
  ProbeMeta meta{serial, name.value_or(current.name), labels.value_or(current.labels)};
  db_.put_probe_meta(meta);
  a->set_meta(meta.name, meta.labels);
  ProbeView v = a->view();
  v.queued_jobs = scheduler_.queued_for(serial);
  return v;
}

void ProbeManager::action(const std::string& serial, ProbeAction action, ActionDone done) {
  ProbeActor* a = find(serial);
  if (!a) {
    done(nullptr, JobError{"probe_not_found", "no probe with serial '" + serial + "'",
                           "list the probes (GET /api/v1/probes)"});
    return;
  }
  a->post(action, std::move(done));
}

std::shared_ptr<ProbeSession> ProbeManager::open_session(const std::string& serial,
                                                         const std::string& kind,
                                                         const std::string& who,
                                                         JobError& refused) {
  ProbeActor* a = find(serial);
  if (!a) {
    refused = JobError{"probe_not_found", "no probe with serial '" + serial + "'",
                       "list the probes (GET /api/v1/probes)"};
    return nullptr;
  }
  return a->open_session(kind, who, refused);
}

std::optional<JobError> ProbeManager::session_refusal(const std::string& serial) const {
  if (!config_.refuse_jobs_during_session) return std::nullopt;
  ProbeActor* a = find(serial);
  if (!a) return std::nullopt;
  const ProbeView v = a->view();
  if (!v.session) return std::nullopt;
  return JobError{"busy",
                  "probe " + serial + " is held by a " + v.session->kind + " session of " +
                      v.session->who + ", and this daemon refuses jobs meanwhile",
                  "submit the job once the session has ended, or set \"session_jobs\": "
                  "\"wait\" in the config"};
}

bool ProbeManager::any_matches(const ProbeSelector& selector) const {
  for (ProbeActor* a : actors()) {
    const ProbeView v = a->view();
    if (matches(selector, v)) return true;
    // A chip selector cannot be judged on a probe whose target is not detected yet (just
    // plugged in, the daemon just started): it may well match once it is.
    if (!selector.chip.empty() && !v.target) {
      ProbeSelector without_chip = selector;
      without_chip.chip.clear();
      if (matches(without_chip, v)) return true;
    }
  }
  return false;
}

}  // namespace probefarm::server
