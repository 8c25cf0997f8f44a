#pragma once
// The threads that serve one client each (a GDB connection, a console), owned by a route's
// handler and so by the HttpServer. main.cpp destroys the HTTP server before the probe
// manager and the database, so the destructor here (which asks every thread to stop and
// joins it) runs while the services the threads use still exist.
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace probefarm::server {

class WorkerThreads {
 public:
  WorkerThreads() = default;
  ~WorkerThreads();
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  // Runs `body` on a thread of its own. `wake` is called when the owner goes away, to end a
  // body that waits on something else than stopping(). Threads that have finished are
  // joined here, so the list stays short.
  void spawn(std::function<void()> body, std::function<void()> wake = {});
  // Set once the owner goes away; bodies poll it.
  const std::atomic<bool>& stopping() const { return stopping_; }

 private:
  struct Entry {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
    std::function<void()> wake;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
  std::atomic<bool> stopping_{false};
};

}  // namespace probefarm::server
