#include "server/metrics.hpp"

#include <gtest/gtest.h>

#include "probe/error.hpp"

namespace probefarm::server {
namespace {

bool contains(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Metrics, CountersWithLabels) {
  Metrics m;
  m.declare_counter("probefarm_jobs_total", "Jobs finished, by result");
  m.add("probefarm_jobs_total", {{"result", "succeeded"}});
  m.add("probefarm_jobs_total", {{"result", "succeeded"}}, 2);
  m.add("probefarm_jobs_total", {{"result", "failed"}}, 0.5);
  std::string text = m.render();
  EXPECT_TRUE(contains(text, "# HELP probefarm_jobs_total Jobs finished, by result")) << text;
  EXPECT_TRUE(contains(text, "# TYPE probefarm_jobs_total counter")) << text;
  EXPECT_TRUE(contains(text, "probefarm_jobs_total{result=\"succeeded\"} 3")) << text;
  EXPECT_TRUE(contains(text, "probefarm_jobs_total{result=\"failed\"} 0.5")) << text;
  // HELP and TYPE come before the samples.
  EXPECT_LT(text.find("# TYPE"), text.find("probefarm_jobs_total{"));
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Metrics m;
  m.declare_histogram("lat_seconds", "Latency", {1, 0.125, 0.5});  // order does not matter
  Labels l{{"route", "/x"}};
  // Binary fractions, so that the sum is exact.
  for (double v : {0.0625, 0.125, 0.25, 0.75, 2.0, 5.0})
    m.observe("lat_seconds", l, v);
  std::string text = m.render();
  EXPECT_TRUE(contains(text, "# TYPE lat_seconds histogram")) << text;
  // le is inclusive: 0.125 falls in the 0.125 bucket.
  EXPECT_TRUE(contains(text, "lat_seconds_bucket{route=\"/x\",le=\"0.125\"} 2")) << text;
  EXPECT_TRUE(contains(text, "lat_seconds_bucket{route=\"/x\",le=\"0.5\"} 3")) << text;
  EXPECT_TRUE(contains(text, "lat_seconds_bucket{route=\"/x\",le=\"1\"} 4")) << text;
  EXPECT_TRUE(contains(text, "lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6")) << text;
  EXPECT_TRUE(contains(text, "lat_seconds_sum{route=\"/x\"} 8.1875")) << text;
  EXPECT_TRUE(contains(text, "lat_seconds_count{route=\"/x\"} 6")) << text;
  // Buckets in increasing order of le.
  EXPECT_LT(text.find("le=\"0.125\""), text.find("le=\"0.5\""));
  EXPECT_LT(text.find("le=\"1\""), text.find("le=\"+Inf\""));
}

TEST(Metrics, HistogramWithoutLabels) {
  Metrics m;
  m.declare_histogram("h", "H", {1});
  m.observe("h", {}, 3);
  std::string text = m.render();
  EXPECT_TRUE(contains(text, "h_bucket{le=\"1\"} 0")) << text;
  EXPECT_TRUE(contains(text, "h_bucket{le=\"+Inf\"} 1")) << text;
  EXPECT_TRUE(contains(text, "h_sum 3")) << text;
  EXPECT_TRUE(contains(text, "h_count 1")) << text;
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  Metrics m;
  m.declare_counter("c_total", "back\\slash and\nnewline");
  m.add("c_total", {{"path", "a\\b\"c\"\nd"}, {"k", "v"}});
  std::string text = m.render();
  EXPECT_TRUE(contains(text, "# HELP c_total back\\\\slash and\\nnewline")) << text;
  EXPECT_TRUE(contains(text, "c_total{path=\"a\\\\b\\\"c\\\"\\nd\",k=\"v\"} 1")) << text;
}

TEST(Metrics, GaugesAreSampledAtScrapeTime) {
  Metrics m;
  int probes = 2;
  m.declare_gauge("probefarm_probes", "Probes by state", [&] {
    return std::vector<std::pair<Labels, double>>{{{{"state", "idle"}}, double(probes)},
                                                  {{{"state", "busy"}}, 1}};
  });
  EXPECT_TRUE(contains(m.render(), "probefarm_probes{state=\"idle\"} 2"));
  probes = 5;
  std::string text = m.render();
  EXPECT_TRUE(contains(text, "# TYPE probefarm_probes gauge")) << text;
  EXPECT_TRUE(contains(text, "probefarm_probes{state=\"idle\"} 5")) << text;
  EXPECT_TRUE(contains(text, "probefarm_probes{state=\"busy\"} 1")) << text;
}

TEST(Metrics, UndeclaredOrMistypedMetricIsAnError) {
  Metrics m;
  m.declare_counter("c_total", "C");
  EXPECT_THROW(m.add("nope_total", {}), Error);
  EXPECT_THROW(m.observe("c_total", {}, 1), Error);
  EXPECT_THROW(m.declare_histogram("c_total", "C", {1}), Error);
  // Declaring the same metric again (two servers, one registry) is harmless.
  EXPECT_NO_THROW(m.declare_counter("c_total", "C"));
}

}  // namespace
}  // namespace probefarm::server
