#include "server/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "probe/error.hpp"

namespace probefarm::server {

namespace {

// Prometheus text format 0.0.4: label values escape backslash, double quote and line feed;
// HELP text escapes backslash and line feed.
std::string escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quote)
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

// Go's ParseFloat spellings for the special values, shortest round-trip text otherwise.
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

std::string format_labels(const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && !le) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name + "=\"" + escape(value, true) + "\"";
  }
  if (le) {
    if (!first) out += ',';
    out += "le=\"" + *le + "\"";
  }
  return out + "}";
}

[[noreturn]] void undeclared(const std::string& name, const char* type) {
  throw Error(ErrorCategory::internal, "metric '" + name + "' is not a declared " + type,
              "declare the metric before using it");
}

}  // namespace

Metrics::Metrics() = default;

void Metrics::declare_counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(name);
  // Declaring the same metric twice (two servers sharing one registry) is harmless.
  if (!inserted && it->second.type != "counter")
    throw Error(ErrorCategory::internal, "metric '" + name + "' is already a " + it->second.type);
  it->second.help = help;
  it->second.type = "counter";
}

void Metrics::declare_histogram(const std::string& name, const std::string& help,
                                std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  // +Inf is always present in the exposition; a caller listing it would duplicate it.
  std::erase_if(bounds, [](double b) { return std::isinf(b) || std::isnan(b); });
  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(name);
  if (!inserted) {
    if (it->second.type != "histogram" || it->second.bounds != bounds)
      throw Error(ErrorCategory::internal, "metric '" + name + "' is already declared differently");
    return;
  }
  it->second.help = help;
  it->second.type = "histogram";
  it->second.bounds = std::move(bounds);
}

void Metrics::declare_gauge(const std::string& name, const std::string& help,
                            std::function<std::vector<std::pair<Labels, double>>()> sample) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(name);
  if (!inserted && it->second.type != "gauge")
    throw Error(ErrorCategory::internal, "metric '" + name + "' is already a " + it->second.type);
  it->second.help = help;
  it->second.type = "gauge";
  it->second.sample = std::move(sample);
}

void Metrics::add(const std::string& counter, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  auto it = families_.find(counter);
  if (it == families_.end() || it->second.type != "counter") undeclared(counter, "counter");
  it->second.series[labels].value += value;
}

void Metrics::observe(const std::string& histogram, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  auto it = families_.find(histogram);
  if (it == families_.end() || it->second.type != "histogram") undeclared(histogram, "histogram");
  Family& f = it->second;
  Series& s = f.series[labels];
  if (s.buckets.size() != f.bounds.size()) s.buckets.assign(f.bounds.size(), 0);
  // The first bucket whose upper bound (inclusive, "le") holds the value; none: only +Inf.
  auto b = std::lower_bound(f.bounds.begin(), f.bounds.end(), value);
  if (b != f.bounds.end()) ++s.buckets[static_cast<std::size_t>(b - f.bounds.begin())];
  s.sum += value;
  ++s.count;
}

std::string Metrics::render() const {
  std::map<std::string, Family> families;
  {
    // Gauge callbacks run outside the lock: they may take locks of their own.
    std::lock_guard lock(mutex_);
    families = families_;
  }
  std::string out;
  for (const auto& [name, f] : families) {
    out += "# HELP " + name + " " + escape(f.help, false) + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    if (f.type == "counter") {
      for (const auto& [labels, s] : f.series)
        out += name + format_labels(labels) + " " + format_value(s.value) + "\n";
    } else if (f.type == "gauge") {
      if (!f.sample) continue;
      for (const auto& [labels, value] : f.sample())
        out += name + format_labels(labels) + " " + format_value(value) + "\n";
    } else {
      for (const auto& [labels, s] : f.series) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < f.bounds.size(); ++i) {
          cumulative += i < s.buckets.size() ? s.buckets[i] : 0;
          std::string le = format_value(f.bounds[i]);
          out += name + "_bucket" + format_labels(labels, &le) + " " + std::to_string(cumulative) +
                 "\n";
        }
        std::string inf = "+Inf";
        out +=
            name + "_bucket" + format_labels(labels, &inf) + " " + std::to_string(s.count) + "\n";
        out += name + "_sum" + format_labels(labels) + " " + format_value(s.sum) + "\n";
        out += name + "_count" + format_labels(labels) + " " + std::to_string(s.count) + "\n";
      }
    }
  }
  return out;
}

}  // namespace probefarm::server
