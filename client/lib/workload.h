// The measured query workload an agent runs on a model: load (cold start: seconds, joules, RSS),
// warm-up passes, then measured passes over every prompt; per query TTFT, total time and tokens;
// summary p50/p90/p99 latency, tokens/s, energy per query (idle baseline stated separately), peak RSS.
// Invariant: the model is released when run_workload returns; a stop request ends the run after
// the query in flight (the summary then covers the queries finished).
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "energy/energy_meter.h"
#include "formats/artifact_io.h"
#include "lib/agent_config.h"
#include "report.pb.h"

namespace tsm::client {

/// Linear-interpolated percentile (numpy's default) of `v` for p in [0, 100]; 0 for an empty v.
double percentile(std::vector<double> v, double p);

/// VmRSS and VmHWM of this process in bytes (0 when /proc is unavailable).
uint64_t current_rss_bytes();
uint64_t peak_rss_bytes();
/// Resets VmHWM to the current RSS (Linux: "5" > /proc/self/clear_refs); false when not possible.
bool reset_peak_rss();

struct WorkloadInput {
  std::string model_path;              ///< artifact (.tsm) or HF model directory
  std::string variant = "compressed";  ///< compressed | dense (the embedding decoded for the A/B run)
  std::string embedding = "auto";      ///< auto | dense | tt
  std::string head = "materialize";
  std::string base_model_dir;          ///< HF dir the artifact's tensors override ("" = whole-model artifact)
  /// kSkip when the caller has verified the artifact's content hash (the agent, once after each
  /// download), so that the cold start measures the load, not a second hash.
  ContentCheck content_check = ContentCheck::kVerify;
};

/// Power with nothing running, from `meter` over `seconds`; 0 when meter is null or seconds <= 0.
double measure_idle_watts(EnergyMeter* meter, double seconds, const std::atomic<bool>* stop = nullptr);

/// Loads the model and runs the workload. Throws tsm::Error when the model cannot be loaded or
/// the workload has no prompts (or the model no tokenizer for text prompts).
tensorslm::v1::RunSummary run_workload(const WorkloadInput& in, const WorkloadConfig& w, EnergyMeter* meter,
                                       double idle_watts, const std::atomic<bool>* stop = nullptr);

}  // namespace tsm::client
