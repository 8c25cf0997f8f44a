#include "server/event_bus.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "probe/error.hpp"

namespace probefarm::server {
namespace {

using nlohmann::json;

struct Recorder {
  std::vector<std::shared_ptr<const Event>> events;
  EventBus::Sink sink() {
    return [this](const std::shared_ptr<const Event>& e) { events.push_back(e); };
  }
  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (const auto& e : events)
      out.push_back(e->type);
    return out;
  }
};

void publish_sample(EventBus& bus) {
  bus.publish("probe.arrived", "PF1", std::nullopt, {{"driver", "cmsis-dap-v2"}});
  bus.publish("job.queued", "", 7, {{"position", 1}});
  bus.publish("job.started", "PF1", 7, json::object());
  bus.publish("job.progress", "PF2", 8, {{"done", 10}});
  bus.publish("jobs.other", "PF1", 9, nullptr);
}

TEST(EventBus, EventTextIsSerializedOnceWithSeqAndTimestamp) {
  EventBus bus;
  Recorder a, b;
  bus.subscribe({}, a.sink());
  bus.subscribe({}, b.sink());
  bus.publish("job.progress", "PF1", 17, {{"phase", "program"}, {"done", 4096}});
  bus.publish("probe.left", "PF1", std::nullopt, json::object());
  ASSERT_EQ(a.events.size(), 2u);
  ASSERT_EQ(b.events.size(), 2u);
  // Shared, not copied per subscriber.
  EXPECT_EQ(a.events[0].get(), b.events[0].get());
  EXPECT_EQ(a.events[0]->text.get(), b.events[0]->text.get());

  const Event& e = *a.events[0];
  EXPECT_EQ(e.seq, 1u);
  EXPECT_EQ(a.events[1]->seq, 2u);
  EXPECT_GT(e.ts_us, 1'600'000'000'000'000);  // microseconds, after 2020
  auto j = json::parse(*e.text);
  EXPECT_EQ(j["type"], "job.progress");
  EXPECT_EQ(j["seq"], 1);
  EXPECT_EQ(j["ts"], e.ts_us);
  EXPECT_EQ(j["probe"], "PF1");
  EXPECT_EQ(j["job"], 17);
  EXPECT_EQ(j["data"], json({{"phase", "program"}, {"done", 4096}}));
  EXPECT_EQ(j.size(), 6u);
  auto left = json::parse(*a.events[1]->text);
  EXPECT_TRUE(left["job"].is_null());
  EXPECT_LE(e.ts_us, a.events[1]->ts_us);
}

TEST(EventBus, FiltersByTypePrefixProbeAndJob) {
  EventBus bus;
  Recorder all, jobs, exact, probe, job7, combined;
  bus.subscribe({}, all.sink());
  bus.subscribe({{"job."}, {}, {}}, jobs.sink());
  bus.subscribe({{"job.started", "probe.arrived"}, {}, {}}, exact.sink());
  bus.subscribe({{}, {"PF1"}, {}}, probe.sink());
  bus.subscribe({{}, {}, {7}}, job7.sink());
  bus.subscribe({{"job."}, {"PF1", "PF2"}, {8, 9}}, combined.sink());
  publish_sample(bus);

  EXPECT_EQ(all.events.size(), 5u);
  // "job." is a prefix of job.* only, not of "jobs.other".
  EXPECT_EQ(jobs.types(), (std::vector<std::string>{"job.queued", "job.started", "job.progress"}));
  EXPECT_EQ(exact.types(), (std::vector<std::string>{"probe.arrived", "job.started"}));
  EXPECT_EQ(probe.types(),
            (std::vector<std::string>{"probe.arrived", "job.started", "jobs.other"}));
  // Events without a job never match a job filter.
  EXPECT_EQ(job7.types(), (std::vector<std::string>{"job.queued", "job.started"}));
  EXPECT_EQ(combined.types(), (std::vector<std::string>{"job.progress"}));
}

TEST(EventBus, UnsubscribeAndSetFilter) {
  EventBus bus;
  Recorder a, b;
  auto ida = bus.subscribe({}, a.sink());
  auto idb = bus.subscribe({{"probe."}, {}, {}}, b.sink());
  EXPECT_NE(ida, idb);
  EXPECT_EQ(bus.subscribers(), 2u);
  bus.publish("job.queued", "", 1, {});
  bus.unsubscribe(ida);
  EXPECT_EQ(bus.subscribers(), 1u);
  bus.publish("job.queued", "", 2, {});
  EXPECT_EQ(a.events.size(), 1u);
  EXPECT_TRUE(b.events.empty());
  bus.set_filter(idb, {{"job."}, {}, {}});
  bus.publish("job.queued", "", 3, {});
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0]->job, 3);
  EXPECT_EQ(b.events[0]->seq, 3u);
}

TEST(EventBus, ASinkMayUnsubscribeItselfWhilePublishing) {
  EventBus bus;
  int calls = 0;
  std::uint64_t id = 0;
  id = bus.subscribe({}, [&](const std::shared_ptr<const Event>&) {
    ++calls;
    bus.unsubscribe(id);
  });
  bus.publish("probe.state", "PF1", std::nullopt, {});
  bus.publish("probe.state", "PF1", std::nullopt, {});
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(bus.subscribers(), 0u);
}

TEST(EventFilter, FromJson) {
  auto f = EventFilter::from_json(json::parse(R"({"types": ["job."], "probes": ["PF1"],
                                                  "jobs": [3, 4]})"));
  EXPECT_EQ(f.types, std::vector<std::string>{"job."});
  EXPECT_EQ(f.probes, std::vector<std::string>{"PF1"});
  EXPECT_EQ(f.jobs, (std::vector<std::int64_t>{3, 4}));
  auto none = EventFilter::from_json(json::object());
  EXPECT_TRUE(none.types.empty() && none.probes.empty() && none.jobs.empty());

  auto error_of = [](const char* text) {
    try {
      EventFilter::from_json(json::parse(text));
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::usage);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error_of(R"({"types": "job."})").find("'types'"), std::string::npos);
  EXPECT_NE(error_of(R"({"jobs": ["7"]})").find("'jobs'"), std::string::npos);
  EXPECT_NE(error_of(R"({"probe": ["PF1"]})").find("'probe'"), std::string::npos);
  EXPECT_NE(error_of(R"([1, 2])").find("object"), std::string::npos);
}

}  // namespace
}  // namespace probefarm::server
