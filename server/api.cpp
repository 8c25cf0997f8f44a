#include "server/api.hpp"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "probe/error.hpp"
#include "server/auth.hpp"
#include "server/config.hpp"
#include "server/database.hpp"
#include "server/event_bus.hpp"
#include "server/http_server.hpp"
#include "server/image_store.hpp"
#include "server/log.hpp"
#include "server/metrics.hpp"
#include "server/probe_manager.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {

using nlohmann::json;

// api_production.cpp: guarded operations and serial numbers; a refusal, or nullopt.
std::optional<Response> check_production_spec(Services& s, const Principal& who,
                                              const JobSpec& spec);

namespace {

[[noreturn]] void bad_request(const std::string& message, const std::string& hint = {}) {
  throw Error(ErrorCategory::usage, message, hint);
}

std::string query(const Request& r, const std::string& key) {
  auto it = r.query.find(key);
  return it == r.query.end() ? std::string() : it->second;
}

// Decimal or 0x-prefixed hexadecimal.
std::optional<std::uint64_t> parse_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  const char* first = text.data() + (hex ? 2 : 0);
  const char* last = text.data() + text.size();
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(first, last, v, hex ? 16 : 10);
  if (ec != std::errc() || p != last) return std::nullopt;
  return v;
}

std::uint64_t number_param(const Request& r, const std::string& key, std::uint64_t fallback,
                           std::uint64_t max) {
  const std::string text = query(r, key);
  if (text.empty()) return fallback;
  auto v = parse_number(text);
  if (!v || *v > max)
    bad_request("query parameter '" + key + "' must be a number up to " + std::to_string(max) +
                ", not '" + text + "'");
  return *v;
}

json parse_body(const Request& r) {
  if (r.body.empty()) return json::object();
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded())
    bad_request("the request body is not valid JSON",
                "send a JSON object with Content-Type: "
                "application/json");
  return j;
}

Response not_found(const std::string& what) {
  return Response::error(404, "not_found", what + " not found");
}

Response probe_not_found(const std::string& serial) {
  return Response::error(404, "probe_not_found", "probe " + serial + " is unknown",
                         "GET /api/v1/probes lists the probes this daemon has seen");
}

std::optional<std::int64_t> job_id(const Request& r) {
  auto v = parse_number(r.params.at("id"));
  if (!v || *v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

// ---- probes -------------------------------------------------------------------------------

void probe_routes(HttpServer& http, Services& s) {
  http.add({"GET", "/api/v1/probes"}, [&s](Request&, Respond respond) {
    json list = json::array();
    for (const auto& p : s.probes.list())
      list.push_back(to_json(p));
    respond(Response::json(200, {{"probes", list}}));
  });
  http.add({"GET", "/api/v1/probes/{serial}"}, [&s](Request& r, Respond respond) {
    auto p = s.probes.get(r.params.at("serial"));
    respond(p ? Response::json(200, to_json(*p)) : probe_not_found(r.params.at("serial")));
  });
  http.add({"PATCH", "/api/v1/probes/{serial}", Role::operator_, BodyKind::text},
           [&s](Request& r, Respond respond) {
             const json body = parse_body(r);
             if (!body.is_object()) bad_request("the body must be a JSON object");
             std::optional<std::string> name;
             std::optional<std::vector<std::string>> labels;
             for (const auto& [key, value] : body.items()) {
               if (key == "name" && value.is_string())
                 name = value.get<std::string>();
               else if (key == "labels" && value.is_array() &&
                        std::all_of(value.begin(), value.end(),
                                    [](const json& l) { return l.is_string(); }))
                 labels = value.get<std::vector<std::string>>();
               else
                 bad_request("cannot set '" + key + "'",
                             "a probe takes {\"name\": string, \"labels\": [string]}");
             }
             const std::string serial = r.params.at("serial");
             if (!s.probes.get(serial)) return respond(probe_not_found(serial));
             const json probe = to_json(s.probes.update_meta(serial, name, labels));
             // Every open dashboard shows the new name and labels at once.
             s.bus.publish("probe.updated", serial, std::nullopt, probe);
             respond(Response::json(200, probe));
           });
  // Quick actions go through the probe's actor; the answer comes from the actor thread.
  for (const char* action : {"reset", "halt", "resume", "detect"}) {
    http.add(
        {"POST", std::string("/api/v1/probes/{serial}/") + action, Role::operator_, BodyKind::text},
        [&s, action](Request& r, Respond respond) {
          ProbeAction a = *parse_probe_action(action);
          if (a == ProbeAction::reset) {
            const json body = parse_body(r);
            if (body.contains("halt") && !body["halt"].is_boolean())
              bad_request("'halt' must be true or false");
            if (body.value("halt", false)) a = ProbeAction::reset_halt;
          }
          const std::string serial = r.params.at("serial");
          if (!s.probes.get(serial)) return respond(probe_not_found(serial));
          s.probes.action(serial, a, [respond](json result, std::optional<JobError> error) {
            if (error)
              respond(Response::error(http_status(error->category), error->category, error->message,
                                      error->hint));
            else
              respond(Response::json(200, result));
          });
        });
  }
}

// ---- images -------------------------------------------------------------------------------

void image_routes(HttpServer& http, Services& s) {
  http.add({"GET", "/api/v1/images"}, [&s](Request&, Respond respond) {
    json list = json::array();
    for (const auto& m : s.images.list())
      list.push_back(to_json(m));
    respond(Response::json(200, {{"images", list}}));
  });
  http.add({"POST", "/api/v1/images", Role::operator_, BodyKind::upload}, [&s](Request& r,
                                                                               Respond respond) {
    UploadParams params;
    params.name = query(r, "name");
    params.format = query(r, "format");
    if (const std::string a = query(r, "address"); !a.empty()) {
      auto v = parse_number(a);
      if (!v || *v > 0xFFFFFFFFull)
        bad_request("'address' must be a 32-bit address such as 0x08000000, not '" + a + "'");
      params.bin_address = static_cast<std::uint32_t>(*v);
    }
    if (r.body_size == 0)
      bad_request("the upload is empty", "send the image file as the request body");
    const std::int64_t before = now_ms();
    ImageMeta meta = s.images.commit(r.body_file, params, r.principal.name);
    const bool existed = meta.created_at < before;
    log_event(LogLevel::info, "image.stored",
              {{"sha256", meta.sha256}, {"name", meta.name}, {"existed", existed}});
    json body = to_json(meta);
    body["existed"] = existed;
    respond(Response::json(existed ? 200 : 201, body));
  });
  http.add({"GET", "/api/v1/images/{sha256}"}, [&s](Request& r, Respond respond) {
    auto m = s.images.find(r.params.at("sha256"));
    respond(m ? Response::json(200, to_json(*m)) : not_found("image " + r.params.at("sha256")));
  });
  http.add({"GET", "/api/v1/images/{sha256}/content"}, [&s](Request& r, Respond respond) {
    auto m = s.images.find(r.params.at("sha256"));
    if (!m) return respond(not_found("image " + r.params.at("sha256")));
    Response resp;
    resp.content_type = "application/octet-stream";
    resp.file = s.images.path_of(m->sha256);
    std::string safe = m->name;
    std::replace_if(
        safe.begin(), safe.end(), [](char c) { return c == '"' || c < 0x20; }, '_');
    resp.headers["Content-Disposition"] = "attachment; filename=\"" + safe + "\"";
    resp.headers["ETag"] = "\"" + m->sha256 + "\"";
    respond(resp);
  });
  http.add(
      {"DELETE", "/api/v1/images/{sha256}", Role::operator_}, [&s](Request& r, Respond respond) {
        auto m = s.images.find(r.params.at("sha256"));
        if (!m) return respond(not_found("image " + r.params.at("sha256")));
        for (JobState state : {JobState::queued, JobState::running}) {
          JobFilter f;
          f.state = state;
          f.limit = 100000;
          for (const auto& job : s.scheduler.list(f))
            if (job.spec.image == m->sha256)
              return respond(Response::error(409, "busy",
                                             "image " + m->sha256.substr(0, 12) + " is used by " +
                                                 std::string(job_state_name(state)) + " job " +
                                                 std::to_string(job.id),
                                             "cancel the job or wait for it to finish"));
        }
        s.images.remove(m->sha256);
        respond(Response::json(200, {{"deleted", m->sha256}}));
      });
}

// ---- jobs ---------------------------------------------------------------------------------

void job_routes(HttpServer& http, Services& s) {
  http.add(
      {"POST", "/api/v1/jobs", Role::operator_, BodyKind::text}, [&s](Request& r, Respond respond) {
        JobSpec spec = job_spec_from_json(parse_body(r));
        if (!spec.image.empty()) {
          auto m = s.images.find(spec.image);
          if (!m)
            return respond(Response::error(
                404, "not_found", "image '" + spec.image + "' is not in the image store",
                "upload it first: POST /api/v1/images?name=… with the file as the body"));
          spec.image = m->sha256;
        }
        if (spec.probe.by_serial()) {
          if (!s.probes.get(spec.probe.serial)) return respond(probe_not_found(spec.probe.serial));
          if (auto held = s.probes.session_refusal(spec.probe.serial))
            return respond(Response::error(409, held->category, held->message, held->hint));
        } else if (!s.probes.any_matches(spec.probe)) {
          return respond(
              Response::error(404, "probe_not_found",
                              "no probe matches the selector" +
                                  (spec.probe.chip.empty() ? "" : " chip=" + spec.probe.chip) +
                                  (spec.probe.label.empty() ? "" : " label=" + spec.probe.label),
                              "GET /api/v1/probes shows each probe's chip and labels"));
        }
        if (auto refusal = check_production_spec(s, r.principal, spec)) return respond(*refusal);
        const std::string key = r.header("idempotency-key");
        if (key.size() > 200) bad_request("Idempotency-Key is longer than 200 characters");
        auto inserted = s.scheduler.submit(spec, r.principal, key);
        Response resp = Response::json(inserted.created ? 201 : 200, to_json(inserted.job));
        resp.headers["Location"] = "/api/v1/jobs/" + std::to_string(inserted.job.id);
        respond(resp);
      });
  http.add({"GET", "/api/v1/jobs"}, [&s](Request& r, Respond respond) {
    JobFilter f;
    if (const std::string st = query(r, "state"); !st.empty()) {
      f.state = parse_job_state(st);
      if (!f.state)
        bad_request("unknown state '" + st + "'",
                    "states: queued, running, succeeded, failed, cancelled, interrupted");
    }
    f.probe = query(r, "probe");
    f.submitted_by = query(r, "submitted_by");
    f.before_id = static_cast<std::int64_t>(number_param(r, "before", 0, INT64_MAX));
    f.limit = static_cast<unsigned>(number_param(r, "limit", 100, 1000));
    json list = json::array();
    auto jobs = s.scheduler.list(f);
    for (const auto& j : jobs)
      list.push_back(to_json(j));
    const bool more = jobs.size() == f.limit && f.limit > 0;
    respond(Response::json(
        200, {{"jobs", list}, {"next_before", more ? json(jobs.back().id) : json(nullptr)}}));
  });
  http.add({"GET", "/api/v1/jobs/{id}"}, [&s](Request& r, Respond respond) {
    auto id = job_id(r);
    auto job = id ? s.scheduler.get(*id) : std::nullopt;
    respond(job ? Response::json(200, to_json(*job)) : not_found("job " + r.params.at("id")));
  });
  http.add({"POST", "/api/v1/jobs/{id}/cancel", Role::operator_},
           [&s](Request& r, Respond respond) {
             auto id = job_id(r);
             auto before = id ? s.scheduler.get(*id) : std::nullopt;
             if (!before) return respond(not_found("job " + r.params.at("id")));
             if (is_final(before->state))
               return respond(Response::error(409, "conflict",
                                              "job " + r.params.at("id") + " already " +
                                                  std::string(job_state_name(before->state))));
             auto job = s.scheduler.cancel(*id, r.principal);
             json body = to_json(*job);
             body["cancel_requested"] = true;
             respond(Response::json(job->state == JobState::running ? 202 : 200, body));
           });
}

// ---- audit, tokens, status, metrics ---------------------------------------------------------

void audit_routes(HttpServer& http, Services& s) {
  http.add({"GET", "/api/v1/audit"}, [&s](Request& r, Respond respond) {
    AuditFilter f;
    f.probe = query(r, "probe");
    f.result = query(r, "result");
    if (!f.result.empty() && !parse_job_state(f.result))
      bad_request("unknown result '" + f.result + "'",
                  "results: succeeded, failed, cancelled, interrupted");
    f.who = query(r, "who");
    f.image_sha256 = query(r, "image");
    f.target_uid = query(r, "target_uid");
    f.since = static_cast<std::int64_t>(number_param(r, "since", 0, INT64_MAX));
    f.until = static_cast<std::int64_t>(number_param(r, "until", 0, INT64_MAX));
    f.job_id = static_cast<std::int64_t>(number_param(r, "job", 0, INT64_MAX));
    f.limit = static_cast<unsigned>(number_param(r, "limit", 100, 10000));
    f.offset = static_cast<unsigned>(number_param(r, "offset", 0, 0xFFFFFFFF));
    const std::string format = query(r, "format");
    if (format == "csv") {
      Response resp;
      resp.content_type = "text/csv; charset=utf-8";
      resp.body = s.db.audit_csv(f);
      resp.headers["Content-Disposition"] = "attachment; filename=\"probefarm-audit.csv\"";
      return respond(resp);
    }
    if (!format.empty() && format != "json")
      bad_request("unknown format '" + format + "'", "use format=json (default) or format=csv");
    json rows = json::array();
    for (const auto& row : s.db.list_audit(f))
      rows.push_back(to_json(row));
    respond(Response::json(200, {{"total", s.db.count_audit(f)},
                                 {"offset", f.offset},
                                 {"limit", f.limit},
                                 {"rows", rows}}));
  });
}

void token_routes(HttpServer& http, Services& s) {
  http.add({"GET", "/api/v1/tokens", Role::admin}, [&s](Request&, Respond respond) {
    json list = json::array();
    for (const auto& t : s.tokens.list())
      list.push_back({{"name", t.name},
                      {"role", role_name(t.role)},
                      {"source", t.source},
                      {"created_at", t.created_at ? json(iso_time(t.created_at)) : json(nullptr)}});
    respond(Response::json(200, {{"tokens", list}}));
  });
  http.add({"POST", "/api/v1/tokens", Role::admin, BodyKind::text}, [&s](Request& r,
                                                                         Respond respond) {
    const json body = parse_body(r);
    if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
        !body.contains("role") || !body["role"].is_string())
      bad_request("a token needs {\"name\": string, \"role\": string}",
                  "roles: viewer, operator, admin");
    auto role = parse_role(body["role"].get<std::string>());
    if (!role)
      bad_request("unknown role '" + body["role"].get<std::string>() + "'",
                  "roles: viewer, operator, admin");
    const std::string name = body["name"].get<std::string>();
    const std::string token = s.tokens.create(name, *role);
    log_event(LogLevel::info, "token.created",
              {{"name", name}, {"role", role_name(*role)}, {"by", r.principal.name}});
    respond(Response::json(201, {{"name", name}, {"role", role_name(*role)}, {"token", token}}));
  });
  http.add({"DELETE", "/api/v1/tokens/{name}", Role::admin}, [&s](Request& r, Respond respond) {
    if (!s.tokens.revoke(r.params.at("name")))
      return respond(not_found("token " + r.params.at("name")));
    log_event(LogLevel::info, "token.revoked",
              {{"name", r.params.at("name")}, {"by", r.principal.name}});
    respond(Response::json(200, {{"revoked", r.params.at("name")}}));
  });
}

void status_routes(HttpServer& http, Services& s) {
  http.add({"GET", "/api/v1/status"}, [&s](Request& r, Respond respond) {
    unsigned online = 0, total = 0;
    for (const auto& p : s.probes.list()) {
      ++total;
      online += p.state != ProbeState::offline;
    }
    respond(Response::json(
        200, {{"version", PROBEFARM_VERSION},
              {"started_at", iso_time(s.started_at)},
              {"uptime_seconds", (now_ms() - s.started_at) / 1000},
              {"probes", total},
              {"probes_online", online},
              {"queued_jobs", s.scheduler.queue_depth()},
              {"you", {{"name", r.principal.name}, {"role", role_name(r.principal.role)}}}}));
  });
  http.add({"GET", "/metrics"}, [&s](Request&, Respond respond) {
    Response resp;
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = s.metrics.render();
    respond(resp);
  });
}

// ---- events -------------------------------------------------------------------------------

EventFilter filter_from_query(const Request& r) {
  auto split = [](const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
      std::size_t end = text.find(',', start);
      if (end == std::string::npos) end = text.size();
      if (end > start) out.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    return out;
  };
  json j = json::object();
  if (auto t = split(query(r, "types")); !t.empty()) j["types"] = t;
  if (auto p = split(query(r, "probes")); !p.empty()) j["probes"] = p;
  if (auto ids = split(query(r, "jobs")); !ids.empty()) {
    j["jobs"] = json::array();
    for (const auto& id : ids) {
      auto v = parse_number(id);
      if (!v) bad_request("'jobs' must list job ids, not '" + id + "'");
      j["jobs"].push_back(*v);
    }
  }
  return EventFilter::from_json(j);
}

void event_routes(HttpServer& http, Services& s) {
  http.add_websocket({"WS", "/api/v1/events"}, [&s](std::shared_ptr<WebSocket> ws) {
    EventFilter filter;
    try {
      filter = filter_from_query(ws->request());
    } catch (const Error& e) {
      ws->send(std::make_shared<const std::string>(json{
          {"type", "error"},
          {"error", error_json(category_name(e.category()), e.what(),
                               e.hint())["error"]}}.dump()));
      ws->close("bad filter");
      return;
    }
    std::weak_ptr<WebSocket> weak = ws;
    // Sent first, so a client knows the subscription is live before any event arrives.
    ws->send(std::make_shared<const std::string>(
        json{{"type", "hello"}, {"version", PROBEFARM_VERSION}}.dump()));
    const std::uint64_t id =
        s.bus.subscribe(filter, [weak](const std::shared_ptr<const Event>& event) {
          if (auto w = weak.lock()) w->send(event->text);
        });
    ws->on_close = [&s, id] { s.bus.unsubscribe(id); };
    // A client changes what it receives with {"subscribe": {"types": […], "probes": […],
    // "jobs": […]}}; anything else gets an error message and the connection stays open.
    ws->on_message = [&s, id, weak](const std::string& text, bool) {
      auto w = weak.lock();
      if (!w) return;
      json reply;
      try {
        json msg = json::parse(text, nullptr, false);
        if (msg.is_discarded() || !msg.is_object() || !msg.contains("subscribe"))
          bad_request(
              "expected {\"subscribe\": {\"types\": [...], \"probes\": [...], "
              "\"jobs\": [...]}}");
        s.bus.set_filter(id, EventFilter::from_json(msg["subscribe"]));
        reply = {{"type", "subscribed"}, {"filter", msg["subscribe"]}};
      } catch (const Error& e) {
        reply = {{"type", "error"},
                 {"error", error_json(category_name(e.category()), e.what(), e.hint())["error"]}};
      }
      w->send(std::make_shared<const std::string>(reply.dump()));
    };
  });
}

}  // namespace

void register_routes(HttpServer& http, Services& services) {
  probe_routes(http, services);
  image_routes(http, services);
  job_routes(http, services);
  audit_routes(http, services);
  token_routes(http, services);
  status_routes(http, services);
  event_routes(http, services);
  gdb_routes(http, services);
  console_routes(http, services);
  production_routes(http, services);
  web_routes(http, services);
}

}  // namespace probefarm::server
