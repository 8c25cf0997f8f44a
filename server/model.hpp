#pragma once
// The daemon's vocabulary: roles, jobs and what they ask for, images in the store, probes as
// the API shows them, audit rows. Every part of server/ (database, scheduler, actors, API)
// speaks these types, and their JSON form (model.cpp) is the one openapi.yaml documents.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace probefarm::server {

// Milliseconds since the Unix epoch (wall clock): what the database and the API store.
std::int64_t now_ms();
// "2026-11-21T12:50:03.120Z".
std::string iso_time(std::int64_t ms);

// ---- auth ---------------------------------------------------------------------------------

enum class Role { viewer = 0, operator_ = 1, admin = 2 };  // ordered: higher may do more
std::string_view role_name(Role role);                     // "viewer", "operator", "admin"
std::optional<Role> parse_role(std::string_view name);

// Who made a request: the token's name and role.
struct Principal {
  std::string name;
  Role role = Role::viewer;
};

// ---- jobs ---------------------------------------------------------------------------------

// An address range: an image segment, a write-protected group.
struct SegmentInfo {
  std::uint32_t address = 0, size = 0;
};

enum class JobState { queued, running, succeeded, failed, cancelled, interrupted };
std::string_view job_state_name(JobState state);
std::optional<JobState> parse_job_state(std::string_view name);
bool is_final(JobState state);  // succeeded, failed, cancelled, interrupted

// What runs on the probe.
enum class Operation {
  flash,   // program `image` (plan, erase, program, verify), optional reset
  verify,  // compare `image` with the flash (CRC-32 on target, or read-back)
  erase,   // `address`/`size` whole sectors, or the whole chip (mass erase) without a range
  read,    // `address`/`size` of memory (the whole flash without a range) into the image
           // store: a backup
  // Guarded operations (admin role and "confirm": the probe's serial, see the API):
  unlock,        // RDP level 1 -> 0, which mass-erases the flash
  option_bytes,  // read the option bytes; with `option_set`, write them (guarded only then)
  protect,       // set or clear write protection on `address`/`size` (whole flash without)
};
std::string_view operation_name(Operation op);
std::optional<Operation> parse_operation(std::string_view name);

// Which probe a job runs on: an exact serial, or the first idle probe matching every given
// criterion (chip name as the CLI spells it, e.g. "stm32f407vg", matched case-insensitively
// against the target's part; a label the probe carries).
struct ProbeSelector {
  std::string serial;
  std::string chip;
  std::string label;

  bool by_serial() const { return !serial.empty(); }
};

// "automatic" | "sectors" | "all" (flash::EraseMode).
enum class EraseMode { automatic, sectors, all };

// A production serial number: the next value of counter `counter`, written into the image
// at `address` (counter width, counter endianness) before programming. JSON:
// "serial": {"counter": "board-sn", "address": 134610944}.
struct SerialRequest {
  std::string counter;
  std::uint32_t address = 0;
};

// Does `op` change protection or erase the chip behind the user's back? Such a job needs
// the admin role and an explicit confirmation (JobSpec::confirm).
bool is_guarded(Operation op, bool option_write);

// A job as submitted (POST /api/v1/jobs body). JSON:
// {"operation": "flash", "probe": {"serial": "…"} | {"chip": "…", "label": "…"},
//  "image": "<sha256>", "erase": "automatic", "verify": true, "readback": false,
//  "skip_unchanged": true, "reset": false, "address": 134217728, "size": 65536,
//  "speed_khz": 4000, "connect_under_reset": false}
// Missing fields take the defaults below. `image` may be given as a name or a sha256 prefix
// on submission; the API resolves it to the full sha256 before the job is stored.
struct JobSpec {
  Operation operation = Operation::flash;
  ProbeSelector probe;
  std::string image;  // sha256: flash and verify
  EraseMode erase = EraseMode::automatic;
  bool verify = true;
  bool readback = false;
  bool skip_unchanged = true;
  bool reset = false;  // reset and run the target after a successful flash or erase
  std::optional<std::uint32_t> address, size;    // erase (range), read (required)
  std::optional<std::uint32_t> speed_khz;        // default: the probe's configuration
  std::optional<std::uint32_t> queue_timeout_s;  // default: the daemon's configuration
  std::optional<bool> connect_under_reset;       // default: the probe's configuration
  std::optional<SerialRequest> serial;           // flash only
  // Guarded operations: the serial of the probe the job names, typed again ("confirm").
  std::string confirm;
  // option_bytes: KEY=VALUE assignments as `probefarm option-bytes set` takes them
  // ("option_set": {"nRST_STOP": "0"}); empty: only read them.
  std::vector<std::pair<std::string, std::string>> option_set;
  // protect: true sets write protection, false clears it ("write_protect": true).
  bool write_protect = true;

  bool guarded() const { return is_guarded(operation, !option_set.empty()); }
};

// Throws Error(usage) naming the field for an unknown operation, a missing image, a read
// without a range, a selector without any criterion, an unknown key …
JobSpec job_spec_from_json(const nlohmann::json& j);
// The longest queue_timeout_s a job or the configuration may ask for: a week.
constexpr std::uint32_t kMaxQueueTimeoutS = 7 * 24 * 3600;
nlohmann::json to_json(const JobSpec& spec);

// Wall time of one phase ("attach", "plan", "read", "erase", "program", "verify", "reset").
struct PhaseTime {
  std::string phase;
  double seconds = 0;
};

// Option bytes as a job read them (option_bytes, protect and unlock jobs). JSON:
// {"rdp_level", "values": {KEY: value}, "write_protected": [{"address", "size"}],
//  "changed", "reload"}.
struct OptionBytesView {
  unsigned rdp_level = 0;
  std::vector<std::pair<std::string, std::uint32_t>> values;  // register order
  std::vector<SegmentInfo> write_protected;
  bool changed = false;  // the job wrote them (false: they already held what was asked)
  std::string reload;    // how they were loaded again after a write
};
nlohmann::json to_json(const OptionBytesView& option_bytes);

// What a finished (or failed part-way) job did.
struct JobResult {
  std::vector<PhaseTime> phases;
  std::uint64_t image_bytes = 0;       // bytes in the image (flash, verify) or read
  std::uint64_t bytes_programmed = 0;  // bytes streamed into flash
  unsigned sectors_erased = 0, sectors_skipped = 0, sectors_programmed = 0;
  bool mass_erase = false;
  bool verified = false;
  std::string output_image;  // read: the sha256 of what was read, now in the image store
  std::uint32_t read_address = 0, read_size = 0;  // read: the range that was read
  std::optional<OptionBytesView> option_bytes;    // option_bytes, protect, unlock
};

// The API's "result" object: {"durations": {phase: seconds}, "image_bytes", …,
// "output_image" (sha256 or null)}. The database stores the same text.
nlohmann::json to_json(const JobResult& result);
// Lenient: a missing field keeps its default.
JobResult job_result_from_json(const nlohmann::json& j);

struct JobError {
  std::string category;  // category_name(ErrorCategory): "probe_io", "protection", …
  std::string message;
  std::string hint;
};

// A job as the API and the database see it. JSON: {"id", "state", "spec" (as above),
// "submitted_by", "idempotency_key", "probe" (serial it ran on, "" until assigned), "chip",
// "target_uid", "created_at", "started_at", "finished_at" (ISO 8601 or null),
// "progress": {"phase", "done", "total", "percent"}, "result" (JobResult fields),
// "error": {"category", "message", "hint"} or null}.
struct Job {
  std::int64_t id = 0;
  JobSpec spec;
  JobState state = JobState::queued;
  std::string submitted_by;
  std::string idempotency_key;
  std::string probe;       // serial of the probe that ran (runs) it
  std::string chip;        // target part, e.g. "STM32F405/407/415/417"
  std::string target_uid;  // 96-bit unique device ID as 24 hex digits
  std::int64_t created_at = 0, started_at = 0, finished_at = 0;  // ms; 0: not yet
  // Live progress (not stored in the database).
  std::string phase;
  std::uint64_t done = 0, total = 0;
  JobResult result;
  std::optional<JobError> error;
  // The production serial number allocated when the job started (spec.serial); kept even
  // when the job then failed: a value is issued once.
  std::optional<std::uint64_t> serial_value;
};
nlohmann::json to_json(const Job& job);

// ---- production counters ------------------------------------------------------------------

// A serial-number counter. JSON: {"name", "start", "next_value", "step", "width", "endian"
// ("little" | "big"), "issued" (values allocated so far), "max_value", "created_at",
// "created_by"}.
struct Counter {
  std::string name;
  std::uint64_t start = 0;
  std::uint64_t next_value = 0;
  std::uint64_t step = 1;
  unsigned width = 4;  // bytes written into the image, 1..8
  bool big_endian = false;
  std::int64_t created_at = 0;
  std::string created_by;
};
nlohmann::json to_json(const Counter& counter);
// The largest value `width` bytes hold.
std::uint64_t counter_max(unsigned width);
// `value` as `width` bytes in the counter's byte order.
std::vector<std::uint8_t> counter_bytes(const Counter& counter, std::uint64_t value);
// Names are what a URL path segment and a CLI argument take without quoting:
// 1..64 of [A-Za-z0-9._-].
bool valid_counter_name(std::string_view name);

// ---- images -------------------------------------------------------------------------------

// An image in the content-addressed store. JSON: {"sha256", "name", "format" ("elf",
// "ihex", "srec", "bin"), "size" (file bytes), "data_bytes" (bytes of data), "segments":
// [{"address", "size"}], "entry" (or null), "bin_address" (or null), "uploaded_by",
// "created_at"}.
struct ImageMeta {
  std::string sha256;  // of the file as uploaded
  std::string name;
  std::string format;  // "elf", "ihex", "srec", "bin"
  std::uint64_t size = 0;
  std::uint64_t data_bytes = 0;
  std::vector<SegmentInfo> segments;
  std::optional<std::uint32_t> entry;
  std::optional<std::uint32_t> bin_address;
  std::string uploaded_by;
  std::int64_t created_at = 0;
};
nlohmann::json to_json(const ImageMeta& image);

// ---- probes -------------------------------------------------------------------------------

enum class ProbeState { idle, busy, offline };
std::string_view probe_state_name(ProbeState state);

// The target behind a probe, as detected when the probe arrived and after each job.
struct TargetInfo {
  std::string chip;  // "STM32F405/407/415/417"
  std::uint16_t dev_id = 0, rev_id = 0;
  std::string core;  // "Cortex-M4 r0p1"
  std::uint32_t flash_base = 0, flash_size = 0;
  std::uint32_t ram_base = 0, ram_size = 0;
  unsigned sectors = 0;
  std::string unique_id;  // 24 hex digits
  int rdp_level = -1;     // -1: unknown
  std::uint32_t speed_khz = 0;
};

// A probe as GET /api/v1/probes shows it. JSON: {"serial", "driver" ("cmsis-dap-v2", …),
// "vendor", "product", "firmware", "usb_path", "state", "name", "labels", "target"
// (TargetInfo or null), "target_error" (error object or null), "current_job" (id or null),
// "queued_jobs", "last_seen"}.
// Who holds a probe in an interactive session (GDB, console).
struct SessionHolder {
  std::string kind;        // "gdb" | "console"
  std::string who;         // the token's name
  std::int64_t since = 0;  // ms
};

struct ProbeView {
  std::string serial;
  std::string driver;
  std::string vendor, product, firmware, usb_path;
  ProbeState state = ProbeState::offline;
  std::string name;
  std::vector<std::string> labels;
  std::optional<TargetInfo> target;
  std::optional<JobError> target_error;  // why the target could not be detected
  std::optional<std::int64_t> current_job;
  std::optional<SessionHolder> session;
  unsigned queued_jobs = 0;
  std::int64_t last_seen = 0;
};
nlohmann::json to_json(const ProbeView& probe);
nlohmann::json to_json(const TargetInfo& target);

// Does `probe` satisfy every criterion of `selector` (serial, chip, label)? State is not
// considered.
bool matches(const ProbeSelector& selector, const ProbeView& probe);
// "stm32f746ng" against the chip database's line "STM32F74x/75x" (see model.cpp).
bool chip_matches(const std::string& wanted, const std::string& line_name);

// ---- audit --------------------------------------------------------------------------------

// One row per finished job. JSON: {"id", "job_id", "at", "who", "probe", "target_uid",
// "chip", "image_sha256", "operation", "operations" (the spec as JSON), "result" (the final
// state name), "durations" ({phase: seconds}), "bytes_programmed", "image_bytes",
// "error" (message or "")}.
struct AuditRow {
  std::int64_t id = 0;
  std::int64_t job_id = 0;  // 0 (JSON null): a session or console row, not a job
  std::int64_t at = 0;      // ms
  std::string who;
  std::string probe;
  std::string target_uid;
  std::string chip;
  std::string image_sha256;
  std::string operation;
  std::string operations;  // JSON text of the spec
  std::string result;      // job_state_name
  std::string durations;   // JSON text {phase: seconds}
  std::uint64_t bytes_programmed = 0;
  std::uint64_t image_bytes = 0;
  std::string error;
  std::string detail;          // what a session or console command did
  std::string serial_counter;  // the production serial number the job used, if any
  std::optional<std::uint64_t> serial_value;
};
nlohmann::json to_json(const AuditRow& row);

// The error object of every API error response: {"error": {"category", "message", "hint"}}.
nlohmann::json error_json(std::string_view category, std::string_view message,
                          std::string_view hint = {});

}  // namespace probefarm::server
