#include "store/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "common/error.h"
#include "spec/job_spec.h"
#include "store/pg_migrations.h"

namespace tsm::server {

namespace v1 = ::tensorslm::v1;

/// One statement parameter: text (or a bytea sent as binary).
namespace {
using Param = PostgresStore::Param;
Param P(const std::string& s) { return {s, false}; }
Param P(int64_t v) { return {std::to_string(v), false}; }
Param P(int v) { return {std::to_string(v), false}; }
Param P(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return {b, false};
}
Param B(const std::string& bytes) { return {bytes, true}; }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const std::string kQueued = "queued", kRunning = "running";
const char* kNow = "EXTRACT(EPOCH FROM clock_timestamp())::float8";
}  // namespace

/// An owned PGresult with typed column reads (text format; bytea decoded from its hex form).
class PostgresStore::Result {
 public:
  explicit Result(PGresult* r) : r_(r, PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col), size_t(PQgetlength(r_.get(), row, col)));
  }
  int64_t i64(int row, int col) const { return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10); }
  double f64(int row, int col) const { return std::strtod(PQgetvalue(r_.get(), row, col), nullptr); }
  bool boolean(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] == 't'; }
  std::string bytea(int row, int col) const {
    size_t n = 0;
    unsigned char* p = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &n);
    if (!p) throw Error("postgres: cannot decode a bytea column");
    std::string out(reinterpret_cast<char*>(p), n);
    PQfreemem(p);
    return out;
  }
  int64_t affected() const { return std::strtoll(PQcmdTuples(r_.get()), nullptr, 10); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

/// One pooled connection, its statements prepared once (by SQL text) and reused while it lives.
struct PostgresStore::Slot {
  PGconn* conn = nullptr;
  uint64_t epoch = 0;  ///< the store's epoch_ when conn was opened
  bool busy = false;
  std::unordered_map<std::string, std::string> prepared;  ///< SQL text -> statement name
  Slot() = default;
  Slot(const Slot&) = delete;
  ~Slot() {  // also when the store's constructor throws (a failed migration): no connection leaks
    if (conn) PQfinish(conn);
  }
};

PostgresStore::Conn::~Conn() {
  if (!s_) return;
  {
    std::lock_guard lk(s_->pool_mu_);
    slot_->busy = false;
  }
  s_->pool_cv_.notify_one();
}

/// BEGIN .. COMMIT on one leased connection; rolled back unless commit() ran.
class PostgresStore::Tx {
 public:
  explicit Tx(Conn& c) : c_(c) {
    c_.query("BEGIN");
    c_.in_tx_ = true;
  }
  ~Tx() {
    c_.in_tx_ = false;
    PGconn* pc = c_.slot_->conn;
    if (!done_ && pc && PQstatus(pc) == CONNECTION_OK) PQclear(PQexec(pc, "ROLLBACK"));
  }
  void commit() {
    c_.query("COMMIT");
    c_.in_tx_ = false;
    done_ = true;
  }

 private:
  Conn& c_;
  bool done_ = false;
};

namespace {

const char* kJobCols =
    "seq,id,upload,method,spec_pb,priority,state,progress,error,result_json,timings_json,attempts,"
    "created_unix,started_unix,finished_unix,resolved_pb,locked_by,lease_until,cancel_requested";

/// Columns `c0`.. of a job row (kJobCols order).
JobRecord read_job(const PostgresStore::Result& r, int row, int c0 = 0) {
  JobRecord j;
  j.seq = r.i64(row, c0 + 0); j.id = r.text(row, c0 + 1); j.upload = r.text(row, c0 + 2); j.method = r.text(row, c0 + 3);
  j.spec_pb = r.bytea(row, c0 + 4); j.priority = static_cast<int>(r.i64(row, c0 + 5));
  const auto st = parse_state(r.text(row, c0 + 6));
  if (!st) throw Error("job " + j.id + " has unknown state '" + r.text(row, c0 + 6) + "' in the database");
  j.state = *st;
  j.progress = r.f64(row, c0 + 7); j.error = r.text(row, c0 + 8); j.result_json = r.text(row, c0 + 9);
  j.timings_json = r.text(row, c0 + 10); j.attempts = static_cast<int>(r.i64(row, c0 + 11));
  j.created_unix = r.i64(row, c0 + 12); j.started_unix = r.i64(row, c0 + 13); j.finished_unix = r.i64(row, c0 + 14);
  j.resolved_pb = r.bytea(row, c0 + 15); j.locked_by = r.text(row, c0 + 16); j.lease_until = r.f64(row, c0 + 17);
  j.cancel_requested = r.boolean(row, c0 + 18);
  return j;
}

UploadRecord read_upload(const PostgresStore::Result& r, int row) {
  UploadRecord u;
  u.id = r.text(row, 0); u.sha256 = r.text(row, 1); u.format = r.text(row, 2); u.name = r.text(row, 3);
  u.size_bytes = static_cast<uint64_t>(r.i64(row, 4)); u.tensors_json = r.text(row, 5); u.created_unix = r.i64(row, 6);
  return u;
}

ModelVersion read_version(const PostgresStore::Result& r, int row) {
  ModelVersion v;
  v.seq = r.i64(row, 0); v.model = r.text(row, 1); v.tag = r.text(row, 2); v.artifact_sha256 = r.text(row, 3);
  v.job_id = r.text(row, 4); v.size_bytes = static_cast<uint64_t>(r.i64(row, 5)); v.created_unix = r.i64(row, 6);
  return v;
}

}  // namespace

bool PostgresStore::is_conninfo(const std::string& s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0 || s.find('=') != std::string::npos;
}

std::string PostgresStore::redact(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    if (err) PQfreemem(err);
    return "postgresql://(unparsable connection string)";
  }
  std::string user, host, port, db;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string k = o->keyword;
    if (k == "user") user = o->val;
    else if (k == "host") host = o->val;
    else if (k == "hostaddr" && host.empty()) host = o->val;
    else if (k == "port") port = o->val;
    else if (k == "dbname") db = o->val;
  }
  PQconninfoFree(opts);
  std::string out = "postgresql://";
  if (!user.empty()) out += user + "@";
  out += host;
  if (!port.empty()) out += ":" + port;
  out += "/" + db;
  return out;
}

int PostgresStore::latest_schema_version() { return static_cast<int>(pg_migrations().size()); }

PostgresStore::PostgresStore(const std::string& conninfo, int connections)
    : conninfo_(conninfo), redacted_(redact(conninfo)), slots_(static_cast<size_t>(std::max(1, connections))) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string msg = err ? trim(err) : "malformed";
    if (err) PQfreemem(err);
    throw Error("--store: not a PostgreSQL connection string or URI (" + msg + ")");
  }
  PQconninfoFree(opts);
  {
    Conn c = lease();
    const int v = pg_migrate(c.get());
    schema_seen_ = v;
    spdlog::info("store: PostgreSQL {} (schema version {}, up to {} connections)", redacted_, v, slots_.size());
  }
  listener_ = std::thread([this] { listen_loop(); });
}

PostgresStore::~PostgresStore() {
  stop_ = true;
  if (listener_.joinable()) listener_.join();
}

PostgresStore::Conn PostgresStore::lease() {
  std::unique_lock lk(pool_mu_);
  Slot* slot = nullptr;
  pool_cv_.wait(lk, [&] {
    // An open idle connection first; an unopened slot only when none is idle.
    for (Slot& s : slots_)
      if (!s.busy && s.conn) return (slot = &s) != nullptr;
    for (Slot& s : slots_)
      if (!s.busy) return (slot = &s) != nullptr;
    return false;
  });
  slot->busy = true;
  return Conn(*this, *slot);
}

PGconn* PostgresStore::Conn::get() {
  PGconn*& c = slot_->conn;
  // A connection the server closed (a restart) is noticed here, before a statement is sent on it:
  // reading what already arrived (never blocks) turns it CONNECTION_BAD.
  // Opened before the event thread last saw the database go away (a restart): the server closed
  // it, even where libpq has not noticed yet. Reopened, unless a transaction is running on it.
  if (c && !in_tx_ && slot_->epoch != s_->epoch_.load()) {
    PQfinish(c);
    c = nullptr;
  }
  if (c && PQstatus(c) == CONNECTION_OK && PQconsumeInput(c) && PQstatus(c) == CONNECTION_OK) return c;
  // Inside a transaction a new connection would run the rest outside it: the transaction is lost.
  if (c && in_tx_) throw StoreUnavailable("database " + s_->redacted_ + " connection lost inside a transaction");
  if (c) PQfinish(c);
  slot_->prepared.clear();
  slot_->epoch = s_->epoch_.load();
  c = PQconnectdb(s_->conninfo_.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = trim(PQerrorMessage(c));
    PQfinish(c);
    c = nullptr;
    throw StoreUnavailable("database " + s_->redacted_ + " unreachable: " + msg);
  }
  PQclear(PQexec(c, "SET application_name = 'tensorslm-server'; SET client_min_messages = warning"));
  return c;
}

PostgresStore::Result PostgresStore::Conn::query(const std::string& sql, const std::vector<Param>& params) {
  PGconn* c = get();
  // Parsed and planned once per connection: the first use prepares it under a fresh name.
  auto it = slot_->prepared.find(sql);
  PGresult* r = nullptr;
  if (it == slot_->prepared.end()) {
    const std::string name = "tsm" + std::to_string(slot_->prepared.size());
    r = PQprepare(c, name.c_str(), sql.c_str(), 0, nullptr);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      PQclear(r);
      r = nullptr;
      it = slot_->prepared.emplace(sql, name).first;
    }
  }
  if (!r) {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const auto& p : params) {
      values.push_back(p.value.data());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.binary ? 1 : 0);
    }
    r = PQexecPrepared(c, it->second.c_str(), static_cast<int>(params.size()), values.data(), lengths.data(),
                       formats.data(), 0);
    const auto st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Result(r);
  }
  std::string msg = trim(r ? PQresultErrorMessage(r) : PQerrorMessage(c));
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  // Class 08: connection exception; 57: operator intervention (admin shutdown, crash shutdown, cannot connect now).
  const bool gone = PQstatus(c) != CONNECTION_OK || (state && (std::string_view(state).substr(0, 2) == "08" ||
                                                               std::string_view(state).substr(0, 2) == "57"));
  PQclear(r);
  if (gone) throw StoreUnavailable("database " + s_->redacted_ + " connection lost: " + msg);
  throw Error("postgres: " + msg);
}

bool PostgresStore::reachable() {
  try {
    Conn c = lease();
    c.query("SELECT 1");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

int PostgresStore::schema_version() {
  Conn c = lease();
  return static_cast<int>(c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").i64(0, 0));
}

void PostgresStore::insert_upload(const UploadRecord& u) {
  Conn c = lease();
  c.query("INSERT INTO uploads(id,sha256,format,name,size_bytes,tensors_json,created_unix) VALUES($1,$2,$3,$4,$5,$6,$7)",
        {P(u.id), P(u.sha256), P(u.format), P(u.name), P(static_cast<int64_t>(u.size_bytes)), P(u.tensors_json),
         P(u.created_unix)});
}

std::optional<UploadRecord> PostgresStore::get_upload(const std::string& id) {
  Conn c = lease();
  auto r = c.query("SELECT id,sha256,format,name,size_bytes,tensors_json,created_unix FROM uploads WHERE id=$1", {P(id)});
  if (r.rows() == 0) return std::nullopt;
  return read_upload(r, 0);
}

bool PostgresStore::delete_upload(const std::string& id) {
  Conn c = lease();
  return c.query("DELETE FROM uploads WHERE id=$1", {P(id)}).affected() > 0;
}

int64_t PostgresStore::blob_refs(const std::string& sha256) {
  Conn c = lease();
  return c.query("SELECT (SELECT COUNT(*) FROM uploads WHERE sha256=$1) + (SELECT COUNT(*) FROM artifacts WHERE sha256=$1)",
               {P(sha256)}).i64(0, 0);
}

void PostgresStore::insert_job(JobRecord& j) {
  Conn c = lease();
  // One statement: the row and the wake-up of idle workers (delivered at commit).
  auto r = c.query(
      "WITH i AS (INSERT INTO jobs(id,upload,method,spec_pb,priority,state,progress,error,result_json,timings_json,"
      "attempts,created_unix,started_unix,finished_unix,resolved_pb) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,"
      "$14,$15) RETURNING seq, id) SELECT seq, pg_notify('tsm_submit', id) FROM i",
      {P(j.id), P(j.upload), P(j.method), B(j.spec_pb), P(j.priority), P(state_name(j.state)), P(j.progress), P(j.error),
       P(j.result_json), P(j.timings_json), P(j.attempts), P(j.created_unix), P(j.started_unix), P(j.finished_unix),
       B(j.resolved_pb)});
  j.seq = r.i64(0, 0);
}

std::optional<JobRecord> PostgresStore::get_job(const std::string& id) {
  Conn c = lease();
  auto r = c.query(std::string("SELECT ") + kJobCols + " FROM jobs WHERE id=$1", {P(id)});
  if (r.rows() == 0) return std::nullopt;
  return read_job(r, 0);
}

std::vector<JobRecord> PostgresStore::list_jobs(const JobFilter& f) {
  Conn c = lease();
  auto r = c.query(std::string("SELECT ") + kJobCols +
                     " FROM jobs WHERE seq > $1 AND ($2 = '' OR state = $2) AND ($3 = '' OR method = $3)"
                     " AND ($4 = '' OR upload = $4) ORDER BY seq LIMIT $5",
                 {P(f.after_seq), P(f.state ? state_name(*f.state) : std::string()), P(f.method), P(f.upload),
                  P(int64_t{f.limit})});
  std::vector<JobRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_job(r, i));
  return out;
}

void PostgresStore::update_job(const JobRecord& j) {
  Conn c = lease();
  c.query("WITH u AS (UPDATE jobs SET state=$2, progress=$3, error=$4, result_json=$5, timings_json=$6, attempts=$7,"
        " started_unix=$8, finished_unix=$9 WHERE id=$1 RETURNING id, state)"
        " SELECT pg_notify('tsm_done', id) FROM u WHERE state IN ('succeeded','failed','canceled')",
        {P(j.id), P(state_name(j.state)), P(j.progress), P(j.error), P(j.result_json), P(j.timings_json), P(j.attempts),
         P(j.started_unix), P(j.finished_unix)});
}

int PostgresStore::requeue_running() {
  Conn c = lease();
  Tx tx(c);
  c.query("DELETE FROM model_versions WHERE job_id IN (SELECT id FROM jobs WHERE state='running')");
  const int n = static_cast<int>(
      c.query("UPDATE jobs SET state='queued', progress=0, locked_by='', lease_until=0 WHERE state='running'").affected());
  tx.commit();
  return n;
}

std::vector<JobRecord> PostgresStore::queued_jobs() {
  Conn c = lease();
  auto r = c.query(std::string("SELECT ") + kJobCols + " FROM jobs WHERE state='queued' ORDER BY seq");
  std::vector<JobRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_job(r, i));
  return out;
}

std::map<std::string, int64_t> PostgresStore::count_jobs_by_state() {
  Conn c = lease();
  auto r = c.query("SELECT state, COUNT(*) FROM jobs GROUP BY state");
  std::map<std::string, int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out[r.text(i, 0)] = r.i64(i, 1);
  return out;
}

int64_t PostgresStore::queued_count() {
  Conn c = lease();
  return c.query("SELECT COUNT(*) FROM jobs WHERE state='queued'").i64(0, 0);
}

void PostgresStore::insert_artifact(const ArtifactRecord& a) {
  Conn c = lease();
  c.query("INSERT INTO artifacts(sha256,size_bytes,job_id,method,created_unix) VALUES($1,$2,$3,$4,$5)"
        " ON CONFLICT (sha256) DO NOTHING",
        {P(a.sha256), P(static_cast<int64_t>(a.size_bytes)), P(a.job_id), P(a.method), P(a.created_unix)});
}

std::optional<ArtifactRecord> PostgresStore::get_artifact(const std::string& sha256) {
  Conn c = lease();
  auto r = c.query("SELECT sha256,size_bytes,job_id,method,created_unix FROM artifacts WHERE sha256=$1", {P(sha256)});
  if (r.rows() == 0) return std::nullopt;
  ArtifactRecord a;
  a.sha256 = r.text(0, 0); a.size_bytes = static_cast<uint64_t>(r.i64(0, 1)); a.job_id = r.text(0, 2);
  a.method = r.text(0, 3); a.created_unix = r.i64(0, 4);
  return a;
}

void PostgresStore::insert_model_version(ModelVersion& v) {
  Conn c = lease();
  v.seq = c.query("INSERT INTO model_versions(model,tag,artifact_sha256,job_id,size_bytes,created_unix)"
                " VALUES($1,$2,$3,$4,$5,$6) RETURNING seq",
                {P(v.model), P(v.tag), P(v.artifact_sha256), P(v.job_id), P(static_cast<int64_t>(v.size_bytes)),
                 P(v.created_unix)}).i64(0, 0);
}

std::vector<std::string> PostgresStore::list_models() {
  Conn c = lease();
  auto r = c.query("SELECT DISTINCT model FROM model_versions ORDER BY model");
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
  return out;
}

std::vector<ModelVersion> PostgresStore::model_versions(const std::string& model) {
  Conn c = lease();
  auto r = c.query("SELECT seq,model,tag,artifact_sha256,job_id,size_bytes,created_unix FROM model_versions WHERE model=$1"
                 " ORDER BY seq DESC", {P(model)});
  std::vector<ModelVersion> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_version(r, i));
  return out;
}

void PostgresStore::insert_report(ReportRecord& rep) {
  Conn c = lease();
  rep.id = c.query("INSERT INTO reports(device,model,tag,artifact_sha256,created_unix,report_json) VALUES($1,$2,$3,$4,$5,$6)"
                 " RETURNING id",
                 {P(rep.device), P(rep.model), P(rep.tag), P(rep.artifact_sha256), P(rep.created_unix),
                  P(rep.report_json)}).i64(0, 0);
}

std::vector<ReportRecord> PostgresStore::list_reports(const ReportFilter& f) {
  Conn c = lease();
  auto r = c.query("SELECT id,device,model,tag,artifact_sha256,created_unix,report_json FROM reports WHERE"
                 " ($1 = '' OR device = $1) AND ($2 = '' OR model = $2) AND ($3 = '' OR tag = $3)"
                 " AND ($4 = 0 OR created_unix >= $4) AND ($5 = 0 OR created_unix <= $5) ORDER BY id DESC LIMIT $6",
                 {P(f.device), P(f.model), P(f.tag), P(f.since_unix), P(f.until_unix), P(int64_t{f.limit})});
  std::vector<ReportRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    ReportRecord x;
    x.id = r.i64(i, 0); x.device = r.text(i, 1); x.model = r.text(i, 2); x.tag = r.text(i, 3);
    x.artifact_sha256 = r.text(i, 4); x.created_unix = r.i64(i, 5); x.report_json = r.text(i, 6);
    out.push_back(std::move(x));
  }
  return out;
}

// --- the queue ---

std::optional<JobRecord> PostgresStore::claim_job(const std::string& worker, double lease_s, int max_attempts,
                                                  ClaimOutcome& out) {
  Conn c = lease();
  Tx tx(c);
  {
    // Expired leases that used every attempt: failed, and their waiters woken.
    auto r = c.query(std::string("WITH f AS (UPDATE jobs SET state='failed', error=$2, finished_unix=") + kNow +
                       "::bigint, locked_by='', lease_until=0 WHERE seq IN (SELECT seq FROM jobs WHERE state='running'"
                       " AND lease_until < " + kNow + " AND attempts >= $1 FOR UPDATE SKIP LOCKED) RETURNING id)"
                       " SELECT id, pg_notify('tsm_done', id) FROM f",
                   {P(max_attempts), P("the lease of every attempt expired (its worker died or lost the database); "
                                       "attempt limit " + std::to_string(max_attempts) + " reached")});
    for (int i = 0; i < r.rows(); ++i) out.exhausted.push_back(r.text(i, 0));
  }
  std::string cols;
  for (std::string c : {"seq", "id", "upload", "method", "spec_pb", "priority", "state", "progress", "error",
                        "result_json", "timings_json", "attempts", "created_unix", "started_unix", "finished_unix",
                        "resolved_pb", "locked_by", "lease_until", "cancel_requested"})
    cols += (cols.empty() ? "j." : ",j.") + c;
  // The first runnable row that no other claim holds locked (SKIP LOCKED: concurrent claims take
  // different rows, never the same one); its previous state says whether this is a takeover.
  auto r = c.query(std::string("WITH c AS (SELECT seq, state AS prev FROM jobs WHERE state='queued' OR (state='running'"
                             " AND lease_until < ") + kNow + ") ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED)"
                 " UPDATE jobs j SET state='running', attempts=j.attempts+1, locked_by=$1, lease_until=" + kNow +
                     " + $2::float8, progress=0, started_unix=" + kNow + "::bigint FROM c WHERE j.seq=c.seq RETURNING c.prev," +
                     cols,
                 {P(worker), P(lease_s)});
  tx.commit();
  if (r.rows() == 0) return std::nullopt;
  out.takeover = r.text(0, 0) == kRunning;
  return read_job(r, 0, 1);
}

LeaseState PostgresStore::heartbeat(const std::string& id, const std::string& worker, int attempt, double lease_s,
                                    double progress) {
  Conn c = lease();
  auto r = c.query(std::string("UPDATE jobs SET lease_until=") + kNow + " + $4::float8, progress=$5 WHERE id=$1 AND"
                     " state='running' AND locked_by=$2 AND attempts=$3 RETURNING cancel_requested",
                 {P(id), P(worker), P(attempt), P(lease_s), P(progress)});
  if (r.rows() == 0) return LeaseState::Lost;
  return r.boolean(0, 0) ? LeaseState::CancelRequested : LeaseState::Held;
}

bool PostgresStore::finish_job(const JobRecord& j, const ArtifactRecord* a, ModelVersion* v) {
  Conn c = lease();
  Tx tx(c);
  auto r = c.query("UPDATE jobs SET state=$4, progress=$5, error=$6, result_json=$7, timings_json=$8, finished_unix=$9,"
                 " locked_by='', lease_until=0 WHERE id=$1 AND state='running' AND locked_by=$2 AND attempts=$3",
                 {P(j.id), P(j.locked_by), P(j.attempts), P(state_name(j.state)), P(j.progress), P(j.error),
                  P(j.result_json), P(j.timings_json), P(j.finished_unix)});
  if (r.affected() == 0) return false;  // the lease is someone else's: rolled back, nothing written
  if (a)
    c.query("INSERT INTO artifacts(sha256,size_bytes,job_id,method,created_unix) VALUES($1,$2,$3,$4,$5)"
          " ON CONFLICT (sha256) DO NOTHING",
          {P(a->sha256), P(static_cast<int64_t>(a->size_bytes)), P(a->job_id), P(a->method), P(a->created_unix)});
  if (v)
    v->seq = c.query("INSERT INTO model_versions(model,tag,artifact_sha256,job_id,size_bytes,created_unix)"
                   " VALUES($1,$2,$3,$4,$5,$6) RETURNING seq",
                   {P(v->model), P(v->tag), P(v->artifact_sha256), P(v->job_id), P(static_cast<int64_t>(v->size_bytes)),
                    P(v->created_unix)}).i64(0, 0);
  c.query("SELECT pg_notify('tsm_done', $1)", {P(j.id)});
  tx.commit();
  return true;
}

bool PostgresStore::release_job(const std::string& id, const std::string& worker, int attempt) {
  Conn c = lease();
  return c.query("WITH u AS (UPDATE jobs SET state='queued', progress=0, started_unix=0, locked_by='', lease_until=0"
               " WHERE id=$1 AND state='running' AND locked_by=$2 AND attempts=$3 RETURNING id)"
               " SELECT pg_notify('tsm_submit', id) FROM u",
               {P(id), P(worker), P(attempt)}).rows() > 0;
}

bool PostgresStore::cancel_queued(const std::string& id, const std::string& error, int64_t finished_unix) {
  Conn c = lease();
  return c.query("WITH u AS (UPDATE jobs SET state='canceled', error=$2, finished_unix=$3 WHERE id=$1 AND state='queued'"
               " RETURNING id) SELECT pg_notify('tsm_done', id) FROM u",
               {P(id), P(error), P(finished_unix)}).rows() > 0;
}

bool PostgresStore::request_cancel(const std::string& id) {
  Conn c = lease();
  return c.query("WITH u AS (UPDATE jobs SET cancel_requested=true WHERE id=$1 AND state='running' RETURNING id)"
               " SELECT pg_notify('tsm_cancel', id) FROM u", {P(id)}).rows() > 0;
}

// --- LISTEN/NOTIFY ---

void PostgresStore::on_event(std::function<void(StoreEvent, const std::string&)> handler) {
  std::lock_guard lk(handler_mu_);
  handler_ = std::move(handler);
}

void PostgresStore::listen_loop() {
  using Clock = std::chrono::steady_clock;
  PGconn* c = nullptr;
  bool was_down = false;
  Clock::time_point next_check;
  auto emit = [this](StoreEvent e, const std::string& id) {
    std::lock_guard lk(handler_mu_);
    if (handler_) handler_(e, id);
  };
  auto drain = [&] {
    while (PGnotify* n = PQnotifies(c)) {
      const std::string ch = n->relname, id = n->extra ? n->extra : "";
      PQfreemem(n);
      if (ch == "tsm_submit") emit(StoreEvent::Submitted, id);
      else if (ch == "tsm_done") emit(StoreEvent::Done, id);
      else if (ch == "tsm_cancel") emit(StoreEvent::Cancel, id);
    }
  };
  // The readiness check: one statement on this connection; its answer is health().
  auto check = [&] {
    PGresult* r = PQexec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) schema_seen_ = std::atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    next_check = Clock::now() + std::chrono::seconds(1);
    return ok;
  };
  auto drop = [&](const char* what) {
    if (!was_down) spdlog::warn("store events: {} {}: {}; retrying", redacted_, what, trim(PQerrorMessage(c)));
    PQfinish(c);
    c = nullptr;
    was_down = true;
    up_ = false;
    ++epoch_;  // the pool's connections of before are stale
  };
  while (!stop_) {
    if (!c) {
      c = PQconnectdb(conninfo_.c_str());
      bool ok = PQstatus(c) == CONNECTION_OK;
      for (const char* ch : {"LISTEN tsm_submit", "LISTEN tsm_done", "LISTEN tsm_cancel"}) {
        if (!ok) break;
        PGresult* r = PQexec(c, ch);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
      }
      if (!ok || !check()) {
        drop("unreachable");
        for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      up_ = true;
      if (was_down) {
        spdlog::info("store events: listening again on {}", redacted_);
        emit(StoreEvent::Resync, "");
      }
      was_down = false;
    }
    pollfd p{PQsocket(c), POLLIN, 0};
    ::poll(&p, 1, 200);
    if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
      drop("connection lost");
      continue;
    }
    drain();
    if (Clock::now() >= next_check) {
      if (!check()) {
        drop("check failed");
        continue;
      }
      drain();  // notifications that arrived with the check's answer
    }
  }
  if (c) PQfinish(c);
}

}  // namespace tsm::server
