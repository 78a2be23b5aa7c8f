#include "jobs/job_queue.h"

namespace tsm::server {

bool JobQueue::push(const std::string& id, int priority, int64_t seq, bool force) {
  {
    std::lock_guard lk(mu_);
    if (closed_ || (!force && items_.size() >= capacity_)) return false;
    items_.insert({-priority, seq, id});
  }
  cv_.notify_one();
  return true;
}

std::optional<std::string> JobQueue::pop() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return closed_ || !items_.empty(); });
  if (closed_) return std::nullopt;
  auto it = items_.begin();
  std::string id = std::get<2>(*it);
  items_.erase(it);
  return id;
}

bool JobQueue::remove(const std::string& id) {
  std::lock_guard lk(mu_);
  for (auto it = items_.begin(); it != items_.end(); ++it)
    if (std::get<2>(*it) == id) {
      items_.erase(it);
      return true;
    }
  return false;
}

void JobQueue::close() {
  {
    std::lock_guard lk(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

size_t JobQueue::size() const {
  std::lock_guard lk(mu_);
  return items_.size();
}

}  // namespace tsm::server
