// MetadataStore on PostgreSQL (libpq), shared by any number of API and worker processes.
// Invariant: the schema version in `schema_migrations` equals the number of applied entries of
// pg_migrations(); the constructor applies the missing ones under an advisory lock (pg_migrations.h).
// Every write is one transaction (one statement, or BEGIN..COMMIT); the queue's lease times use the
// database's clock (clock_timestamp()), so hosts' clocks need not agree. Notifications: insert_job
// sends NOTIFY tsm_submit, the end of a job (finish, cancel while queued, attempt limit) tsm_done,
// request_cancel tsm_cancel, each with the job id as payload and delivered at commit.
// Connections: a pool of up to `connections` for statements (each call leases one, waiting while
// all are busy; a broken one is re-established at its next lease, so the process recovers by
// itself when the database returns, and every connection opened before the event thread last lost
// the database is reopened at its next lease; a break inside a transaction is StoreUnavailable,
// never a silent reconnect). Each connection prepares a statement once, the first time it runs that SQL
// text, and reuses the plan (so migrations run only at start-up, before any statement is
// prepared; a schema change under running processes needs their restart). One LISTEN connection on
// its own thread for the store's whole life (re-established every 0.5 s while down, then Resync),
// which also checks the database every second (health(): what /readyz reads, so that no I/O thread
// waits on the database). Errors of an unreachable database or a dropped connection are
// StoreUnavailable (store.h); the rest tsm::Error.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store.h"

struct pg_conn;

namespace tsm::server {

class PostgresStore : public MetadataStore {
 public:
  /// `conninfo`: a libpq connection string or URI (postgresql://user@host:port/db); the password
  /// comes from PGPASSWORD / PGPASSFILE (or the string itself; it is never logged). Connects and
  /// migrates. Throws tsm::Error (without the password) when it cannot.
  /// `connections`: the size of the statement pool (HTTP handlers, job workers and housekeeping
  /// share it; a call waits while all are leased).
  explicit PostgresStore(const std::string& conninfo, int connections = 8);
  ~PostgresStore() override;

  /// `conninfo` as postgresql://user@host:port/dbname, without any password (for logs).
  static std::string redact(const std::string& conninfo);
  /// True for a value --store takes as PostgreSQL: postgres:// or postgresql:// URIs, or key=value strings.
  static bool is_conninfo(const std::string& s);
  static int latest_schema_version();

  void insert_upload(const UploadRecord& u) override;
  std::optional<UploadRecord> get_upload(const std::string& id) override;
  bool delete_upload(const std::string& id) override;
  int64_t blob_refs(const std::string& sha256) override;

  void insert_job(JobRecord& j) override;
  std::optional<JobRecord> get_job(const std::string& id) override;
  std::vector<JobRecord> list_jobs(const JobFilter& f) override;
  void update_job(const JobRecord& j) override;
  int requeue_running() override;
  std::vector<JobRecord> queued_jobs() override;
  std::map<std::string, int64_t> count_jobs_by_state() override;

  void insert_artifact(const ArtifactRecord& a) override;
  std::optional<ArtifactRecord> get_artifact(const std::string& sha256) override;

  void insert_model_version(ModelVersion& v) override;
  std::vector<std::string> list_models() override;
  std::vector<ModelVersion> model_versions(const std::string& model) override;

  void insert_report(ReportRecord& r) override;
  std::vector<ReportRecord> list_reports(const ReportFilter& f) override;

  int schema_version() override;

  std::optional<JobRecord> claim_job(const std::string& worker, double lease_s, int max_attempts,
                                     ClaimOutcome& out) override;
  LeaseState heartbeat(const std::string& id, const std::string& worker, int attempt, double lease_s,
                       double progress) override;
  bool finish_job(const JobRecord& j, const ArtifactRecord* artifact, ModelVersion* version) override;
  bool release_job(const std::string& id, const std::string& worker, int attempt) override;
  bool cancel_queued(const std::string& id, const std::string& error, int64_t finished_unix) override;
  bool request_cancel(const std::string& id) override;
  int64_t queued_count() override;

  bool shared() const override { return true; }
  void on_event(std::function<void(StoreEvent, const std::string& id)> handler) override;
  bool reachable() override;
  Health health() override { return {up_.load(), schema_seen_.load()}; }
  std::string describe() const override { return redacted_; }

  class Result;
  /// One statement parameter: text, or bytea sent in binary.
  struct Param {
    std::string value;
    bool binary = false;
  };
  class Tx;

 private:
  struct Slot;
  /// A leased pool connection, returned to the pool when it goes out of scope.
  class Conn {
   public:
    Conn(PostgresStore& s, Slot& slot) : s_(&s), slot_(&slot) {}
    Conn(Conn&& o) noexcept : s_(std::exchange(o.s_, nullptr)), slot_(o.slot_) {}
    Conn(const Conn&) = delete;
    ~Conn();
    /// Runs one statement (prepared on first use on this connection); throws tsm::Error, or
    /// StoreUnavailable when the database is unreachable.
    Result query(const std::string& sql, const std::vector<Param>& params = {});
    pg_conn* get();  ///< the connection, re-established when broken; throws when unreachable

   private:
    friend class Tx;
    PostgresStore* s_;
    Slot* slot_;
    bool in_tx_ = false;
  };
  Conn lease();  ///< waits for a free slot (an open one first)
  void listen_loop();

  std::string conninfo_, redacted_;
  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<Slot> slots_;
  std::mutex handler_mu_;
  std::function<void(StoreEvent, const std::string&)> handler_;
  std::thread listener_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> up_{true};      ///< the event thread's last check of the database answered
  std::atomic<uint64_t> epoch_{0};  ///< +1 each time the event thread loses the database (Slot::epoch)
  std::atomic<int> schema_seen_{0};  ///< the schema version that check read
};

}  // namespace tsm::server
