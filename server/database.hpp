#pragma once
// The daemon's state in SQLite (DATA_DIR/probefarm.db): jobs, the audit log, image
// metadata, probe names and labels, API tokens and production counters. WAL mode with
// synchronous=FULL: a row a caller was told about survives a crash or power loss. One
// connection behind a mutex; every method is one transaction and safe from any thread.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/model.hpp"

struct sqlite3;

namespace probefarm::server {

struct JobFilter {
  std::optional<JobState> state;
  std::string probe;           // serial it ran on, or the serial it asked for
  std::string submitted_by;    // token name
  std::int64_t before_id = 0;  // paging: only ids below this (0: from the newest)
  unsigned limit = 100;
};

struct AuditFilter {
  std::string probe;
  std::string result;  // job state name
  std::string who;
  std::string image_sha256;
  std::string target_uid;
  std::int64_t since = 0, until = 0;  // ms, inclusive; 0: unbounded
  std::int64_t job_id = 0;            // 0: any (rows without a job included)
  unsigned limit = 100;
  unsigned offset = 0;
};

struct TokenRecord {
  std::string name;
  Role role = Role::viewer;
  std::string sha256;  // hex of the token's SHA-256; the token itself is never stored
  std::int64_t created_at = 0;
};

struct ProbeMeta {
  std::string serial;
  std::string name;
  std::vector<std::string> labels;
};

class Database {
 public:
  // Creates the file and the schema if needed. Throws Error(internal) with SQLite's
  // message (and the path) when the database cannot be opened or is not ours.
  explicit Database(const std::filesystem::path& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // ---- jobs ----
  // Inserts a queued job (created_at = now). With a non-empty idempotency key already used
  // by `submitted_by`, returns that job instead and `created` is false: a retried POST gets
  // the same job. The job's id is assigned here.
  struct Inserted {
    Job job;
    bool created = false;
  };
  Inserted insert_job(const JobSpec& spec, const std::string& submitted_by,
                      const std::string& idempotency_key);
  // queued -> running, with the probe it runs on and what was detected there. With a
  // `serial_counter`, the counter's next value is allocated and stored on the job in the
  // same transaction, and returned: committed means issued, whatever happens to the job
  // afterwards. Error(usage) when the counter does not exist or its next value no longer
  // fits its width; nothing changes then.
  std::optional<std::uint64_t> mark_running(std::int64_t id, const std::string& probe,
                                            const std::string& chip, const std::string& target_uid,
                                            std::int64_t started_at,
                                            const std::string& serial_counter = {});
  // Stores the final state, result and error of `job` (state must be final; finished_at
  // is set to now if 0) and appends its audit row, in one transaction.
  void finish_job(const Job& job);
  std::optional<Job> get_job(std::int64_t id);
  std::vector<Job> list_jobs(const JobFilter& filter);
  // Every job in `state`, oldest first (startup: re-queue the queued ones).
  std::vector<Job> jobs_in_state(JobState state);
  // Startup after a crash: every job still marked running becomes interrupted, with an
  // error saying the daemon stopped during the job, and gets its audit row. Returns them.
  std::vector<Job> interrupt_running_jobs();

  // ---- audit ----
  std::vector<AuditRow> list_audit(const AuditFilter& filter);
  // Appends a row for what is not a job (job_id 0 is stored as NULL): a GDB session, a
  // console command that wrote. `at` 0 means now. Returns the row's id.
  std::int64_t add_audit(const AuditRow& row);
  std::uint64_t count_audit(const AuditFilter& filter);  // ignores limit/offset
  // RFC 4180 CSV with a header line; every row the filter selects (limit/offset apply
  // when limit is non-zero).
  std::string audit_csv(const AuditFilter& filter);

  // ---- images ----
  // Inserts or, for a sha256 already stored, leaves the row alone; returns the stored row.
  ImageMeta put_image(const ImageMeta& meta);
  std::optional<ImageMeta> get_image(const std::string& sha256);
  std::vector<ImageMeta> list_images();
  bool delete_image(const std::string& sha256);

  // ---- production counters ----
  // Inserts a counter (next_value = start). Error(usage) when the name is taken, the width
  // is outside 1..8, the step is 0 or the start does not fit the width.
  Counter create_counter(const Counter& counter);
  std::optional<Counter> get_counter(const std::string& name);
  std::vector<Counter> list_counters();  // by name

  // ---- probes ----
  void put_probe_meta(const ProbeMeta& meta);
  std::vector<ProbeMeta> probe_metas();

  // ---- tokens ----
  void put_token(const TokenRecord& token);  // replaces one of the same name
  std::vector<TokenRecord> tokens();
  bool delete_token(const std::string& name);

  // Runs `sql` (no results). For schema additions by later parts.
  void exec(const std::string& sql);

 private:
  class Statement;
  class Transaction;
  // Throws Error(internal) with SQLite's last message; `what` names the step.
  [[noreturn]] void fail(const char* what) const;
  void exec_locked(const char* sql);
  static Job read_job(const Statement& s);
  std::optional<Job> get_job_locked(std::int64_t id);
  void finish_locked(const Job& job);
  std::uint64_t allocate_locked(const std::string& counter);
  std::optional<Counter> get_counter_locked(const std::string& name);

  std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

}  // namespace probefarm::server
