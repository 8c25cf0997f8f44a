// Remote mode: `probefarm --server URL --token T …` runs the command as a job on probefarmd
// (openapi.yaml), follows it on the event stream with the same progress bar as local mode,
// and exits with the job's outcome, so a CI step fails when the flash failed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/progress.hpp"
#include "cli/remote.hpp"

#include "cli/console.hpp"
#include "cli/gdb_tunnel.hpp"
#include "cli/session.hpp"
#include "probe/bytes.hpp"
#include "probe/discovery.hpp"
#include "probe/error.hpp"
#include "server/http_client.hpp"

namespace probefarm::cli {

using nlohmann::json;
using server::HttpClient;
using server::HttpResult;
using server::ServerAddress;
using server::WsClient;
namespace fs = std::filesystem;

namespace {

// Exit status of a job that neither succeeded nor failed (README "Exit codes").
constexpr int kExitCancelled = 11;

// A non-2xx answer becomes the Error the server described (category, message, hint).
[[noreturn]] void throw_api_error(const HttpResult& r, const std::string& what) {
  json j = json::parse(r.body, nullptr, false);
  std::string category = "internal", message = what + ": HTTP " + std::to_string(r.status), hint;
  if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
    category = j["error"].value("category", category);
    message = j["error"].value("message", message);
    hint = j["error"].value("hint", "");
  }
  const std::optional<ErrorCategory> known = category_from_name(category);
  ErrorCategory c = known.value_or(ErrorCategory::usage);
  if (!known) {
    // API categories: not_found, unauthorized, forbidden, too_large, conflict.
    if (r.status == 401 || r.status == 403) {
      c = ErrorCategory::usage;
      if (hint.empty()) hint = "check --token (or $PROBEFARM_TOKEN) and its role";
    } else if (category == "not_found") {
      c = ErrorCategory::usage;
    } else if (r.status == 413) {
      c = ErrorCategory::image;
    } else if (category == "conflict") {
      c = ErrorCategory::usage;  // the request clashes with stored state (a name taken)
    } else if (r.status == 409) {
      c = ErrorCategory::busy;
    }
  }
  throw Error(c, message, hint);
}

json checked(const HttpResult& r, const std::string& what) {
  if (r.status < 200 || r.status >= 300) throw_api_error(r, what);
  return r.json();
}

std::string random_key() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return std::string("cli-") + buf;
}

json selector(const Options& o) {
  json p = json::object();
  if (!o.probe.empty()) p["serial"] = o.probe;
  if (!o.chip.empty()) p["chip"] = o.chip;
  if (!o.label.empty()) p["label"] = o.label;
  return p;
}

class Remote {
 public:
  explicit Remote(const Options& o)
      : o_(o), address_(ServerAddress::parse(o.server)), http_(address_, o.token) {}

  // With no --probe/--chip/--label: the only probe the daemon has, as locally.
  json resolve_selector() {
    json sel = selector(o_);
    if (!sel.empty()) return sel;
    json list = checked(http_.get("/api/v1/probes"), "listing probes")["probes"];
    if (list.size() == 1) return {{"serial", list[0]["serial"]}};
    throw Error(list.empty() ? ErrorCategory::probe_not_found : ErrorCategory::usage,
                list.empty()
                    ? "the server has no probes"
                    : "the server has " + std::to_string(list.size()) + " probes; say which one",
                "add --probe SERIAL, --chip C or --label L ('probefarm --server … list')");
  }

  std::string upload(const std::string& path) {
    std::string target = "/api/v1/images?name=" + url_encode(fs::path(path).filename().string());
    if (o_.format) {
      static const char* names[] = {"elf", "ihex", "srec", "bin"};
      target += std::string("&format=") + names[static_cast<int>(*o_.format)];
    }
    if (o_.address) target += "&address=" + std::to_string(*o_.address);
    if (!fs::exists(path))
      throw Error(ErrorCategory::usage, "cannot read " + path, "check the path of the image");
    json meta = checked(http_.upload(target, path), "uploading " + path);
    return meta.at("sha256").get<std::string>();
  }

  // Submits, then follows the job on the event stream until it ends. Returns the final job.
  json run_job(json spec) {
    spec["probe"] = resolve_selector();
    if (o_.queue_timeout_s) spec["queue_timeout_s"] = o_.queue_timeout_s;
    // Subscribed before submitting, so no event of the job can be missed.
    std::unique_ptr<WsClient> ws;
    try {
      ws = std::make_unique<WsClient>(address_, "/api/v1/events?types=job.", o_.token);
    } catch (const Error&) {
      // Without events the job is still followed, by polling.
    }
    const std::string key = o_.idempotency_key.empty() ? random_key() : o_.idempotency_key;
    HttpResult r;
    try {
      r = http_.post_json("/api/v1/jobs", spec, {{"Idempotency-Key", key}});
    } catch (const Error& e) {
      // The key makes the retry safe: a job the first attempt created is returned, not
      // queued twice.
      if (e.category() != ErrorCategory::probe_io) throw;
      r = http_.post_json("/api/v1/jobs", spec, {{"Idempotency-Key", key}});
    }
    json job = checked(r, "submitting the job");
    const std::int64_t id = job["id"].get<std::int64_t>();
    if (!o_.wait) return job;
    note(o_, "job %lld queued on %s", static_cast<long long>(id), o_.server.c_str());

    ProgressBar bar(o_.progress && !o_.json);
    const auto start = std::chrono::steady_clock::now();
    auto last_poll = start;
    for (;;) {
      if (o_.timeout_s &&
          std::chrono::steady_clock::now() - start > std::chrono::seconds(o_.timeout_s)) {
        bar.finish();
        throw Error(ErrorCategory::timeout,
                    "job " + std::to_string(id) + " did not finish within " +
                        std::to_string(o_.timeout_s) + " s (it is still " +
                        job.value("state", "queued") + " on the server)",
                    "'probefarm --server … jobs " + std::to_string(id) + "' shows it; 'cancel " +
                        std::to_string(id) + "' stops it");
      }
      if (ws) {
        try {
          if (auto text = ws->receive(std::chrono::milliseconds(500))) {
            json e = json::parse(*text, nullptr, false);
            if (!e.is_discarded() && e.value("job", json()) == json(id)) {
              if (e["type"] == "job.progress") {
                const json& d = e["data"];
                const std::string phase = d.value("phase", "");
                bar.update(
                    {phase, d.value("done", std::uint64_t{0}), d.value("total", std::uint64_t{0})});
              } else if (e["type"] == "job.finished") {
                bar.finish();
                return e["data"];
              }
            }
          }
        } catch (const Error&) {
          ws.reset();  // the stream closed: poll from now on
        }
      } else {
        usleep(500 * 1000);
      }
      // Polled now and then even with events, so a dropped stream never hangs the CLI.
      if (!ws || std::chrono::steady_clock::now() - last_poll > std::chrono::seconds(5)) {
        last_poll = std::chrono::steady_clock::now();
        job = checked(http_.get("/api/v1/jobs/" + std::to_string(id)), "reading the job");
        if (job["state"] != "queued" && job["state"] != "running") {
          bar.finish();
          return job;
        }
      }
    }
  }

  // The job's outcome as this process's: the error printed like a local one.
  int finish(const json& job, const std::function<void()>& print_success) {
    const std::string state = job.value("state", "");
    if (o_.json) print_json({{"ok", state == "succeeded"}, {"job", job}});
    if (state == "succeeded") {
      if (!o_.json && print_success) print_success();
      return 0;
    }
    if (!o_.wait && state == "queued") {
      if (!o_.json) std::printf("job %lld queued\n", static_cast<long long>(job["id"]));
      return 0;
    }
    const json& err = job["error"];
    const std::string message = err.is_object() ? err.value("message", "") : "";
    const std::string hint = err.is_object() ? err.value("hint", "") : "";
    std::fprintf(stderr, "probefarm: job %lld %s on %s: %s\n", static_cast<long long>(job["id"]),
                 state.c_str(), job.value("probe", "?").c_str(), message.c_str());
    if (!hint.empty()) std::fprintf(stderr, "hint: %s\n", hint.c_str());
    if (state == "cancelled" || state == "interrupted") return kExitCancelled;
    const std::string category = err.is_object() ? err.value("category", "internal") : "internal";
    for (auto c :
         {ErrorCategory::usage, ErrorCategory::image, ErrorCategory::probe_not_found,
          ErrorCategory::probe_io, ErrorCategory::target_not_responding, ErrorCategory::protection,
          ErrorCategory::verify, ErrorCategory::timeout, ErrorCategory::busy})
      if (category_name(c) == category) return exit_code(c);
    return exit_code(ErrorCategory::internal);
  }

  HttpClient& http() { return http_; }
  const ServerAddress& address() const { return address_; }

 private:
  const Options& o_;
  ServerAddress address_;
  HttpClient http_;
};

const char* erase_mode_name(flash::EraseMode m) {
  return m == flash::EraseMode::sectors ? "sectors"
         : m == flash::EraseMode::all   ? "all"
                                        : "automatic";
}

void print_table(const json& rows, const std::vector<std::pair<const char*, int>>& columns,
                 const std::function<std::string(const json&, const char*)>& cell) {
  for (const auto& [name, width] : columns)
    std::printf("%-*s ", width, name);
  std::printf("\n");
  for (const auto& row : rows) {
    for (const auto& [name, width] : columns)
      std::printf("%-*s ", width, cell(row, name).c_str());
    std::printf("\n");
  }
}

std::string text_of(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

// counters [list | show NAME | create NAME …]: production serial-number counters.
int run_counters(const Options& o, HttpClient& http) {
  json c;
  if (o.counter_action == "create") {
    c = checked(http.post_json("/api/v1/counters", {{"name", o.counter_name},
                                                    {"start", o.counter_start},
                                                    {"step", o.counter_step},
                                                    {"width", o.counter_width},
                                                    {"endian", o.counter_endian}}),
                "creating counter " + o.counter_name);
  } else if (o.counter_action == "show") {
    c = checked(http.get("/api/v1/counters/" + url_encode(o.counter_name)),
                "reading counter " + o.counter_name);
  } else {
    json list = checked(http.get("/api/v1/counters"), "listing counters")["counters"];
    if (o.json) return print_json({{"ok", true}, {"counters", list}}), 0;
    if (list.empty()) std::printf("the server has no counters\n");
    print_table(
        list,
        {{"name", 20}, {"next_value", 12}, {"step", 6}, {"width", 5}, {"endian", 6}, {"issued", 8}},
        [](const json& row, const char* col) { return text_of(row[col]); });
    return 0;
  }
  if (o.json) return print_json({{"ok", true}, {"counter", c}}), 0;
  std::printf("counter %s: next value %s, step %s, %s bytes %s-endian, %s issued\n",
              text_of(c["name"]).c_str(), text_of(c["next_value"]).c_str(),
              text_of(c["step"]).c_str(), text_of(c["width"]).c_str(), text_of(c["endian"]).c_str(),
              text_of(c["issued"]).c_str());
  return 0;
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Error error_from_json(const json& error) {
  return Error(category_from_name(error.value("category", "")).value_or(ErrorCategory::internal),
               error.value("message", std::string("the server reported an error")),
               error.value("hint", ""));
}

// --probe takes a unique prefix of a serial, as in local mode: expanded against the
// daemon's probe list (the API itself takes whole serials).
Options with_full_serial(const Options& o) {
  if (o.probe.empty() || o.command == Command::list) return o;
  HttpClient http(ServerAddress::parse(o.server), o.token);
  const json list = checked(http.get("/api/v1/probes"), "listing probes");
  std::vector<probe::ProbeInfo> probes;
  for (const json& p : list["probes"]) {
    probes.emplace_back();
    probes.back().serial = p.value("serial", "");
  }
  Options full = o;
  full.probe = probe::select_probe(probes, o.probe).serial;
  return full;
}

int run_remote(const Options& options) {
  const Options o = with_full_serial(options);
  if (o.command == Command::console) return run_console(o);
  if (o.command == Command::gdb) return run_gdb_tunnel(o);
  Remote remote(o);
  auto& http = remote.http();
  switch (o.command) {
    case Command::list: {
      json probes = checked(http.get("/api/v1/probes"), "listing probes")["probes"];
      if (o.json) return print_json({{"ok", true}, {"probes", probes}}), 0;
      if (probes.empty()) std::printf("the server has no probes\n");
      print_table(probes,
                  {{"serial", 26}, {"driver", 13}, {"state", 8}, {"chip", 26}, {"name", 12}},
                  [](const json& p, const char* col) {
                    if (std::string(col) == "chip")
                      return p["target"].is_object() ? text_of(p["target"]["chip"]) : "-";
                    return text_of(p[col]);
                  });
      return 0;
    }
    case Command::info: {
      json sel = remote.resolve_selector();
      if (!sel.contains("serial"))
        throw Error(ErrorCategory::usage, "info needs --probe SERIAL in remote mode");
      json p =
          checked(http.get("/api/v1/probes/" + url_encode(sel["serial"])), "reading the probe");
      if (o.json) return print_json({{"ok", true}, {"probe", p}}), 0;
      std::printf("%s\n", p.dump(2).c_str());
      return 0;
    }
    case Command::flash:
    case Command::verify: {
      const std::string sha = remote.upload(o.image_path);
      json spec = {{"operation", o.command == Command::flash ? "flash" : "verify"},
                   {"image", sha},
                   {"readback", o.readback}};
      if (o.command == Command::flash) {
        spec["verify"] = o.verify;
        spec["reset"] = o.reset_after;
        spec["erase"] = erase_mode_name(o.erase_mode);
        spec["skip_unchanged"] = o.skip_unchanged;
      }
      if (o.speed_khz) spec["speed_khz"] = *o.speed_khz;
      if (o.connect_under_reset) spec["connect_under_reset"] = true;
      json job = remote.run_job(spec);
      return remote.finish(job, [&] {
        const json& r = job["result"];
        std::printf("%s %s on %s (%s): job %lld\n",
                    o.command == Command::flash ? "flashed" : "verified", o.image_path.c_str(),
                    job.value("probe", "").c_str(), job.value("chip", "").c_str(),
                    static_cast<long long>(job["id"]));
        if (o.command == Command::flash)
          std::printf("  %u sector(s) erased, %u skipped, %s programmed; %s\n",
                      r.value("sectors_erased", 0u), r.value("sectors_skipped", 0u),
                      format_bytes(r.value("bytes_programmed", std::uint64_t{0})).c_str(),
                      r.value("verified", false) ? "verified" : "not verified");
      });
    }
    case Command::read: {
      json job = remote.run_job(
          {{"operation", "read"}, {"address", o.region_address}, {"size", o.region_size}});
      int rc = remote.finish(job, nullptr);
      if (rc != 0 || !o.wait) return rc;
      const std::string sha = job["result"]["output_image"];
      HttpResult r = http.download("/api/v1/images/" + sha + "/content", o.out_path);
      if (r.status != 200) throw_api_error(r, "downloading the read data");
      if (!o.json)
        std::printf("read %s from %s into %s (image %s)\n", format_bytes(o.region_size).c_str(),
                    probe::hex32(o.region_address).c_str(), o.out_path.c_str(),
                    sha.substr(0, 12).c_str());
      return 0;
    }
    case Command::erase: {
      json spec = {{"operation", "erase"}, {"reset", o.reset_after}};
      if (!o.erase_all) {
        spec["address"] = o.region_address;
        spec["size"] = o.region_size;
      }
      json job = remote.run_job(spec);
      return remote.finish(job, [&] {
        std::printf("erased %s on %s: job %lld\n", o.erase_all ? "the whole flash" : "the range",
                    job.value("probe", "").c_str(), static_cast<long long>(job["id"]));
      });
    }
    case Command::reset: {
      json sel = remote.resolve_selector();
      if (!sel.contains("serial"))
        throw Error(ErrorCategory::usage, "reset needs --probe SERIAL in remote mode");
      if (o.reset_kind != "sysresetreq")
        throw Error(ErrorCategory::usage,
                    "--kind is for local mode; the server resets with "
                    "SYSRESETREQ");
      json r = checked(http.post_json("/api/v1/probes/" + url_encode(sel["serial"]) + "/reset",
                                      {{"halt", o.halt}}),
                       "resetting the target");
      if (o.json) return print_json({{"ok", true}, {"result", r}}), 0;
      std::printf("reset, %s\n", o.halt ? "halted" : "running");
      return 0;
    }
    case Command::jobs: {
      if (o.job_id) {
        json job = checked(http.get("/api/v1/jobs/" + std::to_string(o.job_id)), "reading the job");
        if (o.json) return print_json({{"ok", true}, {"job", job}}), 0;
        std::printf("%s\n", job.dump(2).c_str());
        return 0;
      }
      std::string target = "/api/v1/jobs?limit=" + std::to_string(o.limit);
      if (!o.state.empty()) target += "&state=" + url_encode(o.state);
      json jobs = checked(http.get(target), "listing jobs")["jobs"];
      if (o.json) return print_json({{"ok", true}, {"jobs", jobs}}), 0;
      print_table(jobs,
                  {{"id", 6},
                   {"state", 11},
                   {"operation", 9},
                   {"probe", 26},
                   {"by", 10},
                   {"created", 24},
                   {"error", 0}},
                  [](const json& j, const char* col) {
                    const std::string c = col;
                    if (c == "operation") return text_of(j["spec"]["operation"]);
                    if (c == "by") return text_of(j["submitted_by"]);
                    if (c == "created") return text_of(j["created_at"]);
                    if (c == "error")
                      return j["error"].is_object() ? text_of(j["error"]["message"]) : "";
                    return text_of(j[col]);
                  });
      return 0;
    }
    case Command::cancel: {
      json job =
          checked(http.request("POST", "/api/v1/jobs/" + std::to_string(o.job_id) + "/cancel"),
                  "cancelling the job");
      if (o.json) return print_json({{"ok", true}, {"job", job}}), 0;
      std::printf("job %lld: %s\n", static_cast<long long>(o.job_id),
                  job["state"] == "running" ? "cancellation requested" : "cancelled");
      return 0;
    }
    case Command::audit: {
      std::string target = "/api/v1/audit?limit=" + std::to_string(o.limit);
      if (!o.probe.empty()) target += "&probe=" + url_encode(o.probe);
      if (o.csv) {
        HttpResult r = http.get(target + "&format=csv");
        if (r.status != 200) throw_api_error(r, "reading the audit log");
        std::fwrite(r.body.data(), 1, r.body.size(), stdout);
        return 0;
      }
      json rows = checked(http.get(target), "reading the audit log")["rows"];
      if (o.json) return print_json({{"ok", true}, {"rows", rows}}), 0;
      print_table(rows,
                  {{"at", 24},
                   {"job_id", 6},
                   {"who", 10},
                   {"probe", 26},
                   {"target_uid", 24},
                   {"operation", 9},
                   {"result", 11},
                   {"image_sha256", 12}},
                  [](const json& row, const char* col) {
                    std::string v = text_of(row[col]);
                    return std::string(col) == "image_sha256" ? v.substr(0, 12) : v;
                  });
      return 0;
    }
    case Command::counters:
      return run_counters(o, http);
    case Command::images: {
      json images = checked(http.get("/api/v1/images"), "listing images")["images"];
      if (o.json) return print_json({{"ok", true}, {"images", images}}), 0;
      print_table(images,
                  {{"sha256", 16},
                   {"name", 28},
                   {"format", 6},
                   {"data_bytes", 10},
                   {"uploaded_by", 12},
                   {"created_at", 24}},
                  [](const json& m, const char* col) {
                    std::string v = text_of(m[col]);
                    return std::string(col) == "sha256" ? v.substr(0, 16) : v;
                  });
      return 0;
    }
    default:
      throw Error(ErrorCategory::usage,
                  "this command runs on local probes only, not with --server (or "
                  "$PROBEFARM_SERVER)",
                  "run it on the probe's host without --server (unset PROBEFARM_SERVER); over "
                  "the network, POST /api/v1/jobs with operation unlock, option_bytes or protect "
                  "(admin token, \"confirm\": the probe's serial)");
  }
}

}  // namespace probefarm::cli
