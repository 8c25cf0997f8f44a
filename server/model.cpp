#include "server/model.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "probe/error.hpp"

namespace probefarm::server {

using nlohmann::json;

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string iso_time(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // what -Wformat-truncation allows for any int fields
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

namespace {

template <typename E, std::size_t N>
std::optional<E> parse_name(std::string_view name, const std::string_view (&names)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == name) return static_cast<E>(i);
  return std::nullopt;
}

constexpr std::string_view kRoles[] = {"viewer", "operator", "admin"};
constexpr std::string_view kStates[] = {"queued", "running",   "succeeded",
                                        "failed", "cancelled", "interrupted"};
constexpr std::string_view kOperations[] = {"flash",  "verify",       "erase",  "read",
                                            "unlock", "option_bytes", "protect"};
constexpr std::string_view kEraseModes[] = {"automatic", "sectors", "all"};
constexpr std::string_view kProbeStates[] = {"idle", "busy", "offline"};

[[noreturn]] void bad_spec(const std::string& message, const std::string& hint = {}) {
  throw Error(ErrorCategory::usage, "job: " + message, hint);
}

std::string join(const std::string_view* names, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i)
    s += (i ? ", " : "") + std::string(names[i]);
  return s;
}

json time_or_null(std::int64_t ms) {
  return ms ? json(iso_time(ms)) : json(nullptr);
}

json error_or_null(const std::optional<JobError>& e) {
  if (!e) return nullptr;
  return {{"category", e->category}, {"message", e->message}, {"hint", e->hint}};
}

std::uint32_t u32_field(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > 0xFFFFFFFFull)
    bad_spec(std::string("'") + key + "' must be an unsigned 32-bit number");
  return v.get<std::uint32_t>();
}

bool bool_field(const json& j, const char* key) {
  if (!j.at(key).is_boolean()) bad_spec(std::string("'") + key + "' must be true or false");
  return j.at(key).get<bool>();
}

std::string string_field(const json& j, const char* key) {
  if (!j.at(key).is_string()) bad_spec(std::string("'") + key + "' must be a string");
  return j.at(key).get<std::string>();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::string_view role_name(Role role) {
  return kRoles[static_cast<int>(role)];
}
std::optional<Role> parse_role(std::string_view name) {
  return parse_name<Role>(name, kRoles);
}

std::string_view job_state_name(JobState state) {
  return kStates[static_cast<int>(state)];
}
std::optional<JobState> parse_job_state(std::string_view name) {
  return parse_name<JobState>(name, kStates);
}
bool is_final(JobState state) {
  return state != JobState::queued && state != JobState::running;
}

std::string_view operation_name(Operation op) {
  return kOperations[static_cast<int>(op)];
}
std::optional<Operation> parse_operation(std::string_view name) {
  return parse_name<Operation>(name, kOperations);
}

bool is_guarded(Operation op, bool option_write) {
  return op == Operation::unlock || op == Operation::protect ||
         (op == Operation::option_bytes && option_write);
}

std::string_view probe_state_name(ProbeState state) {
  return kProbeStates[static_cast<int>(state)];
}

JobSpec job_spec_from_json(const json& j) {
  if (!j.is_object()) bad_spec("the body must be a JSON object");
  static const char* const known[] = {"operation",      "probe",          "image",
                                      "erase",          "verify",         "readback",
                                      "skip_unchanged", "reset",          "address",
                                      "size",           "speed_khz",      "connect_under_reset",
                                      "serial",         "confirm",        "option_set",
                                      "write_protect",  "queue_timeout_s"};
  for (const auto& [key, value] : j.items())
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) ==
        std::end(known))
      bad_spec("unknown field '" + key + "'",
               "fields: operation, probe, image, erase, verify, readback, skip_unchanged, "
               "reset, address, size, speed_khz, connect_under_reset, serial, confirm, "
               "option_set, write_protect, queue_timeout_s");
  JobSpec s;
  if (j.contains("operation")) {
    auto op = parse_operation(string_field(j, "operation"));
    if (!op)
      bad_spec("unknown operation '" + j["operation"].get<std::string>() + "'",
               "operations: " + join(kOperations, std::size(kOperations)));
    s.operation = *op;
  }
  if (!j.contains("probe") || !j["probe"].is_object())
    bad_spec(
        "'probe' is required: {\"serial\": \"…\"} or a selector {\"chip\": \"…\"} / "
        "{\"label\": \"…\"}");
  for (const auto& [key, value] : j["probe"].items()) {
    if (key != "serial" && key != "chip" && key != "label")
      bad_spec("unknown probe selector field '" + key + "'", "use serial, chip or label");
    if (!value.is_string()) bad_spec("'probe." + key + "' must be a string");
  }
  s.probe.serial = j["probe"].value("serial", "");
  s.probe.chip = lower(j["probe"].value("chip", ""));
  s.probe.label = j["probe"].value("label", "");
  if (s.probe.serial.empty() && s.probe.chip.empty() && s.probe.label.empty())
    bad_spec("'probe' names no serial, chip or label");
  if (!s.probe.serial.empty() && (!s.probe.chip.empty() || !s.probe.label.empty()))
    bad_spec("'probe' gives a serial and a selector; give one or the other");
  if (j.contains("image")) s.image = string_field(j, "image");
  if (j.contains("erase")) {
    auto m = parse_name<EraseMode>(string_field(j, "erase"), kEraseModes);
    if (!m)
      bad_spec("unknown erase mode '" + j["erase"].get<std::string>() + "'",
               "erase modes: " + join(kEraseModes, std::size(kEraseModes)));
    s.erase = *m;
  }
  if (j.contains("verify")) s.verify = bool_field(j, "verify");
  if (j.contains("readback")) s.readback = bool_field(j, "readback");
  if (j.contains("skip_unchanged")) s.skip_unchanged = bool_field(j, "skip_unchanged");
  if (j.contains("reset")) s.reset = bool_field(j, "reset");
  if (j.contains("address")) s.address = u32_field(j, "address");
  if (j.contains("size")) s.size = u32_field(j, "size");
  if (j.contains("speed_khz")) s.speed_khz = u32_field(j, "speed_khz");
  if (j.contains("queue_timeout_s")) {
    s.queue_timeout_s = u32_field(j, "queue_timeout_s");
    if (*s.queue_timeout_s == 0 || *s.queue_timeout_s > kMaxQueueTimeoutS)
      bad_spec("'queue_timeout_s' must be 1 to " + std::to_string(kMaxQueueTimeoutS) + " seconds");
  }
  if (j.contains("connect_under_reset"))
    s.connect_under_reset = bool_field(j, "connect_under_reset");

  const bool needs_image = s.operation == Operation::flash || s.operation == Operation::verify;
  if (needs_image && s.image.empty())
    bad_spec("'" + std::string(operation_name(s.operation)) + "' needs 'image'",
             "upload it with POST /api/v1/images and give its sha256 or name");
  if (!needs_image && !s.image.empty())
    bad_spec("'" + std::string(operation_name(s.operation)) + "' takes no image");
  if (s.address.has_value() != s.size.has_value()) bad_spec("'address' and 'size' go together");
  if (s.operation == Operation::read && s.size && *s.size == 0)
    bad_spec("'read' needs a non-zero 'size'",
             "leave out 'address' and 'size' to read the "
             "whole flash");
  if (s.address && (s.operation == Operation::flash || s.operation == Operation::verify ||
                    s.operation == Operation::unlock || s.operation == Operation::option_bytes))
    bad_spec(
        "'address' and 'size' are for erase, read and protect; an image carries its "
        "addresses");

  if (j.contains("serial")) {
    const json& sj = j["serial"];
    if (!sj.is_object() || !sj.contains("counter") || !sj.contains("address"))
      bad_spec("'serial' must be {\"counter\": name, \"address\": number}");
    for (const auto& [key, value] : sj.items())
      if (key != "counter" && key != "address")
        bad_spec("unknown serial field '" + key + "'", "use counter and address");
    SerialRequest req;
    req.counter = string_field(sj, "counter");
    req.address = u32_field(sj, "address");
    if (!valid_counter_name(req.counter))
      bad_spec("'serial.counter' is not a counter name: '" + req.counter + "'",
               "names are 1 to 64 letters, digits, '.', '_' or '-'");
    s.serial = req;
    if (s.operation != Operation::flash)
      bad_spec("'serial' goes with 'flash' only: the value is written into the image");
  }
  if (j.contains("confirm")) {
    // true is not enough: the serial, typed again, shows which board is meant.
    if (!j["confirm"].is_string()) bad_spec("'confirm' must be the probe's serial as a string");
    s.confirm = j["confirm"].get<std::string>();
  }
  if (j.contains("option_set")) {
    if (s.operation != Operation::option_bytes)
      bad_spec("'option_set' goes with 'option_bytes' only");
    if (!j["option_set"].is_object() || j["option_set"].empty())
      bad_spec("'option_set' must be a non-empty object {\"KEY\": \"VALUE\"}",
               "e.g. {\"nRST_STOP\": \"0\"}; GET the option bytes with an option_bytes job "
               "without option_set to see the keys");
    for (const auto& [key, value] : j["option_set"].items()) {
      if (value.is_string())
        s.option_set.emplace_back(key, value.get<std::string>());
      else if (value.is_number_unsigned())
        s.option_set.emplace_back(key, std::to_string(value.get<std::uint64_t>()));
      else
        bad_spec("'option_set." + key + "' must be a string or an unsigned number");
    }
  }
  if (j.contains("write_protect")) {
    if (s.operation != Operation::protect) bad_spec("'write_protect' goes with 'protect' only");
    s.write_protect = bool_field(j, "write_protect");
  }
  return s;
}

json to_json(const JobSpec& s) {
  json probe = json::object();
  if (!s.probe.serial.empty()) probe["serial"] = s.probe.serial;
  if (!s.probe.chip.empty()) probe["chip"] = s.probe.chip;
  if (!s.probe.label.empty()) probe["label"] = s.probe.label;
  json j = {{"operation", operation_name(s.operation)},
            {"probe", probe},
            {"erase", kEraseModes[static_cast<int>(s.erase)]},
            {"verify", s.verify},
            {"readback", s.readback},
            {"skip_unchanged", s.skip_unchanged},
            {"reset", s.reset}};
  if (!s.image.empty()) j["image"] = s.image;
  if (s.address) j["address"] = *s.address;
  if (s.size) j["size"] = *s.size;
  if (s.speed_khz) j["speed_khz"] = *s.speed_khz;
  if (s.queue_timeout_s) j["queue_timeout_s"] = *s.queue_timeout_s;
  if (s.connect_under_reset) j["connect_under_reset"] = *s.connect_under_reset;
  if (s.serial) j["serial"] = {{"counter", s.serial->counter}, {"address", s.serial->address}};
  if (!s.confirm.empty()) j["confirm"] = s.confirm;
  if (!s.option_set.empty()) {
    json set = json::object();
    for (const auto& [key, value] : s.option_set)
      set[key] = value;
    j["option_set"] = set;
  }
  if (s.operation == Operation::protect) j["write_protect"] = s.write_protect;
  return j;
}

json to_json(const OptionBytesView& ob) {
  json values = json::object();
  for (const auto& [key, value] : ob.values)
    values[key] = value;
  json wp = json::array();
  for (const auto& g : ob.write_protected)
    wp.push_back({{"address", g.address}, {"size", g.size}});
  return {{"rdp_level", ob.rdp_level},
          {"values", values},
          {"write_protected", wp},
          {"changed", ob.changed},
          {"reload", ob.reload}};
}

json to_json(const JobResult& r) {
  json durations = json::object();
  for (const auto& p : r.phases)
    durations[p.phase] = p.seconds;
  return {{"durations", durations},
          {"image_bytes", r.image_bytes},
          {"bytes_programmed", r.bytes_programmed},
          {"sectors_erased", r.sectors_erased},
          {"sectors_skipped", r.sectors_skipped},
          {"sectors_programmed", r.sectors_programmed},
          {"mass_erase", r.mass_erase},
          {"verified", r.verified},
          {"output_image", r.output_image.empty() ? json(nullptr) : json(r.output_image)},
          {"read_address", r.read_size ? json(r.read_address) : json(nullptr)},
          {"read_size", r.read_size ? json(r.read_size) : json(nullptr)},
          {"option_bytes", r.option_bytes ? to_json(*r.option_bytes) : json(nullptr)}};
}

JobResult job_result_from_json(const json& j) {
  JobResult r;
  if (!j.is_object()) return r;
  if (j.contains("durations") && j["durations"].is_object())
    for (const auto& [phase, seconds] : j["durations"].items())
      if (seconds.is_number()) r.phases.push_back({phase, seconds.get<double>()});
  r.image_bytes = j.value("image_bytes", std::uint64_t{0});
  r.bytes_programmed = j.value("bytes_programmed", std::uint64_t{0});
  r.sectors_erased = j.value("sectors_erased", 0u);
  r.sectors_skipped = j.value("sectors_skipped", 0u);
  r.sectors_programmed = j.value("sectors_programmed", 0u);
  r.mass_erase = j.value("mass_erase", false);
  r.verified = j.value("verified", false);
  if (j.contains("output_image") && j["output_image"].is_string())
    r.output_image = j["output_image"];
  if (j.contains("read_size") && j["read_size"].is_number_unsigned()) {
    r.read_size = j["read_size"];
    r.read_address = j.value("read_address", 0u);
  }
  if (j.contains("option_bytes") && j["option_bytes"].is_object()) {
    const json& o = j["option_bytes"];
    OptionBytesView ob;
    ob.rdp_level = o.value("rdp_level", 0u);
    if (o.contains("values") && o["values"].is_object())
      for (const auto& [key, value] : o["values"].items())
        if (value.is_number_unsigned()) ob.values.emplace_back(key, value.get<std::uint32_t>());
    if (o.contains("write_protected") && o["write_protected"].is_array())
      for (const auto& g : o["write_protected"])
        ob.write_protected.push_back({g.value("address", 0u), g.value("size", 0u)});
    ob.changed = o.value("changed", false);
    ob.reload = o.value("reload", "");
    r.option_bytes = std::move(ob);
  }
  return r;
}

json to_json(const Job& job) {
  const unsigned percent = job.total ? static_cast<unsigned>(job.done * 100 / job.total)
                                     : (is_final(job.state) ? 100 : 0);
  return {
      {"id", job.id},
      {"state", job_state_name(job.state)},
      {"spec", to_json(job.spec)},
      {"submitted_by", job.submitted_by},
      {"idempotency_key", job.idempotency_key.empty() ? json(nullptr) : json(job.idempotency_key)},
      {"probe", job.probe},
      {"chip", job.chip},
      {"target_uid", job.target_uid},
      {"created_at", time_or_null(job.created_at)},
      {"started_at", time_or_null(job.started_at)},
      {"finished_at", time_or_null(job.finished_at)},
      {"progress",
       {{"phase", job.phase}, {"done", job.done}, {"total", job.total}, {"percent", percent}}},
      {"result", to_json(job.result)},
      {"error", error_or_null(job.error)},
      {"serial_value", job.serial_value ? json(*job.serial_value) : json(nullptr)}};
}

std::uint64_t counter_max(unsigned width) {
  return width >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * width)) - 1;
}

std::vector<std::uint8_t> counter_bytes(const Counter& c, std::uint64_t value) {
  std::vector<std::uint8_t> out(c.width);
  for (unsigned i = 0; i < c.width; ++i) {
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    out[c.big_endian ? c.width - 1 - i : i] = byte;
  }
  return out;
}

bool valid_counter_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char ch) {
    return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
  });
}

json to_json(const Counter& c) {
  return {{"name", c.name},
          {"start", c.start},
          {"next_value", c.next_value},
          {"step", c.step},
          {"width", c.width},
          {"endian", c.big_endian ? "big" : "little"},
          {"issued", c.step ? (c.next_value - c.start) / c.step : 0},
          {"max_value", counter_max(c.width)},
          {"created_at", time_or_null(c.created_at)},
          {"created_by", c.created_by}};
}

json to_json(const ImageMeta& m) {
  json segments = json::array();
  for (const auto& s : m.segments)
    segments.push_back({{"address", s.address}, {"size", s.size}});
  return {{"sha256", m.sha256},
          {"name", m.name},
          {"format", m.format},
          {"size", m.size},
          {"data_bytes", m.data_bytes},
          {"segments", segments},
          {"entry", m.entry ? json(*m.entry) : json(nullptr)},
          {"bin_address", m.bin_address ? json(*m.bin_address) : json(nullptr)},
          {"uploaded_by", m.uploaded_by},
          {"created_at", time_or_null(m.created_at)}};
}

json to_json(const TargetInfo& t) {
  return {{"chip", t.chip},
          {"dev_id", t.dev_id},
          {"rev_id", t.rev_id},
          {"core", t.core},
          {"flash_base", t.flash_base},
          {"flash_size", t.flash_size},
          {"ram_base", t.ram_base},
          {"ram_size", t.ram_size},
          {"sectors", t.sectors},
          {"unique_id", t.unique_id},
          {"rdp_level", t.rdp_level < 0 ? json(nullptr) : json(t.rdp_level)},
          {"speed_khz", t.speed_khz}};
}

json to_json(const ProbeView& p) {
  return {{"serial", p.serial},
          {"driver", p.driver},
          {"vendor", p.vendor},
          {"product", p.product},
          {"firmware", p.firmware},
          {"usb_path", p.usb_path},
          {"state", probe_state_name(p.state)},
          {"name", p.name},
          {"labels", p.labels},
          {"target", p.target ? to_json(*p.target) : json(nullptr)},
          {"target_error", error_or_null(p.target_error)},
          {"current_job", p.current_job ? json(*p.current_job) : json(nullptr)},
          {"session", p.session ? json{{"kind", p.session->kind},
                                       {"who", p.session->who},
                                       {"since", iso_time(p.session->since)}}
                                : json(nullptr)},
          {"queued_jobs", p.queued_jobs},
          {"last_seen", time_or_null(p.last_seen)}};
}

bool chip_matches(const std::string& wanted, const std::string& line_name) {
  // The chip database names DEV_ID lines ("STM32F405/407/415/417", "STM32F74x/75x",
  // "STM32F10x medium-density"); users name parts ("stm32f407vg"). A part matches a line
  // when its three-digit number matches one of the line's alternatives, 'x' matching any
  // digit. A family prefix ("stm32f4") or the line's own name match too.
  const std::string want = lower(wanted);
  const std::string line = lower(line_name);
  if (want == line) return true;
  if (want.size() < 6 || want.compare(0, 6, "stm32f") != 0 || line.compare(0, 6, "stm32f") != 0)
    return false;
  if (want.size() < 9) return line.compare(0, want.size(), want) == 0;
  const std::string number = want.substr(6, 3);
  const std::string parts =
      line.substr(6, line.find(' ') == std::string::npos ? std::string::npos : line.find(' ') - 6);
  std::size_t start = 0;
  while (start <= parts.size()) {
    std::size_t end = parts.find('/', start);
    if (end == std::string::npos) end = parts.size();
    std::string alt = parts.substr(start, end - start);
    if (!alt.empty() && alt[0] == 'f') alt.erase(0, 1);
    if (alt.size() >= 3) {
      bool ok = true;
      for (int i = 0; i < 3; ++i)
        ok = ok && (alt[i] == number[i] || (alt[i] == 'x' && std::isdigit(number[i])));
      if (ok) return true;
    }
    start = end + 1;
  }
  return false;
}

bool matches(const ProbeSelector& sel, const ProbeView& p) {
  if (!sel.serial.empty() && sel.serial != p.serial) return false;
  if (!sel.label.empty() &&
      std::find(p.labels.begin(), p.labels.end(), sel.label) == p.labels.end())
    return false;
  if (!sel.chip.empty()) {
    if (!p.target) return false;
    if (!chip_matches(sel.chip, p.target->chip)) return false;
  }
  return true;
}

json to_json(const AuditRow& r) {
  auto parse_or_text = [](const std::string& s) {
    json j = json::parse(s, nullptr, false);
    return j.is_discarded() ? json(s) : j;
  };
  return {{"id", r.id},
          {"job_id", r.job_id ? json(r.job_id) : json(nullptr)},
          {"at", iso_time(r.at)},
          {"who", r.who},
          {"probe", r.probe},
          {"target_uid", r.target_uid},
          {"chip", r.chip},
          {"image_sha256", r.image_sha256},
          {"operation", r.operation},
          {"operations", parse_or_text(r.operations)},
          {"result", r.result},
          {"durations", parse_or_text(r.durations)},
          {"bytes_programmed", r.bytes_programmed},
          {"image_bytes", r.image_bytes},
          {"error", r.error},
          {"detail", r.detail},
          {"serial_counter", r.serial_counter},
          {"serial_value", r.serial_value ? json(*r.serial_value) : json(nullptr)}};
}

json error_json(std::string_view category, std::string_view message, std::string_view hint) {
  return {{"error", {{"category", category}, {"message", message}, {"hint", hint}}}};
}

}  // namespace probefarm::server
