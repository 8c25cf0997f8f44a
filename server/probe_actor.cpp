#include "server/probe_actor.hpp"

#include <nlohmann/json.hpp>
#include <utility>

#include "probe/error.hpp"
#include "server/event_bus.hpp"
#include "server/job_runner.hpp"
#include "server/log.hpp"
#include "server/probe_session.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {

using nlohmann::json;

namespace {

// The scheduler and hot-plug wake the actor; this only bounds how long a lost wakeup
// could delay a job.
constexpr auto kIdleWait = std::chrono::seconds(1);

JobError job_error(const Error& e) {
  return JobError{std::string(category_name(e.category())), std::string(e.message()), e.hint()};
}

void call_done(const ActionDone& done, json result, std::optional<JobError> error) {
  try {
    done(std::move(result), std::move(error));
  } catch (const std::exception& e) {
    log_event(LogLevel::error, "probe.action_callback_failed", {{"error", e.what()}});
  }
}

JobError held_error(const std::string& serial, const SessionHolder& holder) {
  return JobError{
      "busy", "probe " + serial + " is held by a " + holder.kind + " session of " + holder.who,
      "wait for the session to end (GET /api/v1/probes/" + serial + " shows who holds it)"};
}

}  // namespace

ProbeActor::ProbeActor(const probe::ProbeInfo& info, ProbeSettings settings, std::string name,
                       std::vector<std::string> labels, Scheduler& scheduler, ImageStore& images,
                       EventBus& bus)
    : scheduler_(scheduler), images_(images), bus_(bus), settings_(settings), info_(info) {
  view_.serial = info.serial;
  view_.driver = std::string(probe::probe_kind_name(info.kind));
  view_.vendor = info.vendor;
  view_.product = info.product;
  view_.firmware = info.firmware_version;
  view_.usb_path = info.path;
  view_.name = std::move(name);
  view_.labels = std::move(labels);
  view_.state = ProbeState::offline;
}

ProbeActor::~ProbeActor() {
  request_stop();
  join();
}

void ProbeActor::start() {
  thread_ = std::thread([this] { run(); });
}

void ProbeActor::present(const probe::ProbeInfo& info) {
  {
    std::lock_guard lock(mutex_);
    view_.last_seen = now_ms();
    if (online_ && info.path == info_.path) return;
    // Arrived, came back, or moved to another socket: detect the target again.
    const bool was_online = online_;
    info_ = info;
    view_.usb_path = info.path;
    online_ = true;
    detect_pending_ = true;
    if (!was_online)
      log_event(LogLevel::info, "probe.present", {{"serial", info.serial}, {"path", info.path}});
  }
  cv_.notify_all();
}

void ProbeActor::absent() {
  std::optional<std::int64_t> job;
  {
    std::lock_guard lock(mutex_);
    if (!online_) return;
    online_ = false;
    detect_pending_ = false;
    job = view_.current_job;
  }
  cv_.notify_all();
  log_event(LogLevel::warn, "probe.left",
            {{"serial", view_.serial}, {"running_job", job ? json(*job) : json(nullptr)}});
  publish_state();
  bus_.publish("probe.left", view_.serial, job, to_json(view()));
}

void ProbeActor::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  cv_.notify_all();
}

void ProbeActor::post(ProbeAction action, ActionDone done) {
  std::optional<JobError> refused;
  {
    std::lock_guard lock(mutex_);
    if (stop_)
      refused = JobError{"busy", "probefarmd is stopping", "try again once it has restarted"};
    else if (!online_)
      refused = JobError{"probe_io", "probe " + view_.serial + " is offline",
                         "plug the probe in again (GET /api/v1/probes shows its state)"};
    else if (view_.current_job)
      refused = JobError{
          "busy", "probe " + view_.serial + " is running job " + std::to_string(*view_.current_job),
          "wait for the job to finish, or cancel it"};
    else if (view_.session)
      refused = held_error(view_.serial, *view_.session);
    else
      mailbox_.push_back(Action{action, std::move(done)});
  }
  if (refused)
    call_done(done, nullptr, refused);
  else
    cv_.notify_all();
}

std::shared_ptr<ProbeSession> ProbeActor::open_session(const std::string& kind,
                                                       const std::string& who, JobError& refused) {
  std::shared_ptr<ProbeSession> session;
  {
    std::lock_guard lock(mutex_);
    if (stop_) {
      refused = JobError{"busy", "probefarmd is stopping", "try again once it has restarted"};
    } else if (!online_) {
      refused = JobError{"probe_io", "probe " + view_.serial + " is offline",
                         "plug the probe in again (GET /api/v1/probes shows its state)"};
    } else if (view_.session) {
      refused = held_error(view_.serial, *view_.session);
    } else if (view_.current_job) {
      refused = JobError{
          "busy", "probe " + view_.serial + " is running job " + std::to_string(*view_.current_job),
          "wait for the job to finish, or cancel it, then connect again"};
    } else if (in_action_ || detecting_ || detect_pending_ || !mailbox_.empty()) {
      refused = JobError{"busy", "probe " + view_.serial + " is busy with a quick action",
                         "connect again in a moment"};
    } else {
      session = std::make_shared<ProbeSession>(view_.serial, kind, who);
      session_ = session;
      view_.session = SessionHolder{kind, who, now_ms()};
      woken_ = true;
    }
  }
  if (!session) return nullptr;
  // Outside mutex_: the session calls the notifier under its own lock.
  session->attach([this] {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    cv_.notify_all();
  });
  cv_.notify_all();
  log_event(LogLevel::info, "session.opened",
            {{"serial", session->serial()}, {"kind", kind}, {"who", who}});
  publish_state();
  return session;
}

void ProbeActor::serve_session(ProbeSession& session) {
  probe::ProbeInfo info;
  {
    std::lock_guard lock(mutex_);
    info = info_;
  }
  ProbeSession::Task task;
  while (session.take(task)) {
    std::exception_ptr error;
    try {
      if (!session_conn_) {
        ConnectOptions co;
        co.speed_khz = settings_.speed_khz;
        co.connect_under_reset = settings_.connect_under_reset;
        co.halt = false;
        session_conn_ = std::make_unique<ProbeConnection>(connect_probe(*usb_, info, co));
      }
      task.work(*session_conn_);
    } catch (const Error& e) {
      // The link or the target failed: the next call connects afresh.
      if (e.category() == ErrorCategory::probe_io ||
          e.category() == ErrorCategory::target_not_responding ||
          e.category() == ErrorCategory::timeout)
        session_conn_.reset();
      error = std::current_exception();
    } catch (...) {
      error = std::current_exception();
    }
    ProbeSession::finish(task, error);
  }
}

void ProbeActor::release_session(std::unique_lock<std::mutex>& lock) {
  std::shared_ptr<ProbeSession> session = std::exchange(session_, nullptr);
  view_.session.reset();
  const std::string reason = !online_ ? "probe " + view_.serial + " was unplugged"
                             : stop_  ? "probefarmd is stopping"
                                      : "closed";
  lock.unlock();
  if (session) {
    session->end(reason);
    session->attach(nullptr);
    log_event(LogLevel::info, "session.closed",
              {{"serial", session->serial()},
               {"kind", session->kind()},
               {"who", session->who()},
               {"reason", session->end_reason()}});
  }
  session_conn_.reset();
  publish_state();
  // Jobs that waited for the session may run now.
  lock.lock();
  woken_ = true;
}

void ProbeActor::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
}

bool ProbeActor::wait_exited(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (!thread_.joinable()) return true;
  return cv_.wait_until(lock, deadline, [&] { return exited_; });
}

void ProbeActor::join() {
  if (thread_.joinable()) thread_.join();
}

ProbeView ProbeActor::view() const {
  std::lock_guard lock(mutex_);
  return view_locked();
}

std::optional<std::int64_t> ProbeActor::current_job() const {
  std::lock_guard lock(mutex_);
  return view_.current_job;
}

void ProbeActor::set_meta(std::string name, std::vector<std::string> labels) {
  {
    std::lock_guard lock(mutex_);
    view_.name = std::move(name);
    view_.labels = std::move(labels);
  }
  // A new label can make this probe eligible for a waiting selector job.
  wake();
}

ProbeState ProbeActor::state_locked() const {
  if (!online_) return ProbeState::offline;
  if (view_.current_job || detecting_ || detect_pending_ || in_action_ || session_)
    return ProbeState::busy;
  return ProbeState::idle;
}

ProbeView ProbeActor::view_locked() const {
  ProbeView v = view_;
  v.state = state_locked();
  return v;
}

void ProbeActor::publish_state() {
  std::lock_guard order(publish_mutex_);
  ProbeView v;
  {
    std::lock_guard lock(mutex_);
    v = view_locked();
    if (published_state_ == v.state) return;
    published_state_ = v.state;
  }
  bus_.publish("probe.state", v.serial, v.current_job,
               {{"serial", v.serial},
                {"state", probe_state_name(v.state)},
                {"current_job", v.current_job ? json(*v.current_job) : json(nullptr)}});
}

void ProbeActor::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (session_ && !online_) {
      release_session(lock);
      continue;
    }
    if (session_) {
      std::shared_ptr<ProbeSession> session = session_;
      woken_ = false;
      lock.unlock();
      serve_session(*session);
      lock.lock();
      if (session->closed()) {
        release_session(lock);
        continue;
      }
      if (!stop_) cv_.wait_for(lock, kIdleWait, [&] { return stop_ || woken_ || !online_; });
      continue;
    }
    if (!online_) {
      // Whatever was queued for the probe before it left cannot run.
      std::deque<Action> dropped;
      dropped.swap(mailbox_);
      lock.unlock();
      for (auto& a : dropped)
        call_done(a.done, nullptr,
                  JobError{"probe_io", "probe " + view_.serial + " went offline", ""});
      lock.lock();
      if (!online_ && !stop_)
        cv_.wait_for(lock, kIdleWait, [&] { return stop_ || online_ || !mailbox_.empty(); });
      continue;
    }
    if (detect_pending_) {
      detect_pending_ = false;
      detecting_ = true;
      lock.unlock();
      detect();
      lock.lock();
      continue;
    }
    if (!mailbox_.empty()) {
      Action item = std::move(mailbox_.front());
      mailbox_.pop_front();
      in_action_ = true;
      lock.unlock();
      publish_state();
      run_action(item);
      lock.lock();
      in_action_ = false;
      lock.unlock();
      publish_state();
      lock.lock();
      continue;
    }
    woken_ = false;
    ProbeView v = view_locked();
    lock.unlock();
    std::optional<Job> job;
    try {
      job = scheduler_.take(v);
    } catch (const std::exception& e) {
      log_event(LogLevel::error, "probe.take_failed", {{"serial", v.serial}, {"error", e.what()}});
    }
    if (job) {
      run_job_item(std::move(*job));
      lock.lock();
      continue;
    }
    lock.lock();
    if (!stop_)
      cv_.wait_for(lock, kIdleWait, [&] {
        return stop_ || woken_ || detect_pending_ || !mailbox_.empty() || !online_;
      });
  }
  if (session_) release_session(lock);
  std::deque<Action> dropped;
  dropped.swap(mailbox_);
  exited_ = true;
  lock.unlock();
  cv_.notify_all();
  for (auto& a : dropped)
    call_done(a.done, nullptr,
              JobError{"busy", "probefarmd is stopping", "try again once it has restarted"});
}

void ProbeActor::detect() {
  probe::ProbeInfo info;
  {
    std::lock_guard lock(mutex_);
    info = info_;
  }
  std::optional<TargetInfo> target;
  std::optional<JobError> error;
  std::string firmware;
  try {
    ConnectOptions co;
    co.speed_khz = settings_.speed_khz;
    co.connect_under_reset = settings_.connect_under_reset;
    co.halt = false;
    ProbeConnection conn = connect_probe(*usb_, info, co);
    firmware = conn.probe->info().firmware_version;
    target = describe_target(*conn.target);
    // Connecting under reset leaves the core halted at the reset vector; a board that just
    // arrived keeps running its firmware.
    if (co.connect_under_reset) conn.target->core().resume();
  } catch (const Error& e) {
    error = job_error(e);
  } catch (const std::exception& e) {
    error = JobError{"internal", std::string("internal error: ") + e.what(), ""};
  }
  ProbeView v;
  {
    std::lock_guard lock(mutex_);
    detecting_ = false;
    if (!firmware.empty()) view_.firmware = firmware;
    view_.target = target;
    view_.target_error = error;
    v = view_locked();
  }
  json fields = {{"serial", v.serial}, {"path", info.path}};
  if (target) fields["chip"] = target->chip;
  if (error) fields["target_error"] = error->message;
  log_event(error ? LogLevel::warn : LogLevel::info, "probe.arrived", fields);
  publish_state();
  bus_.publish("probe.arrived", v.serial, std::nullopt, to_json(v));
  // A selector job may have been waiting for this chip.
  wake();
}

void ProbeActor::run_action(Action& item) {
  probe::ProbeInfo info;
  {
    std::lock_guard lock(mutex_);
    info = info_;
  }
  json result;
  try {
    ConnectOptions co;
    co.speed_khz = settings_.speed_khz;
    co.connect_under_reset = settings_.connect_under_reset;
    co.halt = false;
    ProbeConnection conn = connect_probe(*usb_, info, co);
    protocol::CortexM& core = conn.target->core();
    using protocol::CoreRegister;
    switch (item.action) {
      case ProbeAction::reset:
        core.reset(protocol::ResetKind::sysresetreq, false);
        result = {{"halted", core.is_halted()}};
        break;
      case ProbeAction::reset_halt:
        core.reset(protocol::ResetKind::sysresetreq, true);
        result = {{"halted", core.is_halted()}, {"pc", core.read_register(CoreRegister::pc)}};
        break;
      case ProbeAction::halt: {
        const bool was = core.is_halted();
        if (!was) core.halt();
        result = {{"was_halted", was},
                  {"halted", core.is_halted()},
                  {"pc", core.read_register(CoreRegister::pc)}};
        break;
      }
      case ProbeAction::resume: {
        const bool was = core.is_halted();
        if (was) core.resume();
        result = {{"was_halted", was}, {"halted", core.is_halted()}};
        break;
      }
      case ProbeAction::detect: {
        TargetInfo t = describe_target(*conn.target);
        {
          std::lock_guard lock(mutex_);
          view_.target = t;
          view_.target_error.reset();
          view_.firmware = conn.probe->info().firmware_version;
        }
        result = to_json(t);
        break;
      }
    }
  } catch (const Error& e) {
    call_done(item.done, nullptr, job_error(e));
    return;
  } catch (const std::exception& e) {
    call_done(item.done, nullptr,
              JobError{"internal", std::string("internal error: ") + e.what(), ""});
    return;
  }
  call_done(item.done, std::move(result), std::nullopt);
}

void ProbeActor::run_job_item(Job job) {
  JobEnv env;
  {
    std::lock_guard lock(mutex_);
    view_.current_job = job.id;
    env.info = info_;
    env.usb = usb_.get();
  }
  publish_state();
  env.speed_khz = settings_.speed_khz;
  env.connect_under_reset = settings_.connect_under_reset;
  env.images = &images_;
  env.scheduler = &scheduler_;
  env.offline = [this] {
    std::lock_guard lock(mutex_);
    return !online_;
  };
  JobOutcome outcome = run_job(job, env);
  bool went_offline = false;
  {
    std::lock_guard lock(mutex_);
    if (outcome.target) {
      view_.target = outcome.target;
      view_.target_error.reset();
    }
    if (!outcome.firmware.empty()) view_.firmware = outcome.firmware;
    view_.current_job.reset();
    // The job saw the probe gone before the hot-plug poll did: offline now, and back when
    // the poll finds it on the bus again.
    if (outcome.unplugged && online_) {
      online_ = false;
      went_offline = true;
    }
  }
  scheduler_.finish(std::move(job));
  publish_state();
  if (went_offline) bus_.publish("probe.left", view_.serial, std::nullopt, to_json(view()));
}

}  // namespace probefarm::server
