#pragma once
// The event bus: probe actors, the scheduler and the API publish; WebSocket sessions
// subscribe. An event is serialized once ({"type", "seq", "ts", "probe", "job", "data"})
// and shared by every subscriber. Sinks are called on the publisher's thread and must not
// block: a WebSocket session posts the text to its own strand and drops itself when its
// queue is full, so a slow consumer never makes memory grow or holds up the publisher.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace probefarm::server {

// Event types: "probe.arrived", "probe.left", "probe.state", "job.queued", "job.started",
// "job.progress", "job.finished".
struct Event {
  std::string type;
  std::string probe;                        // serial, "" when none
  std::optional<std::int64_t> job;          // job id
  std::int64_t ts_us = 0;                   // wall clock, microseconds since the epoch
  std::uint64_t seq = 0;                    // per bus, from 1
  std::shared_ptr<const std::string> text;  // the JSON text sent to clients
};

// What a subscriber wants: every criterion given must hold. `types` entries match a type
// exactly or, ending in '.', as a prefix ("job." = every job event).
struct EventFilter {
  std::vector<std::string> types;
  std::vector<std::string> probes;
  std::vector<std::int64_t> jobs;

  bool matches(const Event& event) const;
  // From {"types": […], "probes": […], "jobs": […]}; Error(usage) naming what is wrong.
  static EventFilter from_json(const nlohmann::json& j);
};

class EventBus {
 public:
  using Sink = std::function<void(const std::shared_ptr<const Event>&)>;

  // Returns an id for unsubscribe. The filter can be replaced later (a client's
  // "subscribe" message).
  std::uint64_t subscribe(EventFilter filter, Sink sink);
  void set_filter(std::uint64_t id, EventFilter filter);
  void unsubscribe(std::uint64_t id);
  std::size_t subscribers() const;

  // Serializes and delivers to every matching subscriber. Thread-safe.
  void publish(const std::string& type, const std::string& probe, std::optional<std::int64_t> job,
               const nlohmann::json& data);

 private:
  struct Subscriber {
    std::uint64_t id;
    EventFilter filter;
    Sink sink;
  };
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  std::uint64_t next_id_ = 1;
  std::uint64_t seq_ = 0;
};

}  // namespace probefarm::server
