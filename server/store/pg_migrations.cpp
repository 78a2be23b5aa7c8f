#include "store/pg_migrations.h"

#include <libpq-fe.h>

#include <string>

#include "common/error.h"

namespace tsm::server {
namespace {

// Never edit an entry; append a new one.
const char* const kPgMigrations[] = {
    // 1: the schema of SqliteStore version 5, with the queue's lease columns
    R"sql(
CREATE TABLE uploads (
  id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
  size_bytes BIGINT NOT NULL, tensors_json TEXT NOT NULL, created_unix BIGINT NOT NULL);
CREATE INDEX uploads_sha ON uploads(sha256);
CREATE TABLE jobs (
  seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL, upload TEXT NOT NULL, method TEXT NOT NULL,
  spec_pb BYTEA NOT NULL, resolved_pb BYTEA NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL,
  progress DOUBLE PRECISION NOT NULL, error TEXT NOT NULL, result_json TEXT NOT NULL, timings_json TEXT NOT NULL,
  attempts INTEGER NOT NULL, created_unix BIGINT NOT NULL, started_unix BIGINT NOT NULL, finished_unix BIGINT NOT NULL,
  locked_by TEXT NOT NULL DEFAULT '', lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
  cancel_requested BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_claim ON jobs(state, priority DESC, seq);
CREATE TABLE artifacts (
  sha256 TEXT PRIMARY KEY, size_bytes BIGINT NOT NULL, job_id TEXT NOT NULL, method TEXT NOT NULL,
  created_unix BIGINT NOT NULL);
CREATE TABLE model_versions (
  seq BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, tag TEXT NOT NULL, artifact_sha256 TEXT NOT NULL,
  job_id TEXT NOT NULL, size_bytes BIGINT NOT NULL, created_unix BIGINT NOT NULL);
CREATE INDEX model_versions_model ON model_versions(model, seq);
CREATE TABLE reports (
  id BIGSERIAL PRIMARY KEY, device TEXT NOT NULL, model TEXT NOT NULL, tag TEXT NOT NULL,
  artifact_sha256 TEXT NOT NULL, created_unix BIGINT NOT NULL, report_json TEXT NOT NULL);
CREATE INDEX reports_model_device ON reports(model, device, created_unix);
)sql",
};

/// Runs `sql`; throws with `what` and the server's message unless it succeeded.
void run(PGconn* c, const std::string& sql, const std::string& what) {
  PGresult* r = PQexec(c, sql.c_str());
  const auto st = PQresultStatus(r);
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    throw Error(what + ": " + msg);
  }
}

int current_version(PGconn* c) {
  PGresult* r = PQexec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  const int v = ok ? std::atoi(PQgetvalue(r, 0, 0)) : -1;
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  if (!ok) throw Error("reading schema_migrations: " + msg);
  return v;
}

}  // namespace

std::span<const char* const> pg_migrations() { return kPgMigrations; }

int pg_migrate(PGconn* c) {
  const std::string key = std::to_string(kMigrationLockKey);
  run(c, "SELECT pg_advisory_lock(" + key + ")", "taking the migration lock");
  try {
    run(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_unix BIGINT NOT NULL)",
        "creating schema_migrations");
    int v = current_version(c);
    const int latest = static_cast<int>(pg_migrations().size());
    if (v > latest)
      throw Error("the database has schema version " + std::to_string(v) + ", newer than this server (" +
                  std::to_string(latest) + "); upgrade the server");
    for (int next = v + 1; next <= latest; ++next) {
      const std::string what = "migration " + std::to_string(next);
      run(c, "BEGIN", what);
      try {
        run(c, pg_migrations()[size_t(next - 1)], what);
        run(c, "INSERT INTO schema_migrations(version, applied_unix) VALUES(" + std::to_string(next) +
                   ", extract(epoch from now())::bigint)", what);
        run(c, "COMMIT", what);
      } catch (...) {
        PQclear(PQexec(c, "ROLLBACK"));
        throw;
      }
      v = next;
    }
    run(c, "SELECT pg_advisory_unlock(" + key + ")", "releasing the migration lock");
    return v;
  } catch (...) {
    PQclear(PQexec(c, ("SELECT pg_advisory_unlock(" + key + ")").c_str()));
    throw;
  }
}

}  // namespace tsm::server
