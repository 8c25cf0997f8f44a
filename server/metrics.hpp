#pragma once
// /metrics in the Prometheus text exposition format (version 0.0.4): counters and
// histograms kept here, gauges read through callbacks when scraped. Thread-safe.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace probefarm::server {

// Label set as written in the exposition: {"result", "succeeded"} → result="succeeded".
using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  Metrics();

  // Declares a metric (help text, type) once; using an undeclared name is a bug.
  void declare_counter(const std::string& name, const std::string& help);
  void declare_histogram(const std::string& name, const std::string& help,
                         std::vector<double> bounds);
  // A gauge whose samples are computed at scrape time.
  void declare_gauge(const std::string& name, const std::string& help,
                     std::function<std::vector<std::pair<Labels, double>>()> sample);

  void add(const std::string& counter, const Labels& labels, double value = 1);
  void observe(const std::string& histogram, const Labels& labels, double value);

  std::string render() const;

 private:
  struct Series {
    double value = 0;                    // counter
    std::vector<std::uint64_t> buckets;  // histogram: per bound, not cumulative
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct Family {
    std::string help, type;
    std::vector<double> bounds;
    std::map<Labels, Series> series;
    std::function<std::vector<std::pair<Labels, double>>()> sample;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace probefarm::server
