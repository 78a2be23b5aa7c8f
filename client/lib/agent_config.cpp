#include "lib/agent_config.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/error.h"

namespace tsm::client {
using json = nlohmann::json;

namespace {

void only_keys(const json& j, const std::string& where, const std::set<std::string>& allowed) {
  if (!j.is_object()) throw ParamError(where.empty() ? "(top level)" : where, "must be a JSON object");
  for (const auto& [k, v] : j.items())
    if (!allowed.count(k)) throw ParamError(where.empty() ? k : where + "." + k, "unknown key (see configs/agent.json)");
}

template <class T>
T number(const json& j, const std::string& key, const std::string& path, T def, double lo, double hi) {
  if (!j.contains(key)) return def;
  const auto& v = j.at(key);
  if (!v.is_number()) throw ParamError(path + key, "must be a number");
  double d = v.get<double>();
  if (!(d >= lo && d <= hi)) throw ParamError(path + key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<T>(d);
}

std::string str(const json& j, const std::string& key, const std::string& path, const std::string& def) {
  if (!j.contains(key)) return def;
  if (!j.at(key).is_string()) throw ParamError(path + key, "must be a string");
  return j.at(key).get<std::string>();
}

bool boolean(const json& j, const std::string& key, const std::string& path, bool def) {
  if (!j.contains(key)) return def;
  if (!j.at(key).is_boolean()) throw ParamError(path + key, "must be true or false");
  return j.at(key).get<bool>();
}

}  // namespace

FollowedModel parse_followed_model(const std::string& s) {
  FollowedModel m;
  auto c = s.find(':');
  m.name = s.substr(0, c);
  if (c != std::string::npos) m.tag = s.substr(c + 1);
  auto ok = [](const std::string& x) {
    if (x.empty() || x.size() > 128) return false;
    for (char ch : x)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-')) return false;
    return true;
  };
  if (!ok(m.name) || (c != std::string::npos && !ok(m.tag)))
    throw ParamError("models", "'" + s + "' is not name or name:tag of [A-Za-z0-9._-]");
  return m;
}

AgentConfig parse_agent_config(const std::string& text) {
  json j;
  try {
    j = json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {
    throw FormatError(std::string("agent config is not valid JSON: ") + e.what());
  }
  only_keys(j, "", {"server", "token", "token_file", "device_id", "models", "poll_interval_s", "remeasure_interval_s", "data_dir",
                    "spool_max_reports", "http", "workload", "runtime", "energy"});
  AgentConfig c;
  c.http.server = str(j, "server", "", c.http.server);
  parse_url(c.http.server);  // validates
  c.http.token = str(j, "token", "", "");
  if (j.contains("token_file")) {
    std::string tf = str(j, "token_file", "", "");
    if (!tf.empty()) {
      std::string t = read_file(tf, 4096);
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      c.http.token = t;
    }
  }
  c.device_id = str(j, "device_id", "", "");
  if (j.contains("models")) {
    if (!j["models"].is_array()) throw ParamError("models", "must be an array of \"name\" or \"name:tag\"");
    for (const auto& m : j["models"]) {
      if (!m.is_string()) throw ParamError("models", "entries must be strings");
      c.models.push_back(parse_followed_model(m.get<std::string>()));
    }
  }
  c.poll_interval_s = number<int>(j, "poll_interval_s", "", c.poll_interval_s, 1, 86400 * 7);
  c.remeasure_interval_s = number<int>(j, "remeasure_interval_s", "", c.remeasure_interval_s, 0, 86400 * 365);
  c.data_dir = str(j, "data_dir", "", c.data_dir);
  c.spool_max_reports = number<size_t>(j, "spool_max_reports", "", c.spool_max_reports, 1, 1e7);
  if (j.contains("http")) {
    const auto& h = j["http"];
    only_keys(h, "http", {"connect_timeout_ms", "io_timeout_ms", "max_attempts", "backoff_base_ms", "backoff_max_ms",
                          "tls_verify", "ca_file"});
    c.http.connect_timeout = std::chrono::milliseconds(number<int64_t>(h, "connect_timeout_ms", "http.", 5000, 1, 600000));
    c.http.io_timeout = std::chrono::milliseconds(number<int64_t>(h, "io_timeout_ms", "http.", 30000, 1, 3600000));
    c.http.max_attempts = number<int>(h, "max_attempts", "http.", 4, 1, 100);
    c.http.backoff_base = std::chrono::milliseconds(number<int64_t>(h, "backoff_base_ms", "http.", 200, 0, 600000));
    c.http.backoff_max = std::chrono::milliseconds(number<int64_t>(h, "backoff_max_ms", "http.", 5000, 0, 3600000));
    c.http.tls_verify = boolean(h, "tls_verify", "http.", true);
    c.http.ca_file = str(h, "ca_file", "http.", "");
  }
  c.http.user_agent = std::string("tensorslm-agent/") + TSM_VERSION;
  if (j.contains("workload")) {
    const auto& w = j["workload"];
    only_keys(w, "workload", {"prompts", "prompt_file", "token_ids", "max_new_tokens", "warmup", "repetitions", "threads",
                              "idle_s", "dense_ab"});
    auto& W = c.workload;
    if (w.contains("prompts")) {
      if (!w["prompts"].is_array()) throw ParamError("workload.prompts", "must be an array of strings");
      for (const auto& p : w["prompts"]) {
        if (!p.is_string() || p.get<std::string>().empty()) throw ParamError("workload.prompts", "entries must be non-empty strings");
        W.prompts.push_back(p.get<std::string>());
      }
    }
    W.prompt_file = str(w, "prompt_file", "workload.", "");
    if (w.contains("token_ids")) {
      if (!w["token_ids"].is_array()) throw ParamError("workload.token_ids", "must be an array of arrays of ids");
      for (const auto& seq : w["token_ids"]) {
        if (!seq.is_array() || seq.empty()) throw ParamError("workload.token_ids", "each prompt must be a non-empty array of ids");
        std::vector<int32_t> ids;
        for (const auto& id : seq) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
            throw ParamError("workload.token_ids", "ids must be non-negative integers");
          ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
        W.token_ids.push_back(std::move(ids));
      }
    }
    W.max_new_tokens = number<int>(w, "max_new_tokens", "workload.", W.max_new_tokens, 1, 100000);
    W.warmup = number<int>(w, "warmup", "workload.", W.warmup, 0, 10000);
    W.repetitions = number<int>(w, "repetitions", "workload.", W.repetitions, 1, 100000);
    W.threads = number<int>(w, "threads", "workload.", W.threads, 0, 1024);
    W.idle_s = number<double>(w, "idle_s", "workload.", W.idle_s, 0, 3600);
    W.dense_ab = boolean(w, "dense_ab", "workload.", W.dense_ab);
  }
  if (j.contains("runtime")) {
    const auto& r = j["runtime"];
    only_keys(r, "runtime", {"embedding", "head", "base_model_dir"});
    c.runtime.base_model_dir = str(r, "base_model_dir", "runtime.", "");
    c.runtime.embedding = str(r, "embedding", "runtime.", c.runtime.embedding);
    c.runtime.head = str(r, "head", "runtime.", c.runtime.head);
    if (c.runtime.embedding != "auto" && c.runtime.embedding != "dense" && c.runtime.embedding != "tt")
      throw ParamError("runtime.embedding", "must be auto, dense or tt");
    if (c.runtime.head != "materialize" && c.runtime.head != "stream")
      throw ParamError("runtime.head", "must be materialize or stream");
  }
  if (j.contains("energy")) {
    const auto& e = j["energy"];
    only_keys(e, "energy", {"source", "model_idle_w", "model_max_w", "sample_ms", "vcgencmd", "sysfs_root", "proc_root"});
    auto& E = c.energy;
    E.source = str(e, "source", "energy.", E.source);
    static const std::set<std::string> sources{"auto", "rapl", "hwmon", "pi5-pmic", "model", "none"};
    if (!sources.count(E.source)) throw ParamError("energy.source", "must be auto, rapl, hwmon, pi5-pmic, model or none");
    E.model_idle_w = number<double>(e, "model_idle_w", "energy.", 0, 0, 10000);
    E.model_max_w = number<double>(e, "model_max_w", "energy.", 0, 0, 10000);
    E.sample_period = std::chrono::milliseconds(number<int64_t>(e, "sample_ms", "energy.", 200, 10, 60000));
    E.vcgencmd = str(e, "vcgencmd", "energy.", E.vcgencmd);
    E.sysfs_root = str(e, "sysfs_root", "energy.", E.sysfs_root);
    E.proc_root = str(e, "proc_root", "energy.", E.proc_root);
  }
  return c;
}

AgentConfig load_agent_config(const std::string& path) {
  AgentConfig c = parse_agent_config(read_file(path, 1 << 20));
  if (c.device_id.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    c.device_id = host;
  }
  return c;
}

}  // namespace tsm::client
