// Bounded in-memory priority queue of job ids feeding the worker pool; the durable copy of the
// queue is the store (jobs in state 'queued'), from which this queue is refilled at start-up.
// Order: higher priority first, then older (lower seq) first. Invariant: size() <= capacity.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>

namespace tsm::server {

class JobQueue {
 public:
  explicit JobQueue(size_t capacity) : capacity_(capacity) {}
  /// False when the queue is full or closed. `force` ignores the capacity (start-up refill).
  bool push(const std::string& id, int priority, int64_t seq, bool force = false);
  /// Blocks until a job is available; nullopt once closed.
  std::optional<std::string> pop();
  /// Removes a queued id; false when it was not queued.
  bool remove(const std::string& id);
  void close();
  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  using Key = std::tuple<int, int64_t, std::string>;  // (-priority, seq, id)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<Key> items_;
  size_t capacity_;
  bool closed_ = false;
};

}  // namespace tsm::server
