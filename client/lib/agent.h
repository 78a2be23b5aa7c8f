// The agent loop: for every followed model, poll the manifest (If-None-Match), download a new
// artifact through a temp file (sha256 + size verified, atomic rename; then its content hash, once
// per download), load it and run the workload, and report; reports go through the spool so they
// arrive in order even across outages.
// With remeasure_interval_s > 0 the workload also runs again on the current artifact that often.
// Invariants: the previous model file and state stay until the new one has loaded; a bad download
// or a model that fails to load is reported and leaves the previous model in place; state.json is
// written atomically. Layout of data_dir: models/<sha256>.tsm, spool/, state.json.
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "energy/energy_meter.h"
#include "lib/agent_config.h"
#include "lib/http_client.h"
#include "lib/report_spool.h"
#include "report.pb.h"

namespace tsm::client {

/// What the agent keeps per followed model between cycles (state.json).
struct ModelState {
  std::string tag;
  std::string sha256;        ///< of the current artifact; "" = none yet
  std::string path;          ///< models/<sha256>.tsm
  std::string rejected_sha;  ///< last artifact that failed (reported once)
  int64_t measured_unix = 0; ///< when the workload last ran on `sha256` (re-measurement clock)
};

struct CycleStats {
  int polled = 0;           ///< manifests fetched (200 or 304)
  int updated = 0;          ///< new artifacts adopted
  int rejected = 0;         ///< downloads or loads that failed (previous model kept)
  int workloads = 0;        ///< workload runs reported (adoptions and re-measurements)
  size_t delivered = 0;     ///< reports delivered from the spool this cycle
  size_t spooled = 0;       ///< reports still waiting
  std::vector<std::string> errors;  ///< one line per failure
};

class Agent {
 public:
  /// Opens data_dir (creating it), the spool and state.json; starts the energy meter.
  explicit Agent(AgentConfig cfg);
  ~Agent();

  /// One cycle over all followed models, then a spool flush.
  CycleStats run_once();
  /// Cycles every poll_interval_s until request_stop(); the cycle in flight finishes its current
  /// query, then the spool is flushed once more.
  void run();
  /// Thread- and signal-thread-safe.
  void request_stop();

  const std::map<std::string, ModelState>& state() const { return state_; }
  /// Lines describing the energy source choice, for the log.
  const std::string& energy_note() const { return energy_note_; }

 private:
  void cycle_model(const FollowedModel& m, CycleStats& st);
  /// The workload on `path` (compressed, and dense when dense_ab) as a report; throws when the
  /// compressed model does not load or run.
  tensorslm::v1::DeviceReport measure(const FollowedModel& m, const std::string& tag, const std::string& sha,
                                      const std::string& path);
  /// Re-runs the workload on the current artifact when remeasure_interval_s has passed.
  void maybe_remeasure(const FollowedModel& m, CycleStats& st);
  void report(tensorslm::v1::DeviceReport rep);
  size_t flush_spool();
  void load_state();
  void save_state();
  tensorslm::v1::DeviceReport base_report(const std::string& model, const std::string& tag, const std::string& sha) const;

  AgentConfig cfg_;
  HttpClient http_;
  ReportSpool spool_;
  std::unique_ptr<EnergyMeter> meter_;
  std::string energy_note_;
  std::map<std::string, ModelState> state_;  ///< followed model name -> state
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace tsm::client
