#pragma once
// Every probe the daemon has seen, each behind an actor: one thread that owns the probe's
// whole stack (USB device, driver, DAP, core, flash) and runs its work one item at a time,
// so a slow, hung or unplugged probe never blocks the event loop or another probe.
//
// A hot-plug thread lists the bus every poll interval (probe::ProbeWatcher). A new serial
// gets an actor, which detects its target (chip, flash, unique ID, RDP level) at once. A
// serial that leaves is marked offline: its running job fails on its own (USB errors), with
// an error saying the probe was unplugged; the actor waits. When the serial returns (on any
// USB path), the same actor comes back online and detects the target again.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/model.hpp"

namespace probefarm::probe {
class ProbeWatcher;
struct ProbeInfo;
}  // namespace probefarm::probe

namespace probefarm::server {

class ProbeSession;

struct Config;
class Database;
class EventBus;
class ImageStore;
class Metrics;
class Scheduler;
class ProbeActor;

// Quick operations on a probe outside the job queue.
enum class ProbeAction {
  reset,       // system reset, core runs
  reset_halt,  // system reset, core halted at the reset vector
  halt,
  resume,
  detect,  // attach again and refresh TargetInfo
};
std::optional<ProbeAction> parse_probe_action(std::string_view name);  // "reset", "halt", …

// Called once, on the actor's thread: the result ({"halted": true, "pc": …} / TargetInfo …)
// or an error.
using ActionDone = std::function<void(nlohmann::json result, std::optional<JobError> error)>;

class ProbeManager {
 public:
  ProbeManager(const Config& config, Database& db, ImageStore& images, Scheduler& scheduler,
               EventBus& bus, Metrics& metrics);
  ~ProbeManager();

  // Lists the bus once (actors for every probe present), then polls for hot-plug.
  void start();
  // Graceful: stops polling, asks every actor to stop, and waits up to `grace` for running
  // jobs; jobs still running after that are ended "interrupted". Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(30));

  std::vector<ProbeView> list() const;
  std::optional<ProbeView> get(const std::string& serial) const;
  // Name and labels, kept in the database (a config file's values are the defaults).
  // Error(probe_not_found) for an unknown serial; Error(usage) for an empty or repeated label.
  ProbeView update_meta(const std::string& serial, std::optional<std::string> name,
                        std::optional<std::vector<std::string>> labels);
  // Runs `action` on the probe's actor. Errors through `done`: probe_not_found (unknown
  // serial), probe_io (offline), busy (a job is running: "probe X is running job 17"),
  // and whatever the target says.
  void action(const std::string& serial, ProbeAction action, ActionDone done);
  // Opens an interactive session (probe_session.hpp) on the probe. Returns nullptr and fills
  // `refused` (probe_not_found, probe_io for offline, busy) when it cannot.
  std::shared_ptr<ProbeSession> open_session(const std::string& serial, const std::string& kind,
                                             const std::string& who, JobError& refused);
  // With Config::refuse_jobs_during_session: why a job for `serial` is refused now (a session
  // holds the probe); nullopt when it may be queued.
  std::optional<JobError> session_refusal(const std::string& serial) const;
  // Does any probe seen so far (online or not) satisfy the selector, or might it once its
  // target is detected? The API refuses a selector job nothing could ever run.
  bool any_matches(const ProbeSelector& selector) const;

 private:
  void poll_loop();
  // Lists the bus once and brings every actor in line with what is on it.
  void refresh();
  ProbeActor& ensure_actor(const probe::ProbeInfo& info);
  std::vector<ProbeActor*> actors() const;
  ProbeActor* find(const std::string& serial) const;

  const Config& config_;
  Database& db_;
  ImageStore& images_;
  Scheduler& scheduler_;
  EventBus& bus_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<ProbeActor>> actors_;  // by serial
  std::thread poller_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::condition_variable cv_;                    // wakes the poller for stop()
  std::unique_ptr<probe::ProbeWatcher> watcher_;  // poller thread only (after start())
  std::mutex stop_mutex_;                         // one stop() at a time
};

}  // namespace probefarm::server
