#include "server/probe_session.hpp"

#include <exception>

#include "probe/error.hpp"

namespace probefarm::server {

struct TaskResult {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
};

ProbeSession::ProbeSession(std::string serial, std::string kind, std::string who)
    : serial_(std::move(serial)), kind_(std::move(kind)), who_(std::move(who)) {}

ProbeSession::~ProbeSession() {
  close();
}

void ProbeSession::run(const Work& work, std::chrono::milliseconds timeout) {
  auto result = std::make_shared<TaskResult>();
  {
    // notify_ runs under the lock: once the actor has detached (attach(nullptr) takes this
    // lock too) it is never called again, so the actor may go away.
    std::lock_guard lock(mutex_);
    if (closed_) {
      throw Error(ErrorCategory::probe_io,
                  "the " + kind_ + " session on probe " + serial_ + " has ended: " + end_reason_,
                  "open a new session");
    }
    tasks_.push_back(Task{work, result});
    if (notify_) notify_();
  }
  std::unique_lock lock(result->mutex);
  if (!result->cv.wait_for(lock, timeout, [&] { return result->done; })) {
    throw Error(ErrorCategory::timeout,
                "probe " + serial_ + " did not finish a " + kind_ + " request within " +
                    std::to_string(timeout.count() / 1000) + " s",
                "check the probe's USB connection; close the session and open a new one");
  }
  if (result->error) std::rethrow_exception(result->error);
}

void ProbeSession::close() {
  end("closed");
}

bool ProbeSession::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

std::string ProbeSession::end_reason() const {
  std::lock_guard lock(mutex_);
  return end_reason_;
}

void ProbeSession::attach(std::function<void()> notify) {
  std::lock_guard lock(mutex_);
  notify_ = std::move(notify);
}

bool ProbeSession::take(Task& task) {
  std::lock_guard lock(mutex_);
  if (tasks_.empty()) return false;
  task = std::move(tasks_.front());
  tasks_.pop_front();
  return true;
}

void ProbeSession::finish(Task& task, std::exception_ptr error) {
  {
    std::lock_guard lock(task.result->mutex);
    task.result->error = std::move(error);
    task.result->done = true;
  }
  task.result->cv.notify_all();
}

void ProbeSession::end(const std::string& reason) {
  std::deque<Task> dropped;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    end_reason_ = reason;
    dropped.swap(tasks_);
    if (notify_) notify_();
  }
  // Calls that never ran fail with the reason; the actor sees `closed` and lets go.
  for (auto& t : dropped)
    finish(t, std::make_exception_ptr(
                  Error(ErrorCategory::probe_io,
                        "the " + kind_ + " session on probe " + serial_ + " has ended: " + reason,
                        "open a new session")));
}

}  // namespace probefarm::server
