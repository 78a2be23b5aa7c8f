// The job lifecycle around the durable queue: submit (row + queue), a pool of worker threads that
// run jobs off the I/O threads, live progress and cooperative cancellation, waiters for ?wait=,
// and start-up recovery (running -> queued) / shutdown checkpoint (running jobs go back to queued).
// Invariant: a job id is in live_ exactly while its row is 'queued' or 'running'.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "jobs/job_queue.h"
#include "store/blob_store.h"
#include "store/store.h"

namespace tsm::server {

class JobService {
 public:
  JobService(MetadataStore& store, BlobStore& blobs, std::string models_dir, int workers, int codec_threads,
             size_t queue_capacity);
  ~JobService();

  /// Requeues jobs left running by a crash, refills the queue from the store and starts the workers.
  void start();
  /// Stops taking jobs, asks running ones to stop and puts them back to 'queued', joins the workers.
  void stop();

  /// Inserts the row (state queued) and queues it. False when the queue is full (nothing stored).
  bool submit(JobRecord& j);

  enum class CancelResult { NotFound, Canceled, Requested, AlreadyFinished };
  CancelResult cancel(const std::string& id);

  /// Progress of an active job, or `stored` when it is not running.
  double progress(const std::string& id, double stored) const;
  /// The phase a running job reports (a plan job: calibrate, candidates, repair, build); "" otherwise.
  std::string phase(const std::string& id) const;
  /// Calls `cb` (on some thread) once the job is no longer queued or running; at once if it is not.
  void when_done(const std::string& id, std::function<void()> cb);
  size_t queue_depth() const { return queue_.size(); }
  size_t queue_capacity() const { return queue_.capacity(); }
  int running() const { return running_.load(); }

 private:
  struct Live {
    std::atomic<bool> cancel{false};
    std::atomic<double> progress{0};
    mutable std::mutex phase_mu;
    std::string phase;  ///< guarded by phase_mu
    bool running = false;
    std::vector<std::function<void()>> waiters;
  };
  void worker_loop();
  void run_one(const std::string& id, const std::shared_ptr<Live>& live);
  void finish(const std::string& id);

  MetadataStore& store_;
  BlobStore& blobs_;
  std::string models_dir_;
  int workers_, codec_threads_;
  JobQueue queue_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Live>> live_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_{0};
};

}  // namespace tsm::server
