#pragma once
// An interactive hold on one probe: a GDB client or a console. While a session is open the
// probe's actor runs nothing else (no job, no quick action): jobs for the probe wait, or are
// refused when the configuration says so (Config::session_jobs). Each call runs on the
// actor's thread, over one connection that stays open between calls, so the core keeps the
// breakpoints, watchpoints and halt state the client gave it.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace probefarm::server {

struct ProbeConnection;

class ProbeSession {
 public:
  using Work = std::function<void(ProbeConnection&)>;

  ProbeSession(std::string serial, std::string kind, std::string who);
  ~ProbeSession();  // close()
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  const std::string& serial() const { return serial_; }
  const std::string& kind() const { return kind_; }  // "gdb" or "console"
  const std::string& who() const { return who_; }    // the token's name

  // Runs `work` on the actor's thread with the session's connection (opened on first use,
  // and again after a call failed with a probe or target error) and waits for it. Rethrows
  // what `work` threw. Throws Error(probe_io) once the session has ended (the probe was
  // unplugged, the daemon is stopping, close() was called), and Error(timeout) if the actor
  // did not finish the call within `timeout`.
  void run(const Work& work, std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // Ends the session: the actor drops the connection (the core keeps running or stays
  // halted as it is) and takes jobs again. Idempotent.
  void close();
  bool closed() const;
  // Why the session ended ("" while open, "closed" after close()).
  std::string end_reason() const;

 private:
  friend class ProbeActor;
  struct Task {
    Work work;
    std::shared_ptr<struct TaskResult> result;
  };

  // Actor side. `notify` wakes the actor; the actor clears it when it lets go.
  void attach(std::function<void()> notify);
  bool take(Task& task);  // next queued call, if any
  static void finish(Task& task, std::exception_ptr error);
  void end(const std::string& reason);

  const std::string serial_, kind_, who_;
  mutable std::mutex mutex_;
  std::deque<Task> tasks_;
  std::function<void()> notify_;
  std::string end_reason_;
  bool closed_ = false;
};

}  // namespace probefarm::server
