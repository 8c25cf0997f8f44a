#pragma once
// One probe's actor: a thread that owns everything it does with the probe. Its loop, in
// order of priority: detect the target (after the probe arrived), run a quick action from
// the mailbox, run the next job Scheduler::take hands it; otherwise wait on a condition
// variable (woken by the scheduler, hot-plug and the mailbox; with a timeout as a safety
// net). The hot-plug thread only flips flags here; every USB transfer happens on this thread.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "probe/discovery.hpp"
#include "probe/usb_libusb.hpp"
#include "server/model.hpp"
#include "server/probe_manager.hpp"

namespace probefarm::server {

class EventBus;
class ImageStore;
class ProbeSession;
class Scheduler;
struct ProbeConnection;

struct ProbeSettings {
  std::uint32_t speed_khz = 4000;
  bool connect_under_reset = false;
};

class ProbeActor {
 public:
  ProbeActor(const probe::ProbeInfo& info, ProbeSettings settings, std::string name,
             std::vector<std::string> labels, Scheduler& scheduler, ImageStore& images,
             EventBus& bus);
  ~ProbeActor();  // request_stop() and join()
  ProbeActor(const ProbeActor&) = delete;
  ProbeActor& operator=(const ProbeActor&) = delete;

  void start();

  // Hot-plug (called every poll for each probe on the bus / each one missing). Idempotent:
  // only a change publishes anything.
  void present(const probe::ProbeInfo& info);
  void absent();

  // Look for work again (a job was queued).
  void wake();
  // Queues a quick action; refuses at once (through `done`) when the probe is offline, a job
  // is running, or the actor is stopping.
  void post(ProbeAction action, ActionDone done);

  // Opens an interactive session (probe_session.hpp) for `kind` ("gdb", "console") on behalf
  // of `who`. Returns nullptr and fills `refused` when the probe is offline, running a job
  // or an action, held by another session, or the daemon is stopping.
  std::shared_ptr<ProbeSession> open_session(const std::string& kind, const std::string& who,
                                             JobError& refused);

  // Takes no new work; the running job (if any) goes on.
  void request_stop();
  // Waits until the loop has ended (false if `deadline` came first).
  bool wait_exited(std::chrono::steady_clock::time_point deadline);
  void join();

  ProbeView view() const;
  std::optional<std::int64_t> current_job() const;
  void set_meta(std::string name, std::vector<std::string> labels);

 private:
  struct Action {
    ProbeAction action;
    ActionDone done;
  };

  void run();
  void detect();
  void run_action(Action& item);
  void run_job_item(Job job);
  // Runs the session's queued calls (actor thread, mutex_ not held).
  void serve_session(ProbeSession& session);
  // Lets go of an ended session: drops its connection, takes jobs again.
  void release_session(std::unique_lock<std::mutex>& lock);
  // Publishes "probe.state" when the state changed since the last one published.
  void publish_state();
  ProbeState state_locked() const;
  ProbeView view_locked() const;

  Scheduler& scheduler_;
  ImageStore& images_;
  EventBus& bus_;
  const ProbeSettings settings_;
  // A libusb context per actor: nothing one probe's transfers do (a hang, a reset, a
  // device vanishing) touches another's, and under the simulator each probe has its own
  // connection, as each has its own cable.
  const std::shared_ptr<probe::UsbContext> usb_ = probe::make_libusb_context();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  ProbeView view_;         // state and current_job are derived (state_locked)
  probe::ProbeInfo info_;  // where the probe is now
  bool online_ = false;
  bool detect_pending_ = false;
  bool detecting_ = false;
  bool in_action_ = false;
  bool woken_ = true;
  bool stop_ = false;
  bool exited_ = false;
  std::deque<Action> mailbox_;
  std::shared_ptr<ProbeSession> session_;
  std::unique_ptr<ProbeConnection> session_conn_;  // actor thread only
  std::optional<ProbeState> published_state_;
  std::mutex publish_mutex_;  // keeps "probe.state" events in order between threads
  std::thread thread_;
};

}  // namespace probefarm::server
