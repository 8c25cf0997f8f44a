#include "server/database.hpp"

#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <system_error>

#include "probe/error.hpp"

namespace probefarm::server {

using nlohmann::json;

namespace {

// "PFRM": marks the file as probefarmd's, so a foreign SQLite file is refused rather than
// having tables added to it.
constexpr std::int64_t kApplicationId = 0x5046524d;
constexpr std::int64_t kSchemaVersion = 2;

// Version 1. Later versions add migrations below this one; user_version says which ran.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state TEXT NOT NULL,
  spec TEXT NOT NULL,
  requested_probe TEXT NOT NULL DEFAULT '',
  submitted_by TEXT NOT NULL,
  idempotency_key TEXT NOT NULL DEFAULT '',
  probe TEXT NOT NULL DEFAULT '',
  chip TEXT NOT NULL DEFAULT '',
  target_uid TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL DEFAULT 0,
  result TEXT,
  error TEXT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (submitted_by, idempotency_key)
  WHERE idempotency_key <> '';
CREATE INDEX jobs_state ON jobs (state);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL UNIQUE REFERENCES jobs (id),
  at INTEGER NOT NULL,
  who TEXT NOT NULL,
  probe TEXT NOT NULL,
  target_uid TEXT NOT NULL,
  chip TEXT NOT NULL,
  image_sha256 TEXT NOT NULL,
  operation TEXT NOT NULL,
  operations TEXT NOT NULL,
  result TEXT NOT NULL,
  durations TEXT NOT NULL,
  bytes_programmed INTEGER NOT NULL,
  image_bytes INTEGER NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE TABLE images (
  sha256 TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  format TEXT NOT NULL,
  size INTEGER NOT NULL,
  data_bytes INTEGER NOT NULL,
  segments TEXT NOT NULL,
  entry INTEGER,
  bin_address INTEGER,
  uploaded_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX images_name ON images (name, created_at);
CREATE TABLE probes (
  serial TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  labels TEXT NOT NULL
);
CREATE TABLE tokens (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
)sql";

// Version 2: audit rows for what is not a job (a GDB session, a console command that
// writes: job_id NULL, `detail` says what was done), the production serial number a job
// used, and the serial-number counters.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE audit_v2 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER UNIQUE REFERENCES jobs (id),
  at INTEGER NOT NULL,
  who TEXT NOT NULL,
  probe TEXT NOT NULL,
  target_uid TEXT NOT NULL,
  chip TEXT NOT NULL,
  image_sha256 TEXT NOT NULL,
  operation TEXT NOT NULL,
  operations TEXT NOT NULL,
  result TEXT NOT NULL,
  durations TEXT NOT NULL,
  bytes_programmed INTEGER NOT NULL,
  image_bytes INTEGER NOT NULL,
  error TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  serial_counter TEXT NOT NULL DEFAULT '',
  serial_value INTEGER
);
INSERT INTO audit_v2 (id, job_id, at, who, probe, target_uid, chip, image_sha256, operation,
                      operations, result, durations, bytes_programmed, image_bytes, error)
  SELECT id, job_id, at, who, probe, target_uid, chip, image_sha256, operation, operations,
         result, durations, bytes_programmed, image_bytes, error FROM audit;
DROP TABLE audit;
ALTER TABLE audit_v2 RENAME TO audit;
CREATE INDEX audit_at ON audit (at);
ALTER TABLE jobs ADD COLUMN serial_value INTEGER;
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  start INTEGER NOT NULL,
  next_value INTEGER NOT NULL,
  step INTEGER NOT NULL,
  width INTEGER NOT NULL,
  big_endian INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL
);
)sql";

constexpr const char* kJobColumns =
    "id, state, spec, submitted_by, idempotency_key, probe, chip, target_uid, created_at, "
    "started_at, finished_at, result, error, serial_value";

constexpr const char* kAuditColumns =
    "id, job_id, at, who, probe, target_uid, chip, image_sha256, operation, operations, result, "
    "durations, bytes_programmed, image_bytes, error, detail, serial_counter, serial_value";

constexpr const char* kImageColumns =
    "sha256, name, format, size, data_bytes, segments, entry, bin_address, uploaded_by, "
    "created_at";

// The filter of list_audit/count_audit/audit_csv as fixed SQL: an empty criterion binds ''
// or 0 and disables its clause, so no SQL text is ever built from input.
constexpr const char* kAuditWhere =
    " WHERE (?1 = '' OR probe = ?1) AND (?2 = '' OR result = ?2) AND (?3 = '' OR who = ?3)"
    " AND (?4 = '' OR image_sha256 = ?4) AND (?5 = '' OR target_uid = ?5)"
    " AND (?6 = 0 OR at >= ?6) AND (?7 = 0 OR at <= ?7) AND (?10 = 0 OR job_id = ?10)";

std::string csv_field(const std::string& s) {
  // RFC 4180 section 2: fields with commas, quotes or line breaks are quoted, and a quote
  // inside is doubled.
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

// ---- statements ---------------------------------------------------------------------------

class Database::Statement {
 public:
  Statement(Database& owner, const char* sql) : owner_(owner) {
    if (sqlite3_prepare_v2(owner.db_, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      owner_.fail("prepare");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& bind(int index, const std::string& value) {
    check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind(int index, const char* value) { return bind(index, std::string(value)); }
  Statement& bind(int index, std::string_view value) { return bind(index, std::string(value)); }
  Statement& bind_null(int index) {
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }
  template <typename T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, static_cast<std::int64_t>(*value)) : bind_null(index);
  }

  // True while there is a row to read.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    owner_.fail("step");
  }
  void run() {
    while (step()) {
    }
  }

  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) owner_.fail("bind");
  }

  Database& owner_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Every write goes through one of these: BEGIN IMMEDIATE takes the write lock up front,
// so a read-then-write (idempotency check, then insert) cannot interleave with another
// process's writer.
class Database::Transaction {
 public:
  explicit Transaction(Database& owner) : owner_(owner) { owner_.exec_locked("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!committed_) sqlite3_exec(owner_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    owner_.exec_locked("COMMIT");
    committed_ = true;
  }

 private:
  Database& owner_;
  bool committed_ = false;
};

void Database::fail(const char* what) const {
  const int code = sqlite3_extended_errcode(db_);
  std::string hint = "check that the data directory is writable and has free space";
  if ((code & 0xFF) == SQLITE_BUSY)
    hint = "another process holds the database; stop it or use another --data-dir";
  else if ((code & 0xFF) == SQLITE_NOTADB || (code & 0xFF) == SQLITE_CORRUPT)
    hint = "the file is not a probefarmd database; move it away or use another --data-dir";
  throw Error(ErrorCategory::internal,
              "database " + path_.string() + ": " + what + ": " + sqlite3_errmsg(db_), hint);
}

void Database::exec_locked(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    throw Error(ErrorCategory::internal, "database " + path_.string() + ": " + text,
                "check that the data directory is writable and has free space");
  }
}

// ---- open and schema ----------------------------------------------------------------------

Database::Database(const std::filesystem::path& path) : path_(path) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCategory::internal, "cannot open database " + path.string() + ": " + message,
                "check that the data directory exists and is writable");
  }
  try {
    // A second probefarmd (or a backup tool) may hold the lock briefly.
    sqlite3_busy_timeout(db_, 5000);
    std::int64_t app_id = 0, version = 0, tables = 0;
    {
      Statement s(*this, "PRAGMA application_id");
      if (s.step()) app_id = s.integer(0);
    }
    {
      Statement s(*this, "PRAGMA user_version");
      if (s.step()) version = s.integer(0);
    }
    {
      Statement s(*this, "SELECT count(*) FROM sqlite_master");
      if (s.step()) tables = s.integer(0);
    }
    if ((version == 0 && tables != 0) || (version != 0 && app_id != kApplicationId))
      throw Error(ErrorCategory::internal,
                  "database " + path.string() + " is not a probefarmd database",
                  "move the file away or use another --data-dir");
    if (version > kSchemaVersion)
      throw Error(ErrorCategory::internal,
                  "database " + path.string() + " has schema version " + std::to_string(version) +
                      ", newer than this probefarmd's " + std::to_string(kSchemaVersion),
                  "run the newer probefarmd, or restore a backup made for this version");
    {
      // WAL: readers (API) do not block the writer (actors); FULL: a commit is on disk
      // before the caller is told, so a finished job's audit row survives power loss.
      Statement s(*this, "PRAGMA journal_mode=WAL");
      if (!s.step() || s.text(0) != "wal")
        throw Error(ErrorCategory::internal,
                    "database " + path.string() + ": cannot switch to WAL journal mode",
                    "put the data directory on a local file system");
    }
    exec_locked("PRAGMA synchronous=FULL");
    exec_locked("PRAGMA foreign_keys=ON");
    if (version < 1) {
      Transaction t(*this);
      exec_locked(kSchemaV1);
      exec_locked(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str());
      exec_locked("PRAGMA user_version=1");
      t.commit();
    }
    if (version < 2) {
      Transaction t(*this);
      exec_locked(kSchemaV2);
      exec_locked("PRAGMA user_version=2");
      t.commit();
    }
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

Database::~Database() {
  if (db_) sqlite3_close(db_);
}

void Database::exec(const std::string& sql) {
  std::lock_guard lock(mutex_);
  exec_locked(sql.c_str());
}

// ---- jobs ---------------------------------------------------------------------------------

Job Database::read_job(const Statement& s) {
  Job job;
  job.id = s.integer(0);
  const auto state = parse_job_state(s.text(1));
  if (!state)
    throw Error(ErrorCategory::internal, "database: job " + std::to_string(job.id) +
                                             " has an unknown state '" + s.text(1) + "'");
  job.state = *state;
  job.spec = job_spec_from_json(json::parse(s.text(2)));
  job.submitted_by = s.text(3);
  job.idempotency_key = s.text(4);
  job.probe = s.text(5);
  job.chip = s.text(6);
  job.target_uid = s.text(7);
  job.created_at = s.integer(8);
  job.started_at = s.integer(9);
  job.finished_at = s.integer(10);
  if (!s.is_null(11)) job.result = job_result_from_json(json::parse(s.text(11), nullptr, false));
  if (!s.is_null(12)) {
    const json e = json::parse(s.text(12), nullptr, false);
    if (e.is_object())
      job.error = JobError{e.value("category", ""), e.value("message", ""), e.value("hint", "")};
  }
  // SQLite integers are signed: a 64-bit serial above INT64_MAX is stored as its two's
  // complement and comes back the same.
  if (!s.is_null(13)) job.serial_value = static_cast<std::uint64_t>(s.integer(13));
  return job;
}

std::optional<Job> Database::get_job_locked(std::int64_t id) {
  Statement s(*this, (std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?1").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_job(s);
}

Database::Inserted Database::insert_job(const JobSpec& spec, const std::string& submitted_by,
                                        const std::string& idempotency_key) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  if (!idempotency_key.empty()) {
    Statement s(*this, (std::string("SELECT ") + kJobColumns +
                        " FROM jobs WHERE submitted_by = ?1 AND idempotency_key = ?2")
                           .c_str());
    s.bind(1, submitted_by).bind(2, idempotency_key);
    if (s.step()) {
      Inserted existing{read_job(s), false};
      t.commit();
      return existing;
    }
  }
  Statement s(*this,
              "INSERT INTO jobs (state, spec, requested_probe, submitted_by, idempotency_key, "
              "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  s.bind(1, job_state_name(JobState::queued))
      .bind(2, to_json(spec).dump())
      .bind(3, spec.probe.serial)
      .bind(4, submitted_by)
      .bind(5, idempotency_key)
      .bind(6, now_ms());
  s.run();
  const std::int64_t id = sqlite3_last_insert_rowid(db_);
  auto job = get_job_locked(id);
  t.commit();
  return {*job, true};
}

std::optional<std::uint64_t> Database::mark_running(std::int64_t id, const std::string& probe,
                                                    const std::string& chip,
                                                    const std::string& target_uid,
                                                    std::int64_t started_at,
                                                    const std::string& serial_counter) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  std::optional<std::uint64_t> value;
  if (!serial_counter.empty()) value = allocate_locked(serial_counter);
  Statement s(*this,
              "UPDATE jobs SET state = 'running', probe = ?2, chip = ?3, target_uid = ?4, "
              "started_at = ?5, serial_value = ?6 WHERE id = ?1 AND state = 'queued'");
  s.bind(1, id).bind(2, probe).bind(3, chip).bind(4, target_uid).bind(5, started_at).bind(6, value);
  s.run();
  if (sqlite3_changes(db_) != 1) {
    auto job = get_job_locked(id);
    throw Error(ErrorCategory::internal,
                "job " + std::to_string(id) +
                    (job ? " is " + std::string(job_state_name(job->state)) + ", not queued"
                         : " does not exist"),
                "only a queued job can start");
  }
  t.commit();
  return value;
}

void Database::finish_locked(const Job& job) {
  const std::string state(job_state_name(job.state));
  const std::int64_t finished_at = job.finished_at ? job.finished_at : now_ms();
  const std::string operations = to_json(job.spec).dump();
  {
    Statement s(*this,
                "UPDATE jobs SET state = ?2, probe = ?3, chip = ?4, target_uid = ?5, "
                "started_at = ?6, finished_at = ?7, result = ?8, error = ?9 "
                "WHERE id = ?1 AND state IN ('queued', 'running')");
    s.bind(1, job.id)
        .bind(2, state)
        .bind(3, job.probe)
        .bind(4, job.chip)
        .bind(5, job.target_uid)
        .bind(6, job.started_at)
        .bind(7, finished_at)
        .bind(8, to_json(job.result).dump());
    if (job.error)
      s.bind(9, json{{"category", job.error->category},
                     {"message", job.error->message},
                     {"hint", job.error->hint}}
                    .dump());
    else
      s.bind_null(9);
    s.run();
  }
  // One audit row per job: a second finish would be a second, contradicting record.
  if (sqlite3_changes(db_) != 1) {
    auto stored = get_job_locked(job.id);
    throw Error(ErrorCategory::internal,
                "job " + std::to_string(job.id) +
                    (stored ? " is already " + std::string(job_state_name(stored->state))
                            : " does not exist"),
                "a job is finished once");
  }
  Statement s(*this,
              "INSERT INTO audit (job_id, at, who, probe, target_uid, chip, image_sha256, "
              "operation, operations, result, durations, bytes_programmed, image_bytes, error, "
              "serial_counter, serial_value) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
  // A read job has no input image; its audit row names the backup it produced.
  const std::string& image = job.spec.image.empty() ? job.result.output_image : job.spec.image;
  s.bind(1, job.id)
      .bind(2, finished_at)
      .bind(3, job.submitted_by)
      .bind(4, job.probe)
      .bind(5, job.target_uid)
      .bind(6, job.chip)
      .bind(7, image)
      .bind(8, operation_name(job.spec.operation))
      .bind(9, operations)
      .bind(10, state)
      .bind(11, to_json(job.result)["durations"].dump())
      .bind(12, static_cast<std::int64_t>(job.result.bytes_programmed))
      .bind(13, static_cast<std::int64_t>(job.result.image_bytes))
      .bind(14, job.error ? job.error->message : std::string())
      .bind(15, job.serial_value && job.spec.serial ? job.spec.serial->counter : std::string())
      .bind(16, job.serial_value);
  s.run();
}

void Database::finish_job(const Job& job) {
  if (!is_final(job.state))
    throw Error(ErrorCategory::internal,
                "finish_job: job " + std::to_string(job.id) + " is " +
                    std::string(job_state_name(job.state)) + ", not a final state",
                "finish a job with succeeded, failed, cancelled or interrupted");
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  finish_locked(job);
  t.commit();
}

std::optional<Job> Database::get_job(std::int64_t id) {
  std::lock_guard lock(mutex_);
  return get_job_locked(id);
}

std::vector<Job> Database::list_jobs(const JobFilter& filter) {
  std::lock_guard lock(mutex_);
  Statement s(*this, (std::string("SELECT ") + kJobColumns +
                      " FROM jobs WHERE (?1 IS NULL OR state = ?1)"
                      " AND (?2 = '' OR probe = ?2 OR requested_probe = ?2)"
                      " AND (?3 = '' OR submitted_by = ?3) AND (?4 = 0 OR id < ?4)"
                      " ORDER BY id DESC LIMIT ?5")
                         .c_str());
  if (filter.state)
    s.bind(1, job_state_name(*filter.state));
  else
    s.bind_null(1);
  s.bind(2, filter.probe)
      .bind(3, filter.submitted_by)
      .bind(4, filter.before_id)
      .bind(5, filter.limit ? std::int64_t{filter.limit} : std::int64_t{-1});
  std::vector<Job> jobs;
  while (s.step())
    jobs.push_back(read_job(s));
  return jobs;
}

std::vector<Job> Database::jobs_in_state(JobState state) {
  std::lock_guard lock(mutex_);
  Statement s(*this,
              (std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state = ?1 ORDER BY id ASC")
                  .c_str());
  s.bind(1, job_state_name(state));
  std::vector<Job> jobs;
  while (s.step())
    jobs.push_back(read_job(s));
  return jobs;
}

std::vector<Job> Database::interrupt_running_jobs() {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  std::vector<Job> jobs;
  {
    Statement s(*this, (std::string("SELECT ") + kJobColumns +
                        " FROM jobs WHERE state = 'running' ORDER BY id ASC")
                           .c_str());
    while (s.step())
      jobs.push_back(read_job(s));
  }
  const std::int64_t now = now_ms();
  for (Job& job : jobs) {
    job.state = JobState::interrupted;
    job.finished_at = now;
    job.error = JobError{"internal",
                         "probefarmd stopped while the job was running (crash or kill); the "
                         "target may be partly programmed",
                         "submit the job again"};
    finish_locked(job);
  }
  t.commit();
  return jobs;
}

// ---- production counters ------------------------------------------------------------------

namespace {

constexpr const char* kCounterColumns =
    "name, start, next_value, step, width, big_endian, created_at, created_by";

[[noreturn]] void bad_counter(const std::string& message, const std::string& hint = {}) {
  throw Error(ErrorCategory::usage, message, hint);
}

}  // namespace

std::optional<Counter> Database::get_counter_locked(const std::string& name) {
  Statement s(
      *this, (std::string("SELECT ") + kCounterColumns + " FROM counters WHERE name = ?1").c_str());
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  Counter c;
  c.name = s.text(0);
  // Stored as SQLite's signed 64-bit integers; the casts round-trip every uint64 value.
  c.start = static_cast<std::uint64_t>(s.integer(1));
  c.next_value = static_cast<std::uint64_t>(s.integer(2));
  c.step = static_cast<std::uint64_t>(s.integer(3));
  c.width = static_cast<unsigned>(s.integer(4));
  c.big_endian = s.integer(5) != 0;
  c.created_at = s.integer(6);
  c.created_by = s.text(7);
  return c;
}

std::uint64_t Database::allocate_locked(const std::string& name) {
  auto c = get_counter_locked(name);
  if (!c)
    bad_counter("serial-number counter '" + name + "' does not exist",
                "create it with POST /api/v1/counters (probefarm counters create)");
  const std::uint64_t value = c->next_value;
  // Exhausted: the next value no longer fits the counter's bytes, or stepping past it
  // would wrap around 2^64 and issue old values again.
  if (value > counter_max(c->width) || value > ~std::uint64_t{0} - c->step)
    bad_counter("serial-number counter '" + name + "' is exhausted: " + std::to_string(value) +
                    " does not fit in " + std::to_string(c->width) + " bytes",
                "create a new counter (a wider one, or one starting elsewhere)");
  Statement s(*this, "UPDATE counters SET next_value = ?2 WHERE name = ?1");
  s.bind(1, name).bind(2, static_cast<std::int64_t>(value + c->step));
  s.run();
  return value;
}

Counter Database::create_counter(const Counter& counter) {
  if (!valid_counter_name(counter.name))
    bad_counter("'" + counter.name + "' is not a counter name",
                "names are 1 to 64 letters, digits, '.', '_' or '-'");
  if (counter.width < 1 || counter.width > 8)
    bad_counter("counter width must be 1 to 8 bytes, not " + std::to_string(counter.width));
  if (counter.step == 0) bad_counter("counter step must not be 0");
  if (counter.start > counter_max(counter.width))
    bad_counter("counter start " + std::to_string(counter.start) + " does not fit in " +
                std::to_string(counter.width) + " bytes");
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  if (get_counter_locked(counter.name))
    throw Error(ErrorCategory::usage, "counter '" + counter.name + "' already exists",
                "counters are never reset or replaced, so no value is issued twice; create "
                "one with another name");
  Statement s(*this,
              "INSERT INTO counters (name, start, next_value, step, width, big_endian, "
              "created_at, created_by) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.bind(1, counter.name)
      .bind(2, static_cast<std::int64_t>(counter.start))
      .bind(3, static_cast<std::int64_t>(counter.step))
      .bind(4, std::int64_t{counter.width})
      .bind(5, std::int64_t{counter.big_endian})
      .bind(6, counter.created_at ? counter.created_at : now_ms())
      .bind(7, counter.created_by);
  s.run();
  auto stored = get_counter_locked(counter.name);
  t.commit();
  return *stored;
}

std::optional<Counter> Database::get_counter(const std::string& name) {
  std::lock_guard lock(mutex_);
  return get_counter_locked(name);
}

std::vector<Counter> Database::list_counters() {
  std::vector<std::string> names;
  std::lock_guard lock(mutex_);
  {
    Statement s(*this, "SELECT name FROM counters ORDER BY name");
    while (s.step())
      names.push_back(s.text(0));
  }
  std::vector<Counter> out;
  for (const auto& n : names)
    if (auto c = get_counter_locked(n)) out.push_back(std::move(*c));
  return out;
}

// ---- audit --------------------------------------------------------------------------------

namespace {

void bind_audit_filter(auto& s, const AuditFilter& f) {
  s.bind(1, f.probe)
      .bind(2, f.result)
      .bind(3, f.who)
      .bind(4, f.image_sha256)
      .bind(5, f.target_uid)
      .bind(6, f.since)
      .bind(7, f.until)
      .bind(10, f.job_id);  // ?8 and ?9 are list_audit's LIMIT and OFFSET
}

}  // namespace

std::vector<AuditRow> Database::list_audit(const AuditFilter& filter) {
  std::lock_guard lock(mutex_);
  Statement s(*this, (std::string("SELECT ") + kAuditColumns + " FROM audit" + kAuditWhere +
                      " ORDER BY id DESC LIMIT ?8 OFFSET ?9")
                         .c_str());
  bind_audit_filter(s, filter);
  s.bind(8, filter.limit ? std::int64_t{filter.limit} : std::int64_t{-1})
      .bind(9, std::int64_t{filter.offset});
  std::vector<AuditRow> rows;
  while (s.step()) {
    AuditRow r;
    r.id = s.integer(0);
    r.job_id = s.integer(1);
    r.at = s.integer(2);
    r.who = s.text(3);
    r.probe = s.text(4);
    r.target_uid = s.text(5);
    r.chip = s.text(6);
    r.image_sha256 = s.text(7);
    r.operation = s.text(8);
    r.operations = s.text(9);
    r.result = s.text(10);
    r.durations = s.text(11);
    r.bytes_programmed = static_cast<std::uint64_t>(s.integer(12));
    r.image_bytes = static_cast<std::uint64_t>(s.integer(13));
    r.error = s.text(14);
    r.detail = s.text(15);
    r.serial_counter = s.text(16);
    if (!s.is_null(17)) r.serial_value = static_cast<std::uint64_t>(s.integer(17));
    rows.push_back(std::move(r));
  }
  return rows;
}

std::int64_t Database::add_audit(const AuditRow& row) {
  std::lock_guard lock(mutex_);
  Statement s(*this,
              "INSERT INTO audit (job_id, at, who, probe, target_uid, chip, image_sha256, "
              "operation, operations, result, durations, bytes_programmed, image_bytes, error, "
              "detail) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
  s.bind(1, row.at ? row.at : now_ms())
      .bind(2, row.who)
      .bind(3, row.probe)
      .bind(4, row.target_uid)
      .bind(5, row.chip)
      .bind(6, row.image_sha256)
      .bind(7, row.operation)
      .bind(8, row.operations.empty() ? std::string("{}") : row.operations)
      .bind(9, row.result)
      .bind(10, row.durations.empty() ? std::string("{}") : row.durations)
      .bind(11, static_cast<std::int64_t>(row.bytes_programmed))
      .bind(12, static_cast<std::int64_t>(row.image_bytes))
      .bind(13, row.error)
      .bind(14, row.detail);
  s.run();
  return sqlite3_last_insert_rowid(db_);
}

std::uint64_t Database::count_audit(const AuditFilter& filter) {
  std::lock_guard lock(mutex_);
  Statement s(*this, (std::string("SELECT count(*) FROM audit") + kAuditWhere).c_str());
  bind_audit_filter(s, filter);
  return s.step() ? static_cast<std::uint64_t>(s.integer(0)) : 0;
}

std::string Database::audit_csv(const AuditFilter& filter) {
  std::string out =
      "id,job_id,at,who,probe,target_uid,chip,image_sha256,operation,operations,result,"
      "durations,bytes_programmed,image_bytes,error,detail,serial_counter,serial_value\r\n";
  for (const AuditRow& r : list_audit(filter)) {
    const std::string fields[] = {std::to_string(r.id),
                                  r.job_id ? std::to_string(r.job_id) : std::string(),
                                  iso_time(r.at),
                                  r.who,
                                  r.probe,
                                  r.target_uid,
                                  r.chip,
                                  r.image_sha256,
                                  r.operation,
                                  r.operations,
                                  r.result,
                                  r.durations,
                                  std::to_string(r.bytes_programmed),
                                  std::to_string(r.image_bytes),
                                  r.error,
                                  r.detail,
                                  r.serial_counter,
                                  r.serial_value ? std::to_string(*r.serial_value) : std::string()};
    bool first = true;
    for (const std::string& f : fields) {
      if (!first) out += ',';
      out += csv_field(f);
      first = false;
    }
    out += "\r\n";  // RFC 4180: CRLF line breaks
  }
  return out;
}

// ---- images -------------------------------------------------------------------------------

namespace {

template <typename S>
ImageMeta read_image(const S& s) {
  ImageMeta m;
  m.sha256 = s.text(0);
  m.name = s.text(1);
  m.format = s.text(2);
  m.size = static_cast<std::uint64_t>(s.integer(3));
  m.data_bytes = static_cast<std::uint64_t>(s.integer(4));
  const json segments = json::parse(s.text(5), nullptr, false);
  if (segments.is_array())
    for (const auto& seg : segments)
      m.segments.push_back({seg.value("address", 0u), seg.value("size", 0u)});
  if (!s.is_null(6)) m.entry = static_cast<std::uint32_t>(s.integer(6));
  if (!s.is_null(7)) m.bin_address = static_cast<std::uint32_t>(s.integer(7));
  m.uploaded_by = s.text(8);
  m.created_at = s.integer(9);
  return m;
}

}  // namespace

ImageMeta Database::put_image(const ImageMeta& meta) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  {
    json segments = json::array();
    for (const auto& seg : meta.segments)
      segments.push_back({{"address", seg.address}, {"size", seg.size}});
    Statement s(*this,
                "INSERT OR IGNORE INTO images (sha256, name, format, size, data_bytes, segments, "
                "entry, bin_address, uploaded_by, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    s.bind(1, meta.sha256)
        .bind(2, meta.name)
        .bind(3, meta.format)
        .bind(4, static_cast<std::int64_t>(meta.size))
        .bind(5, static_cast<std::int64_t>(meta.data_bytes))
        .bind(6, segments.dump())
        .bind(7, meta.entry)
        .bind(8, meta.bin_address)
        .bind(9, meta.uploaded_by)
        .bind(10, meta.created_at ? meta.created_at : now_ms());
    s.run();
  }
  Statement s(*this,
              (std::string("SELECT ") + kImageColumns + " FROM images WHERE sha256 = ?1").c_str());
  s.bind(1, meta.sha256);
  if (!s.step()) fail("put_image");
  ImageMeta stored = read_image(s);
  t.commit();
  return stored;
}

std::optional<ImageMeta> Database::get_image(const std::string& sha256) {
  std::lock_guard lock(mutex_);
  Statement s(*this,
              (std::string("SELECT ") + kImageColumns + " FROM images WHERE sha256 = ?1").c_str());
  s.bind(1, sha256);
  if (!s.step()) return std::nullopt;
  return read_image(s);
}

std::vector<ImageMeta> Database::list_images() {
  std::lock_guard lock(mutex_);
  Statement s(*this, (std::string("SELECT ") + kImageColumns +
                      " FROM images ORDER BY created_at DESC, rowid DESC")
                         .c_str());
  std::vector<ImageMeta> images;
  while (s.step())
    images.push_back(read_image(s));
  return images;
}

bool Database::delete_image(const std::string& sha256) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  Statement s(*this, "DELETE FROM images WHERE sha256 = ?1");
  s.bind(1, sha256);
  s.run();
  const bool deleted = sqlite3_changes(db_) > 0;
  t.commit();
  return deleted;
}

// ---- probes -------------------------------------------------------------------------------

void Database::put_probe_meta(const ProbeMeta& meta) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  Statement s(*this,
              "INSERT INTO probes (serial, name, labels) VALUES (?1, ?2, ?3) "
              "ON CONFLICT (serial) DO UPDATE SET name = excluded.name, labels = excluded.labels");
  s.bind(1, meta.serial).bind(2, meta.name).bind(3, json(meta.labels).dump());
  s.run();
  t.commit();
}

std::vector<ProbeMeta> Database::probe_metas() {
  std::lock_guard lock(mutex_);
  Statement s(*this, "SELECT serial, name, labels FROM probes ORDER BY serial");
  std::vector<ProbeMeta> metas;
  while (s.step()) {
    ProbeMeta m{s.text(0), s.text(1), {}};
    const json labels = json::parse(s.text(2), nullptr, false);
    if (labels.is_array())
      for (const auto& l : labels)
        if (l.is_string()) m.labels.push_back(l.get<std::string>());
    metas.push_back(std::move(m));
  }
  return metas;
}

// ---- tokens -------------------------------------------------------------------------------

void Database::put_token(const TokenRecord& token) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  Statement s(*this,
              "INSERT OR REPLACE INTO tokens (name, role, sha256, created_at) "
              "VALUES (?1, ?2, ?3, ?4)");
  s.bind(1, token.name)
      .bind(2, role_name(token.role))
      .bind(3, token.sha256)
      .bind(4, token.created_at ? token.created_at : now_ms());
  s.run();
  t.commit();
}

std::vector<TokenRecord> Database::tokens() {
  std::lock_guard lock(mutex_);
  Statement s(*this, "SELECT name, role, sha256, created_at FROM tokens ORDER BY created_at, name");
  std::vector<TokenRecord> tokens;
  while (s.step()) {
    const auto role = parse_role(s.text(1));
    // An unknown role never grants anything: read it as the weakest one.
    tokens.push_back({s.text(0), role.value_or(Role::viewer), s.text(2), s.integer(3)});
  }
  return tokens;
}

bool Database::delete_token(const std::string& name) {
  std::lock_guard lock(mutex_);
  Transaction t(*this);
  Statement s(*this, "DELETE FROM tokens WHERE name = ?1");
  s.bind(1, name);
  s.run();
  const bool deleted = sqlite3_changes(db_) > 0;
  t.commit();
  return deleted;
}

}  // namespace probefarm::server
