#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <chrono>
#include <unordered_map>

#include "common/error.h"
#include "spec/job_spec.h"
#include "store/storage_error.h"

#include <google/protobuf/util/json_util.h>

namespace tsm::server {
namespace {

/// The error of a failed statement: a full disk is StorageFull (HTTP 507), a file that cannot be
/// read or written StorageError (500), the rest tsm::Error.
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& what) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      throw StorageFull("the disk is full: the database cannot grow (" + std::string(sqlite3_errmsg(db)) + "); nothing was written");
    case SQLITE_IOERR: case SQLITE_READONLY: case SQLITE_CANTOPEN: case SQLITE_PERM: case SQLITE_CORRUPT: case SQLITE_NOTADB:
      throw StorageError(what + ": the database file cannot be used (" + std::string(sqlite3_errmsg(db)) + "); nothing was written");
    default:
      throw Error(what + ": " + sqlite3_errmsg(db));
  }
}

// Versioned schema: never edit an entry, append a new one. A migration is a schema change, then
// optionally a row conversion in C++ and a second schema change, all in one transaction.
struct Migration {
  const char* sql;
  void (*convert)(sqlite3* db) = nullptr;
  const char* sql_after = nullptr;
};

void convert_job_specs_to_proto(sqlite3* db);
void convert_format1_specs(sqlite3* db);

const Migration kMigrations[] = {
    // 1: the initial schema
    {R"sql(
CREATE TABLE uploads (
  id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
  size_bytes INTEGER NOT NULL, tensors_json TEXT NOT NULL, created_unix INTEGER NOT NULL);
CREATE INDEX uploads_sha ON uploads(sha256);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, upload TEXT NOT NULL, method TEXT NOT NULL,
  spec_json TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL,
  error TEXT NOT NULL, result_json TEXT NOT NULL, timings_json TEXT NOT NULL, attempts INTEGER NOT NULL,
  created_unix INTEGER NOT NULL, started_unix INTEGER NOT NULL, finished_unix INTEGER NOT NULL);
CREATE INDEX jobs_state ON jobs(state);
CREATE TABLE artifacts (
  sha256 TEXT PRIMARY KEY, size_bytes INTEGER NOT NULL, job_id TEXT NOT NULL, method TEXT NOT NULL,
  created_unix INTEGER NOT NULL);
CREATE TABLE model_versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, tag TEXT NOT NULL, artifact_sha256 TEXT NOT NULL,
  job_id TEXT NOT NULL, size_bytes INTEGER NOT NULL, created_unix INTEGER NOT NULL);
CREATE INDEX model_versions_model ON model_versions(model, seq);
)sql"},
    // 2: device reports
    {R"sql(
CREATE TABLE reports (
  id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, model TEXT NOT NULL, tag TEXT NOT NULL,
  artifact_sha256 TEXT NOT NULL, created_unix INTEGER NOT NULL, report_json TEXT NOT NULL);
CREATE INDEX reports_model_device ON reports(model, device, created_unix);
)sql"},
    // 3: job specs as serialized tensorslm.v1.JobSpec instead of JSON text
    {"ALTER TABLE jobs ADD COLUMN spec_pb BLOB NOT NULL DEFAULT x'';", convert_job_specs_to_proto,
     "ALTER TABLE jobs DROP COLUMN spec_json;"},
    // 4: the resolved job beside the spec; format-1 specs (params and gate as JSON strings) typed
    {"ALTER TABLE jobs ADD COLUMN resolved_pb BLOB NOT NULL DEFAULT x'';", convert_format1_specs, nullptr},
    // 5: the lease of a claimed job (the queue shared with PostgresStore) and cancel requests
    {R"sql(
ALTER TABLE jobs ADD COLUMN locked_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_claim ON jobs(state, priority DESC, seq);
)sql"},
};

}  // namespace

/// Prepared statements by SQL text, prepared once (SQLITE_PREPARE_PERSISTENT) and reused: a point
/// read costs a bind and a step, not a parse. Used under the store's mutex only.
struct SqliteStore::StmtCache {
  std::unordered_map<std::string, sqlite3_stmt*> by_sql;
  ~StmtCache() {
    for (auto& [sql, st] : by_sql) sqlite3_finalize(st);
  }
};

namespace {

// A cached prepared statement with positional binding; reset (and unbound) when it goes out of scope.
class Stmt {
 public:
  Stmt(sqlite3* db, SqliteStore::StmtCache& cache, const std::string& sql) : db_(db) {
    auto it = cache.by_sql.find(sql);
    if (it != cache.by_sql.end()) {
      s_ = it->second;
      return;
    }
    if (sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) != SQLITE_OK)
      throw Error(std::string("sqlite prepare failed: ") + sqlite3_errmsg(db));
    cache.by_sql.emplace(sql, s_);
  }
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); return *this; }
  Stmt& bind(int i, double v) { sqlite3_bind_double(s_, i, v); return *this; }
  /// true while a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw_sqlite(db_, rc, "sqlite step failed");
  }
  std::string text(int c) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return p ? std::string(p, sqlite3_column_bytes(s_, c)) : std::string();
  }
  std::string blob(int c) const {
    auto p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, sqlite3_column_bytes(s_, c)) : std::string();
  }
  Stmt& bind_blob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double f64(int c) const { return sqlite3_column_double(s_, c); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

const char* kJobCols =
    "seq,id,upload,method,spec_pb,priority,state,progress,error,result_json,timings_json,attempts,"
    "created_unix,started_unix,finished_unix,resolved_pb,locked_by,lease_until,cancel_requested";

JobRecord read_job(const Stmt& s) {
  JobRecord j;
  j.seq = s.i64(0); j.id = s.text(1); j.upload = s.text(2); j.method = s.text(3); j.spec_pb = s.blob(4);
  j.priority = static_cast<int>(s.i64(5)); j.progress = s.f64(7); j.error = s.text(8);
  const auto st = parse_state(s.text(6));
  if (!st) throw Error("job " + j.id + " has unknown state '" + s.text(6) + "' in the database");
  j.state = *st;
  j.resolved_pb = s.blob(15);
  j.result_json = s.text(9); j.timings_json = s.text(10); j.attempts = static_cast<int>(s.i64(11));
  j.created_unix = s.i64(12); j.started_unix = s.i64(13); j.finished_unix = s.i64(14);
  j.locked_by = s.text(16); j.lease_until = s.f64(17); j.cancel_requested = s.i64(18) != 0;
  return j;
}

UploadRecord read_upload(const Stmt& s) {
  UploadRecord u;
  u.id = s.text(0); u.sha256 = s.text(1); u.format = s.text(2); u.name = s.text(3);
  u.size_bytes = static_cast<uint64_t>(s.i64(4)); u.tensors_json = s.text(5); u.created_unix = s.i64(6);
  return u;
}

ModelVersion read_version(const Stmt& s) {
  ModelVersion v;
  v.seq = s.i64(0); v.model = s.text(1); v.tag = s.text(2); v.artifact_sha256 = s.text(3); v.job_id = s.text(4);
  v.size_bytes = static_cast<uint64_t>(s.i64(5)); v.created_unix = s.i64(6);
  return v;
}

}  // namespace

namespace {

// Migration 3: every job's JSON spec becomes a serialized tensorslm.v1.JobSpec.
void convert_job_specs_to_proto(sqlite3* db) {
  SqliteStore::StmtCache cache;
  std::vector<std::pair<std::string, std::string>> rows;  // (id, spec_json)
  {
    Stmt s(db, cache, "SELECT id, spec_json FROM jobs");
    while (s.step()) rows.emplace_back(s.text(0), s.text(1));
  }
  for (const auto& [id, text] : rows) {
    std::string pb;
    try {
      parse_job_spec(nlohmann::json::parse(text)).SerializeToString(&pb);
    } catch (const std::exception& e) {
      throw Error("migration 3: the stored spec of job " + id + " cannot be converted: " + e.what());
    }
    Stmt u(db, cache, "UPDATE jobs SET spec_pb=? WHERE id=?");
    u.bind_blob(1, pb).bind(2, id).step();
  }
}

// Migration 4: specs stored in format 1 (params and quality gate as JSON strings, fields 4 and 7)
// get them as the typed params Struct and QualityGate; every other field is kept as it is.
void convert_format1_specs(sqlite3* db) {
  SqliteStore::StmtCache cache;
  std::vector<std::pair<std::string, std::string>> rows;  // (id, spec_pb)
  {
    Stmt s(db, cache, "SELECT id, spec_pb FROM jobs");
    while (s.step()) rows.emplace_back(s.text(0), s.blob(1));
  }
  for (const auto& [id, bytes] : rows) {
    tensorslm::v1::JobSpecFormat1 old;
    tensorslm::v1::JobSpec spec;
    if (!old.ParseFromString(bytes) || !spec.ParseFromString(bytes))
      throw Error("migration 4: the stored spec of job " + id + " is not a JobSpec");
    if (old.params_json().empty() && old.quality_gate_json().empty()) continue;
    try {
      spec.GetReflection()->MutableUnknownFields(&spec)->Clear();
      *spec.mutable_params() = struct_from_json(old.params_json().empty() ? nlohmann::json::object()
                                                                          : nlohmann::json::parse(old.params_json()));
      if (!old.quality_gate_json().empty()) {
        const auto g = nlohmann::json::parse(old.quality_gate_json());
        if (g.contains("max_rel_error")) spec.mutable_quality_gate()->set_max_rel_error(g["max_rel_error"].get<double>());
        if (g.contains("max_kl")) spec.mutable_quality_gate()->set_max_kl(g["max_kl"].get<double>());
      }
    } catch (const std::exception& e) {
      throw Error("migration 4: the stored spec of job " + id + " cannot be converted: " + e.what());
    }
    std::string pb;
    spec.SerializeToString(&pb);
    Stmt u(db, cache, "UPDATE jobs SET spec_pb=? WHERE id=?");
    u.bind_blob(1, pb).bind(2, id).step();
  }
}

}  // namespace

SqliteStore::SqliteStore(const std::string& path) : cache_(std::make_unique<StmtCache>()), path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error("cannot open database " + path + ": " + msg);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL;");
    exec("PRAGMA synchronous=NORMAL;");
    exec("PRAGMA foreign_keys=ON;");
    migrate();
  } catch (...) {  // no destructor runs for a constructor that throws: close what it opened
    close();
    throw;
  }
}

SqliteStore::~SqliteStore() { close(); }

void SqliteStore::close() noexcept {
  cache_.reset();  // finalize the statements before the connection
  sqlite3_close_v2(db_);
}

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    if ((rc & 0xff) == SQLITE_FULL) throw StorageFull("the disk is full: the database " + path_ + " cannot grow (" + msg + ")");
    throw Error("sqlite (" + path_ + "): " + msg);
  }
}

int SqliteStore::latest_schema_version() { return static_cast<int>(std::size(kMigrations)); }

void SqliteStore::migrate() {
  std::lock_guard lk(mu_);
  exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_unix INTEGER NOT NULL);");
  int current = 0;
  {
    Stmt s(db_, *cache_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (s.step()) current = static_cast<int>(s.i64(0));
  }
  if (current > latest_schema_version())
    throw Error("database " + path_ + " has schema version " + std::to_string(current) +
                ", newer than this server (" + std::to_string(latest_schema_version()) + "); upgrade the server");
  for (int v = current + 1; v <= latest_schema_version(); ++v) {
    exec("BEGIN IMMEDIATE;");
    try {
      const Migration& m = kMigrations[v - 1];
      exec(m.sql);
      if (m.convert) m.convert(db_);
      if (m.sql_after) exec(m.sql_after);
      Stmt s(db_, *cache_, "INSERT INTO schema_migrations(version, applied_unix) VALUES(?, strftime('%s','now'))");
      s.bind(1, int64_t{v}).step();
      exec("COMMIT;");
    } catch (...) {
      exec("ROLLBACK;");
      throw;
    }
  }
}

int SqliteStore::schema_version() {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  return s.step() ? static_cast<int>(s.i64(0)) : 0;
}

void SqliteStore::insert_upload(const UploadRecord& u) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "INSERT INTO uploads(id,sha256,format,name,size_bytes,tensors_json,created_unix) VALUES(?,?,?,?,?,?,?)");
  s.bind(1, u.id).bind(2, u.sha256).bind(3, u.format).bind(4, u.name).bind(5, static_cast<int64_t>(u.size_bytes))
      .bind(6, u.tensors_json).bind(7, u.created_unix).step();
}

std::optional<UploadRecord> SqliteStore::get_upload(const std::string& id) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT id,sha256,format,name,size_bytes,tensors_json,created_unix FROM uploads WHERE id=?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_upload(s);
}

bool SqliteStore::delete_upload(const std::string& id) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "DELETE FROM uploads WHERE id=?");
  s.bind(1, id).step();
  return sqlite3_changes(db_) > 0;
}

int64_t SqliteStore::blob_refs(const std::string& sha256) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT (SELECT COUNT(*) FROM uploads WHERE sha256=?1) + (SELECT COUNT(*) FROM artifacts WHERE sha256=?1)");
  s.bind(1, sha256);
  return s.step() ? s.i64(0) : 0;
}

void SqliteStore::insert_job(JobRecord& j) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_,
         "INSERT INTO jobs(id,upload,method,spec_pb,priority,state,progress,error,result_json,timings_json,attempts,"
         "created_unix,started_unix,finished_unix,resolved_pb) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, j.id).bind(2, j.upload).bind(3, j.method).bind_blob(4, j.spec_pb).bind(5, int64_t{j.priority})
      .bind(6, state_name(j.state)).bind(7, j.progress).bind(8, j.error).bind(9, j.result_json).bind(10, j.timings_json)
      .bind(11, int64_t{j.attempts}).bind(12, j.created_unix).bind(13, j.started_unix).bind(14, j.finished_unix)
      .bind_blob(15, j.resolved_pb).step();
  j.seq = sqlite3_last_insert_rowid(db_);
}

std::optional<JobRecord> SqliteStore::get_job(const std::string& id) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, (std::string("SELECT ") + kJobCols + " FROM jobs WHERE id=?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_job(s);
}

std::vector<JobRecord> SqliteStore::list_jobs(const JobFilter& f) {
  std::lock_guard lk(mu_);
  std::string sql = std::string("SELECT ") + kJobCols +
                    " FROM jobs WHERE seq > ?1 AND (?2 = '' OR state = ?2) AND (?3 = '' OR method = ?3)"
                    " AND (?4 = '' OR upload = ?4) ORDER BY seq LIMIT ?5";
  Stmt s(db_, *cache_, sql.c_str());
  s.bind(1, f.after_seq).bind(2, f.state ? state_name(*f.state) : std::string()).bind(3, f.method).bind(4, f.upload).bind(5, int64_t{f.limit});
  std::vector<JobRecord> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

void SqliteStore::update_job(const JobRecord& j) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_,
         "UPDATE jobs SET state=?2, progress=?3, error=?4, result_json=?5, timings_json=?6, attempts=?7,"
         " started_unix=?8, finished_unix=?9 WHERE id=?1");
  s.bind(1, j.id).bind(2, state_name(j.state)).bind(3, j.progress).bind(4, j.error).bind(5, j.result_json)
      .bind(6, j.timings_json).bind(7, int64_t{j.attempts}).bind(8, j.started_unix).bind(9, j.finished_unix).step();
}

int SqliteStore::requeue_running() {
  std::lock_guard lk(mu_);
  const std::string running = state_name(tensorslm::v1::RUNNING);
  exec("BEGIN IMMEDIATE;");
  int n = 0;
  try {
    {
      // A job publishes its model version and then records its end: two writes. One that died in
      // between (kill -9, or a full disk at the second) left a version that no finished job
      // published. Undo it: the rerun publishes again (identical inputs, identical artifact),
      // instead of failing on a tag clash with itself, or publishing twice with replace: true.
      Stmt d(db_, *cache_, "DELETE FROM model_versions WHERE job_id IN (SELECT id FROM jobs WHERE state=?1)");
      d.bind(1, running).step();
    }
    {
      Stmt s(db_, *cache_, "UPDATE jobs SET state=?1, progress=0, locked_by='', lease_until=0 WHERE state=?2");
      s.bind(1, state_name(tensorslm::v1::QUEUED)).bind(2, running).step();
      n = sqlite3_changes(db_);
    }
    exec("COMMIT;");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
    throw;
  }
  return n;
}

namespace {
double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

/// A transaction on the store's connection (BEGIN IMMEDIATE: the write lock at once); rolled back
/// unless commit() ran.
class SqliteStore::Tx {
 public:
  explicit Tx(SqliteStore& s) : s_(s) { s_.exec("BEGIN IMMEDIATE;"); }
  ~Tx() {
    if (!done_) sqlite3_exec(s_.db_, "ROLLBACK;", nullptr, nullptr, nullptr);
  }
  void commit() {
    s_.exec("COMMIT;");
    done_ = true;
  }

 private:
  SqliteStore& s_;
  bool done_ = false;
};

std::optional<JobRecord> SqliteStore::claim_job(const std::string& worker, double lease_s, int max_attempts,
                                                ClaimOutcome& out) {
  std::lock_guard lk(mu_);
  const double now = unix_now();
  const std::string running = state_name(tensorslm::v1::RUNNING);
  Tx tx(*this);
  {
    Stmt s(db_, *cache_, "SELECT id, attempts FROM jobs WHERE state=?1 AND lease_until < ?2 AND attempts >= ?3");
    s.bind(1, running).bind(2, now).bind(3, int64_t{max_attempts});
    while (s.step()) out.exhausted.push_back(s.text(0));
  }
  for (const auto& id : out.exhausted) {
    Stmt u(db_, *cache_,
           "UPDATE jobs SET state=?2, error=?3, finished_unix=?4, locked_by='', lease_until=0 WHERE id=?1");
    u.bind(1, id).bind(2, state_name(tensorslm::v1::FAILED))
        .bind(3, "the lease of every attempt expired (its worker died or lost the database); attempt limit " +
                     std::to_string(max_attempts) + " reached")
        .bind(4, static_cast<int64_t>(now)).step();
  }
  std::optional<JobRecord> j;
  {
    Stmt s(db_, *cache_,
           (std::string("SELECT ") + kJobCols +
            " FROM jobs WHERE state=?1 OR (state=?2 AND lease_until < ?3) ORDER BY priority DESC, seq LIMIT 1").c_str());
    s.bind(1, state_name(tensorslm::v1::QUEUED)).bind(2, running).bind(3, now);
    if (s.step()) j = read_job(s);
  }
  if (!j) {
    tx.commit();
    return std::nullopt;
  }
  out.takeover = j->state == tensorslm::v1::RUNNING;
  j->state = tensorslm::v1::RUNNING;
  j->attempts += 1;
  j->locked_by = worker;
  j->lease_until = now + lease_s;
  j->progress = 0;
  j->started_unix = static_cast<int64_t>(now);
  {
    Stmt u(db_, *cache_,
           "UPDATE jobs SET state=?2, attempts=?3, locked_by=?4, lease_until=?5, progress=0, started_unix=?6 WHERE id=?1");
    u.bind(1, j->id).bind(2, running).bind(3, int64_t{j->attempts}).bind(4, worker).bind(5, j->lease_until)
        .bind(6, j->started_unix).step();
  }
  tx.commit();
  return j;
}

LeaseState SqliteStore::heartbeat(const std::string& id, const std::string& worker, int attempt, double lease_s,
                                  double progress) {
  std::lock_guard lk(mu_);
  Stmt u(db_, *cache_,
         "UPDATE jobs SET lease_until=?4, progress=?5 WHERE id=?1 AND state=?6 AND locked_by=?2 AND attempts=?3"
         " RETURNING cancel_requested");
  u.bind(1, id).bind(2, worker).bind(3, int64_t{attempt}).bind(4, unix_now() + lease_s).bind(5, progress)
      .bind(6, state_name(tensorslm::v1::RUNNING));
  if (!u.step()) return LeaseState::Lost;
  return u.i64(0) ? LeaseState::CancelRequested : LeaseState::Held;
}

bool SqliteStore::finish_job(const JobRecord& j, const ArtifactRecord* a, ModelVersion* v) {
  std::lock_guard lk(mu_);
  Tx tx(*this);
  {
    Stmt u(db_, *cache_,
           "UPDATE jobs SET state=?4, progress=?5, error=?6, result_json=?7, timings_json=?8, finished_unix=?9,"
           " locked_by='', lease_until=0 WHERE id=?1 AND state=?10 AND locked_by=?2 AND attempts=?3");
    u.bind(1, j.id).bind(2, j.locked_by).bind(3, int64_t{j.attempts}).bind(4, state_name(j.state)).bind(5, j.progress)
        .bind(6, j.error).bind(7, j.result_json).bind(8, j.timings_json).bind(9, j.finished_unix)
        .bind(10, state_name(tensorslm::v1::RUNNING)).step();
  }
  if (sqlite3_changes(db_) == 0) return false;  // rolled back: the lease is someone else's
  if (a) {
    Stmt s(db_, *cache_, "INSERT OR IGNORE INTO artifacts(sha256,size_bytes,job_id,method,created_unix) VALUES(?,?,?,?,?)");
    s.bind(1, a->sha256).bind(2, static_cast<int64_t>(a->size_bytes)).bind(3, a->job_id).bind(4, a->method)
        .bind(5, a->created_unix).step();
  }
  if (v) {
    Stmt s(db_, *cache_, "INSERT INTO model_versions(model,tag,artifact_sha256,job_id,size_bytes,created_unix) VALUES(?,?,?,?,?,?)");
    s.bind(1, v->model).bind(2, v->tag).bind(3, v->artifact_sha256).bind(4, v->job_id)
        .bind(5, static_cast<int64_t>(v->size_bytes)).bind(6, v->created_unix).step();
    v->seq = sqlite3_last_insert_rowid(db_);
  }
  tx.commit();
  return true;
}

bool SqliteStore::release_job(const std::string& id, const std::string& worker, int attempt) {
  std::lock_guard lk(mu_);
  Stmt u(db_, *cache_,
         "UPDATE jobs SET state=?4, progress=0, started_unix=0, locked_by='', lease_until=0"
         " WHERE id=?1 AND state=?5 AND locked_by=?2 AND attempts=?3");
  u.bind(1, id).bind(2, worker).bind(3, int64_t{attempt}).bind(4, state_name(tensorslm::v1::QUEUED))
      .bind(5, state_name(tensorslm::v1::RUNNING)).step();
  return sqlite3_changes(db_) > 0;
}

bool SqliteStore::cancel_queued(const std::string& id, const std::string& error, int64_t finished_unix) {
  std::lock_guard lk(mu_);
  Stmt u(db_, *cache_, "UPDATE jobs SET state=?2, error=?3, finished_unix=?4 WHERE id=?1 AND state=?5");
  u.bind(1, id).bind(2, state_name(tensorslm::v1::CANCELED)).bind(3, error).bind(4, finished_unix)
      .bind(5, state_name(tensorslm::v1::QUEUED)).step();
  return sqlite3_changes(db_) > 0;
}

bool SqliteStore::request_cancel(const std::string& id) {
  std::lock_guard lk(mu_);
  Stmt u(db_, *cache_, "UPDATE jobs SET cancel_requested=1 WHERE id=?1 AND state=?2");
  u.bind(1, id).bind(2, state_name(tensorslm::v1::RUNNING)).step();
  return sqlite3_changes(db_) > 0;
}

int64_t SqliteStore::queued_count() {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT COUNT(*) FROM jobs WHERE state=?1");
  s.bind(1, state_name(tensorslm::v1::QUEUED));
  return s.step() ? s.i64(0) : 0;
}

std::vector<JobRecord> SqliteStore::queued_jobs() {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, (std::string("SELECT ") + kJobCols + " FROM jobs WHERE state=?1 ORDER BY seq").c_str());
  s.bind(1, state_name(tensorslm::v1::QUEUED));
  std::vector<JobRecord> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

std::map<std::string, int64_t> SqliteStore::count_jobs_by_state() {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  std::map<std::string, int64_t> out;
  while (s.step()) out[s.text(0)] = s.i64(1);
  return out;
}

void SqliteStore::insert_artifact(const ArtifactRecord& a) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "INSERT OR IGNORE INTO artifacts(sha256,size_bytes,job_id,method,created_unix) VALUES(?,?,?,?,?)");
  s.bind(1, a.sha256).bind(2, static_cast<int64_t>(a.size_bytes)).bind(3, a.job_id).bind(4, a.method)
      .bind(5, a.created_unix).step();
}

std::optional<ArtifactRecord> SqliteStore::get_artifact(const std::string& sha256) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT sha256,size_bytes,job_id,method,created_unix FROM artifacts WHERE sha256=?");
  s.bind(1, sha256);
  if (!s.step()) return std::nullopt;
  ArtifactRecord a;
  a.sha256 = s.text(0); a.size_bytes = static_cast<uint64_t>(s.i64(1)); a.job_id = s.text(2); a.method = s.text(3);
  a.created_unix = s.i64(4);
  return a;
}

void SqliteStore::insert_model_version(ModelVersion& v) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "INSERT INTO model_versions(model,tag,artifact_sha256,job_id,size_bytes,created_unix) VALUES(?,?,?,?,?,?)");
  s.bind(1, v.model).bind(2, v.tag).bind(3, v.artifact_sha256).bind(4, v.job_id)
      .bind(5, static_cast<int64_t>(v.size_bytes)).bind(6, v.created_unix).step();
  v.seq = sqlite3_last_insert_rowid(db_);
}

std::vector<std::string> SqliteStore::list_models() {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "SELECT DISTINCT model FROM model_versions ORDER BY model");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<ModelVersion> SqliteStore::model_versions(const std::string& model) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_,
         "SELECT seq,model,tag,artifact_sha256,job_id,size_bytes,created_unix FROM model_versions WHERE model=?"
         " ORDER BY seq DESC");
  s.bind(1, model);
  std::vector<ModelVersion> out;
  while (s.step()) out.push_back(read_version(s));
  return out;
}

void SqliteStore::insert_report(ReportRecord& r) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_, "INSERT INTO reports(device,model,tag,artifact_sha256,created_unix,report_json) VALUES(?,?,?,?,?,?)");
  s.bind(1, r.device).bind(2, r.model).bind(3, r.tag).bind(4, r.artifact_sha256).bind(5, r.created_unix)
      .bind(6, r.report_json).step();
  r.id = sqlite3_last_insert_rowid(db_);
}

std::vector<ReportRecord> SqliteStore::list_reports(const ReportFilter& f) {
  std::lock_guard lk(mu_);
  Stmt s(db_, *cache_,
         "SELECT id,device,model,tag,artifact_sha256,created_unix,report_json FROM reports WHERE"
         " (?1 = '' OR device = ?1) AND (?2 = '' OR model = ?2) AND (?3 = '' OR tag = ?3)"
         " AND (?4 = 0 OR created_unix >= ?4) AND (?5 = 0 OR created_unix <= ?5) ORDER BY id DESC LIMIT ?6");
  s.bind(1, f.device).bind(2, f.model).bind(3, f.tag).bind(4, f.since_unix).bind(5, f.until_unix)
      .bind(6, int64_t{f.limit});
  std::vector<ReportRecord> out;
  while (s.step()) {
    ReportRecord r;
    r.id = s.i64(0); r.device = s.text(1); r.model = s.text(2); r.tag = s.text(3); r.artifact_sha256 = s.text(4);
    r.created_unix = s.i64(5); r.report_json = s.text(6);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tsm::server
