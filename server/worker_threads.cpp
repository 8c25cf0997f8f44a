#include "server/worker_threads.hpp"

namespace probefarm::server {

WorkerThreads::~WorkerThreads() {
  stopping_ = true;
  std::list<Entry> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(entries_);
  }
  for (auto& e : all) {
    if (e.wake) e.wake();
    if (e.thread.joinable()) e.thread.join();
  }
}

void WorkerThreads::spawn(std::function<void()> body, std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (*it->done) {
      it->thread.join();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  entries_.push_back({std::thread([body = std::move(body), done] {
                        body();
                        *done = true;
                      }),
                      done, std::move(wake)});
}

}  // namespace probefarm::server
