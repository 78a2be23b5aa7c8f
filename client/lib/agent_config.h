// Configuration of tensorslm-agent, read from JSON with comments (configs/agent.json documents every
// key). Invariant: unknown keys are errors (a typo never silently falls back to a default);
// every number is range-checked with a ParamError naming the key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "energy/energy_meter.h"
#include "lib/http_client.h"

namespace tsm::client {

struct WorkloadConfig {
  std::vector<std::string> prompts;               ///< texts, tokenized with the model's tokenizer
  std::string prompt_file;                        ///< one prompt per non-empty line (added to prompts)
  std::vector<std::vector<int32_t>> token_ids;    ///< prompts given as ids (models without a tokenizer)
  int max_new_tokens = 32;
  int warmup = 1;                                 ///< passes over all prompts before measuring
  int repetitions = 3;                            ///< measured passes over all prompts
  int threads = 0;                                ///< compute threads; 0 = runtime default
  double idle_s = 2.0;                            ///< idle-baseline window before the workload (0 = skip)
  bool dense_ab = false;                          ///< also run with the embedding decoded to dense (A/B)
};

struct RuntimeConfig {
  std::string embedding = "auto";       ///< auto | dense | tt
  std::string head = "materialize";     ///< materialize | stream
  /// HF model directory that an artifact of some tensors only (e.g. a tt-token embedding) is laid
  /// over; "" = artifacts must be whole models.
  std::string base_model_dir;
};

struct FollowedModel {
  std::string name;
  std::string tag;  ///< empty = whatever is latest
};

struct AgentConfig {
  HttpOptions http;                     ///< server, token, timeouts, retries
  std::string device_id;                ///< empty = host name
  std::vector<FollowedModel> models;
  int poll_interval_s = 300;
  int remeasure_interval_s = 0;         ///< > 0: run the workload again on the current artifact this often
  std::string data_dir = "/var/lib/tensorslm-agent";  ///< models/, spool/, state.json
  size_t spool_max_reports = 1000;
  WorkloadConfig workload;
  RuntimeConfig runtime;
  EnergyConfig energy;
};

/// Parses the config text. Throws tsm::FormatError for bad JSON, tsm::ParamError naming a bad key.
AgentConfig parse_agent_config(const std::string& text);
/// Reads and parses a config file; `token_file` is read here too.
AgentConfig load_agent_config(const std::string& path);
/// "name" or "name:tag"; throws ParamError("models", ...) for an empty or malformed entry.
FollowedModel parse_followed_model(const std::string& s);

}  // namespace tsm::client
