#include "server/event_bus.hpp"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "probe/error.hpp"

namespace probefarm::server {

using nlohmann::json;

namespace {

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

// Reads an optional array member; each element must satisfy `check`.
template <typename T, typename Check>
std::vector<T> read_list(const json& j, const char* key, Check check, const char* what) {
  std::vector<T> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array())
    throw Error(ErrorCategory::usage,
                std::string("event filter: '") + key + "' must be an array of " + what,
                std::string("send e.g. {\"") + key + "\": [...]}");
  for (const auto& v : *it) {
    if (!check(v))
      throw Error(ErrorCategory::usage,
                  std::string("event filter: '") + key + "' holds " + v.dump() + ", not " + what,
                  std::string("every entry of '") + key + "' must be " + what);
    out.push_back(v.get<T>());
  }
  return out;
}

}  // namespace

bool EventFilter::matches(const Event& event) const {
  if (!types.empty()) {
    bool any = std::any_of(types.begin(), types.end(), [&](const std::string& t) {
      if (!t.empty() && t.back() == '.') return event.type.compare(0, t.size(), t) == 0;
      return event.type == t;
    });
    if (!any) return false;
  }
  if (!probes.empty() && std::find(probes.begin(), probes.end(), event.probe) == probes.end())
    return false;
  if (!jobs.empty() &&
      (!event.job || std::find(jobs.begin(), jobs.end(), *event.job) == jobs.end()))
    return false;
  return true;
}

EventFilter EventFilter::from_json(const json& j) {
  if (j.is_null()) return {};
  if (!j.is_object())
    throw Error(ErrorCategory::usage, "event filter must be a JSON object, got " + j.dump(),
                "send {\"types\": [...], \"probes\": [...], \"jobs\": [...]}");
  // "type" is tolerated: a client's message is {"type": "subscribe", "types": [...], ...}.
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (key != "types" && key != "probes" && key != "jobs" && key != "type")
      throw Error(ErrorCategory::usage, "event filter: unknown key '" + key + "'",
                  "the keys are types, probes and jobs");
  }
  EventFilter f;
  auto is_string = [](const json& v) { return v.is_string(); };
  f.types = read_list<std::string>(j, "types", is_string, "strings");
  f.probes = read_list<std::string>(j, "probes", is_string, "strings");
  f.jobs = read_list<std::int64_t>(
      j, "jobs", [](const json& v) { return v.is_number_integer(); }, "integers");
  return f;
}

std::uint64_t EventBus::subscribe(EventFilter filter, Sink sink) {
  std::lock_guard lock(mutex_);
  auto sub =
      std::make_shared<Subscriber>(Subscriber{next_id_++, std::move(filter), std::move(sink)});
  subscribers_.push_back(sub);
  return sub->id;
}

void EventBus::set_filter(std::uint64_t id, EventFilter filter) {
  std::lock_guard lock(mutex_);
  for (auto& s : subscribers_)
    if (s->id == id) {
      // Copy-on-write: a publish that already took a snapshot keeps the old subscriber.
      s = std::make_shared<Subscriber>(Subscriber{id, std::move(filter), s->sink});
      return;
    }
}

void EventBus::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  std::erase_if(subscribers_, [&](const auto& s) { return s->id == id; });
}

std::size_t EventBus::subscribers() const {
  std::lock_guard lock(mutex_);
  return subscribers_.size();
}

void EventBus::publish(const std::string& type, const std::string& probe,
                       std::optional<std::int64_t> job, const json& data) {
  auto event = std::make_shared<Event>();
  event->type = type;
  event->probe = probe;
  event->job = job;
  std::vector<std::shared_ptr<Subscriber>> snapshot;
  {
    // seq and ts are assigned under the lock so that seq order is ts order.
    std::lock_guard lock(mutex_);
    event->seq = ++seq_;
    event->ts_us = now_us();
    snapshot = subscribers_;
  }
  json j = {{"type", type},
            {"seq", event->seq},
            {"ts", event->ts_us},
            {"probe", probe},
            {"job", job ? json(*job) : json(nullptr)},
            {"data", data}};
  event->text =
      std::make_shared<const std::string>(j.dump(-1, ' ', false, json::error_handler_t::replace));
  std::shared_ptr<const Event> shared = std::move(event);
  // Sinks run outside the lock: one may unsubscribe itself (a dropped WebSocket).
  for (const auto& s : snapshot)
    if (s->filter.matches(*shared)) s->sink(shared);
}

}  // namespace probefarm::server
