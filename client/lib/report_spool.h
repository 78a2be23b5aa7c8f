// The report spool: serialized DeviceReports waiting for the server, one file each in a directory,
// named by a zero-padded sequence number so the directory order is the delivery order.
// Invariants: at most `max_reports` files (the oldest are dropped first and counted in `dropped`);
// files are written atomically (temp + rename), so a crash leaves whole reports only; a report is
// removed only after the sender accepted it, so delivery is in order and at most one failure late.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tsm::client {

class ReportSpool {
 public:
  /// Creates `dir` when missing. Throws tsm::Error when it cannot.
  ReportSpool(std::string dir, size_t max_reports);

  /// Stores one serialized report; drops the oldest ones beyond the bound. Returns its sequence number.
  uint64_t push(const std::string& bytes);
  /// Sends spooled reports oldest first until `send` returns false (or throws); each accepted one is
  /// removed. Returns how many were delivered.
  size_t deliver(const std::function<bool(const std::string& bytes)>& send);

  size_t size() const;
  /// Reports dropped because the spool was full, since the spool directory was created (persisted).
  uint64_t dropped() const;
  /// Sequence numbers currently spooled, oldest first.
  std::vector<uint64_t> pending() const;

 private:
  std::string path_of(uint64_t seq) const;
  void save_dropped(uint64_t n);
  std::string dir_;
  size_t max_;
};

}  // namespace tsm::client
