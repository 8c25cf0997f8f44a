// Production: serial-number counters, backups, and the checks a job spec passes when it asks
// for a serial number or a guarded operation (RDP unlock, option-byte writes, write
// protection). The jobs themselves run in job_runner.cpp like every other job.
#include <nlohmann/json.hpp>

#include "probe/error.hpp"
#include "server/api.hpp"
#include "server/database.hpp"
#include "server/http_server.hpp"
#include "server/image_store.hpp"
#include "server/log.hpp"
#include "server/probe_manager.hpp"
#include "server/scheduler.hpp"

namespace probefarm::server {

using nlohmann::json;

// Called by POST /api/v1/jobs (api.cpp) after the spec parsed and its image resolved: the
// answer to send instead of submitting, or nullopt when the job may go in.
std::optional<Response> check_production_spec(Services& s, const Principal& who,
                                              const JobSpec& spec);

namespace {

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%08llX", static_cast<unsigned long long>(v));
  return buf;
}

// What the guarded operation does to the board, for the refusal's message.
std::string guarded_effect(const JobSpec& spec) {
  switch (spec.operation) {
    case Operation::unlock:
      return "removes read protection, which mass-erases the flash";
    case Operation::option_bytes:
      return "writes the option bytes";
    case Operation::protect:
      return std::string(spec.write_protect ? "sets" : "clears") + " write protection";
    default:
      return "";
  }
}

std::optional<Response> check_guarded(const Principal& who, const JobSpec& spec) {
  const std::string op(operation_name(spec.operation));
  if (who.role < Role::admin)
    return Response::error(403, "forbidden",
                           "'" + op + "' " + guarded_effect(spec) +
                               ": it needs the admin role; token '" + who.name + "' has " +
                               std::string(role_name(who.role)),
                           "submit it with an admin token");
  if (!spec.probe.by_serial())
    return Response::error(
        400, "usage",
        "'" + op + "' " + guarded_effect(spec) + ": name the probe by serial, not by a selector",
        "\"probe\": {\"serial\": \"…\"}, \"confirm\": \"<the same serial>\"");
  if (spec.confirm != spec.probe.serial)
    return Response::error(
        400, "usage",
        "'" + op + "' " + guarded_effect(spec) + " and needs a confirmation: " +
            (spec.confirm.empty() ? "'confirm' is missing"
                                  : "'confirm' is '" + spec.confirm + "', not the probe's serial"),
        "add \"confirm\": \"" + spec.probe.serial + "\" (the probe's serial) to the job");
  return std::nullopt;
}

// The serial number's bytes must land in the image's data or, outside it, in the flash of
// the board(s) the job may run on.
std::optional<Response> check_serial(Services& s, const JobSpec& spec) {
  const SerialRequest& req = *spec.serial;
  auto counter = s.db.get_counter(req.counter);
  if (!counter)
    return Response::error(404, "not_found",
                           "serial-number counter '" + req.counter + "' does not exist",
                           "create it with POST /api/v1/counters (probefarm counters create)");
  const std::uint64_t begin = req.address, end = begin + counter->width;
  const std::string where = hex(begin) + " (" + std::to_string(counter->width) + " bytes)";
  if (auto image = s.images.find(spec.image)) {
    for (const auto& seg : image->segments) {
      const std::uint64_t seg_end = std::uint64_t{seg.address} + seg.size;
      if (begin >= seg.address && end <= seg_end) return std::nullopt;
      if (begin < seg_end && end > seg.address)
        return Response::error(400, "usage",
                               "serial number at " + where +
                                   " straddles the edge of the image segment at " +
                                   hex(seg.address),
                               "put it wholly inside the image's data or wholly outside it");
    }
  }
  unsigned known = 0;
  for (const auto& p : s.probes.list()) {
    if (!matches(spec.probe, p) || !p.target) continue;
    ++known;
    const std::uint64_t fb = p.target->flash_base, fe = fb + p.target->flash_size;
    if (begin < fb || end > fe)
      return Response::error(400, "usage",
                             "serial number at " + where +
                                 " is neither in the image nor in the flash of probe " + p.serial +
                                 "'s " + p.target->chip + " (" + hex(fb) + ", " +
                                 std::to_string(p.target->flash_size) + " bytes)",
                             "choose an address inside the image or the flash");
  }
  if (known == 0)
    return Response::error(400, "usage",
                           "serial number at " + where +
                               " is outside the image, and no target is known to check it "
                               "against the flash",
                           "put it inside the image's data, or detect the target first "
                           "(POST /api/v1/probes/{serial}/detect)");
  return std::nullopt;
}

json parse_object(const Request& r) {
  if (r.body.empty()) return json::object();
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(ErrorCategory::usage, "the request body must be a JSON object");
  return j;
}

std::uint64_t u64(const json& j, const char* key, std::uint64_t fallback) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_number_unsigned())
    throw Error(ErrorCategory::usage, std::string("'") + key + "' must be an unsigned number");
  return j[key].get<std::uint64_t>();
}

Counter counter_from_json(const json& j) {
  for (const auto& [key, value] : j.items())
    if (key != "name" && key != "start" && key != "step" && key != "width" && key != "endian")
      throw Error(ErrorCategory::usage, "unknown counter field '" + key + "'",
                  "fields: name, start, step, width, endian");
  if (!j.contains("name") || !j["name"].is_string())
    throw Error(ErrorCategory::usage, "a counter needs {\"name\": string}",
                "optional: start (0), step (1), width (4 bytes), endian (\"little\")");
  Counter c;
  c.name = j["name"];
  c.start = u64(j, "start", 0);
  c.step = u64(j, "step", 1);
  const std::uint64_t width = u64(j, "width", 4);
  if (width < 1 || width > 8)
    throw Error(ErrorCategory::usage,
                "counter width must be 1 to 8 bytes, not " + std::to_string(width));
  c.width = static_cast<unsigned>(width);
  const std::string endian = j.value("endian", "little");
  if (endian != "little" && endian != "big")
    throw Error(ErrorCategory::usage,
                "'endian' must be \"little\" or \"big\", not '" + endian + "'");
  c.big_endian = endian == "big";
  return c;
}

void counter_routes(HttpServer& http, Services& s) {
  // Admin only: a counter is production configuration that can be neither reset nor deleted
  // (that is what makes its values unique), so creating one is not an everyday action.
  http.add({"POST", "/api/v1/counters", Role::admin, BodyKind::text}, [&s](Request& r,
                                                                           Respond respond) {
    Counter c = counter_from_json(parse_object(r));
    c.created_by = r.principal.name;
    if (s.db.get_counter(c.name))
      return respond(Response::error(409, "conflict", "counter '" + c.name + "' already exists",
                                     "counters are never reset or replaced; choose another name"));
    const Counter stored = s.db.create_counter(c);
    log_event(LogLevel::info, "counter.created", {{"name", stored.name}, {"by", r.principal.name}});
    Response resp = Response::json(201, to_json(stored));
    resp.headers["Location"] = "/api/v1/counters/" + stored.name;
    respond(resp);
  });
  http.add({"GET", "/api/v1/counters"}, [&s](Request&, Respond respond) {
    json list = json::array();
    for (const auto& c : s.db.list_counters())
      list.push_back(to_json(c));
    respond(Response::json(200, {{"counters", list}}));
  });
  http.add({"GET", "/api/v1/counters/{name}"}, [&s](Request& r, Respond respond) {
    auto c = s.db.get_counter(r.params.at("name"));
    respond(c ? Response::json(200, to_json(*c))
              : Response::error(404, "not_found",
                                "counter '" + r.params.at("name") + "' does not exist",
                                "GET /api/v1/counters lists them"));
  });
}

void backup_routes(HttpServer& http, Services& s) {
  // A read job under another name: the whole flash (or {"address", "size"}) into the image
  // store. The job's result.output_image is the backup's sha256 once it succeeded.
  http.add({"POST", "/api/v1/probes/{serial}/backup", Role::operator_, BodyKind::text},
           [&s](Request& r, Respond respond) {
             const json body = parse_object(r);
             json spec = {{"operation", "read"}, {"probe", {{"serial", r.params.at("serial")}}}};
             for (const auto& [key, value] : body.items()) {
               if (key != "address" && key != "size" && key != "speed_khz")
                 throw Error(ErrorCategory::usage, "unknown backup field '" + key + "'",
                             "fields: address and size (default: the whole flash), speed_khz");
               spec[key] = value;
             }
             const JobSpec js = job_spec_from_json(spec);
             if (!s.probes.get(js.probe.serial))
               return respond(Response::error(404, "probe_not_found",
                                              "probe " + js.probe.serial + " is unknown",
                                              "GET /api/v1/probes lists the probes"));
             const std::string key = r.header("idempotency-key");
             if (key.size() > 200)
               throw Error(ErrorCategory::usage, "Idempotency-Key is longer than 200 characters");
             auto inserted = s.scheduler.submit(js, r.principal, key);
             Response resp = Response::json(inserted.created ? 201 : 200, to_json(inserted.job));
             resp.headers["Location"] = "/api/v1/jobs/" + std::to_string(inserted.job.id);
             respond(resp);
           });
}

}  // namespace

std::optional<Response> check_production_spec(Services& s, const Principal& who,
                                              const JobSpec& spec) {
  if (spec.guarded())
    if (auto refusal = check_guarded(who, spec)) return refusal;
  if (spec.serial)
    if (auto refusal = check_serial(s, spec)) return refusal;
  return std::nullopt;
}

void production_routes(HttpServer& http, Services& services) {
  counter_routes(http, services);
  backup_routes(http, services);
}

}  // namespace probefarm::server
