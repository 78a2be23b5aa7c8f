// The job lifecycle around the durable queue in the store (store.h): submit (a queued row), a pool
// of worker threads that claim jobs from the store and run them off the I/O threads under a lease
// that a heartbeat thread extends, live progress and cooperative cancellation (also of a job that
// runs in another process, through the store's cancel request and event), waiters for ?wait= (woken
// by this process's workers, by the store's Done events, and by a periodic check of the store), and
// recovery: a single-process store requeues running jobs at start-up; a shared one lets their
// leases expire and another worker take them over. stop() puts this process's running jobs back to
// 'queued' (the shutdown checkpoint).
// Invariant: a job id is in live_ exactly while one of this process's workers holds its lease.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/blob_store.h"
#include "store/store.h"

namespace tsm::server {

/// How this process takes part in the queue.
struct QueueOptions {
  std::string worker_id;   ///< this process's name in locked_by ("<host>-<pid>" when empty); threads add "/<i>"
  double lease_s = 30;     ///< a claim's lease; heartbeats extend it every lease_s / 3
  double poll_s = 1;       ///< idle workers look for jobs (expired leases) at least this often
  int max_attempts = 3;    ///< an expired lease with this many attempts fails the job instead of a takeover
};

/// Counters of this process's queue activity (for /metrics).
struct QueueCounters {
  std::atomic<uint64_t> claims{0}, takeovers{0}, lease_expiries{0}, leases_lost{0}, attempt_limit_failures{0};
};

class JobService {
 public:
  /// `workers` = 0: this process runs no jobs (role api); it still submits, cancels and waits.
  JobService(MetadataStore& store, BlobStore& blobs, std::string models_dir, int workers, int codec_threads,
             size_t queue_capacity, QueueOptions queue = {});
  ~JobService();

  /// Requeues jobs left running by a crash (single-process store only), subscribes to the store's
  /// events and starts the workers and the heartbeat thread.
  void start();
  /// Stops taking jobs, asks running ones to stop and puts them back to 'queued', joins the workers.
  void stop();

  /// Inserts the row (state queued) and wakes a worker. False when queue_capacity jobs are queued
  /// (nothing stored).
  bool submit(JobRecord& j);

  enum class CancelResult { NotFound, Canceled, Requested, AlreadyFinished };
  CancelResult cancel(const std::string& id);

  /// Progress of an active job, or `stored` when it is not running.
  double progress(const std::string& id, double stored) const;
  /// The phase a running job reports (a plan job: calibrate, candidates, repair, build); "" otherwise.
  std::string phase(const std::string& id) const;
  /// Calls `cb` (on some thread) once the job is no longer queued or running; at once if it is not.
  void when_done(const std::string& id, std::function<void()> cb);
  /// Jobs queued in the store (every process's); the last value read when the store is unreachable.
  size_t queue_depth() const;
  /// The last value queue_depth() read (the heartbeat thread reads it every second): never blocks
  /// on the store, for the I/O threads (/readyz).
  size_t last_queue_depth() const { return static_cast<size_t>(last_depth_.load()); }
  size_t queue_capacity() const { return queue_capacity_; }
  int running() const { return running_.load(); }
  const QueueCounters& counters() const { return counters_; }
  const QueueOptions& queue_options() const { return opt_; }

 private:
  struct Live {
    std::atomic<bool> cancel{false};
    std::atomic<bool> lost{false};  ///< the lease went to another worker: write nothing
    std::atomic<double> progress{0};
    mutable std::mutex phase_mu;
    std::string phase;  ///< guarded by phase_mu
    std::string worker;  ///< locked_by of the claim
    int attempt = 0;     ///< attempts of the claim
  };
  void worker_loop(int index);
  void housekeeping_loop();
  void run_one(JobRecord j, const std::shared_ptr<Live>& live);
  /// Writes the end of a job through finish_job, retrying while the store is unreachable (until
  /// the lease would have run out). False when the lease was lost or the store stayed away.
  bool finish(const JobRecord& j, const ArtifactRecord* a, ModelVersion* v);
  /// Runs `read` (a store call of a running job), waiting out an unreachable store (StoreUnavailable)
  /// every 0.5 s for up to lease_s; rethrows after that, at shutdown, or once the lease was lost.
  template <class F>
  auto patiently(const Live& live, F&& read);
  void on_store_event(StoreEvent e, const std::string& id);
  void fire_waiters(const std::string& id);
  void check_waiters();
  void wake_workers();

  MetadataStore& store_;
  BlobStore& blobs_;
  std::string models_dir_;
  int workers_, codec_threads_;
  size_t queue_capacity_;
  QueueOptions opt_;
  QueueCounters counters_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Live>> live_;
  std::map<std::string, std::vector<std::function<void()>>> waiters_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;  ///< idle workers and the heartbeat thread wait here
  uint64_t wake_seq_ = 0;            ///< guarded by wake_mu_; bumped by every wake-up
  std::vector<std::thread> threads_;
  std::thread housekeeper_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_{0};
  mutable std::atomic<int64_t> last_depth_{0};
};

}  // namespace tsm::server
