#include "lib/agent.h"

#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/artifact_io.h"
#include "lib/device_facts.h"
#include "lib/workload.h"

namespace tsm::client {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
void log_line(const std::string& s) {
  std::time_t t = std::time(nullptr);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  std::cerr << ts << " tensorslm-agent: " << s << std::endl;
}
std::string unquote(std::string e) {
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}
}  // namespace

Agent::Agent(AgentConfig cfg)
    : cfg_(std::move(cfg)), http_(cfg_.http), spool_((fs::path(cfg_.data_dir) / "spool").string(), cfg_.spool_max_reports) {
  if (cfg_.device_id.empty()) throw ParamError("device_id", "must not be empty");
  fs::create_directories(fs::path(cfg_.data_dir) / "models");
  load_state();
  meter_ = make_energy_meter(cfg_.energy, &energy_note_);
  // Sampling meters run only while a workload is measured: an idle agent costs nothing between polls.
  if (meter_) meter_->stop();
}

Agent::~Agent() {
  if (meter_) meter_->stop();
}

void Agent::request_stop() {
  stop_ = true;
  cv_.notify_all();
}

void Agent::load_state() {
  const auto p = fs::path(cfg_.data_dir) / "state.json";
  if (!fs::exists(p)) return;
  try {
    json j = json::parse(read_file(p.string(), 1 << 20));
    for (const auto& [name, v] : j.at("models").items()) {
      ModelState s;
      s.tag = v.value("tag", "");
      s.sha256 = v.value("sha256", "");
      s.path = v.value("path", "");
      s.rejected_sha = v.value("rejected_sha", "");
      s.measured_unix = v.value("measured_unix", int64_t{0});
      if (!s.path.empty() && !fs::exists(s.path)) s = ModelState{};  // file lost: fetch again
      state_[name] = s;
    }
  } catch (const std::exception& e) {
    log_line("ignoring unreadable " + p.string() + ": " + e.what());
  }
}

void Agent::save_state() {
  json m = json::object();
  for (const auto& [name, s] : state_)
    m[name] = {{"tag", s.tag}, {"sha256", s.sha256}, {"path", s.path}, {"rejected_sha", s.rejected_sha},
               {"measured_unix", s.measured_unix}};
  write_file_atomic((fs::path(cfg_.data_dir) / "state.json").string(), json{{"models", m}}.dump(2));
}

tensorslm::v1::DeviceReport Agent::base_report(const std::string& model, const std::string& tag, const std::string& sha) const {
  tensorslm::v1::DeviceReport r;
  *r.mutable_device() = read_device_facts(cfg_.device_id);
  r.set_model(model);
  r.set_tag(tag);
  r.set_artifact_sha256(sha);
  r.set_created_unix(static_cast<uint64_t>(std::time(nullptr)));
  return r;
}

void Agent::report(tensorslm::v1::DeviceReport rep) {
  rep.set_spool_dropped(spool_.dropped());
  std::string bytes;
  rep.SerializeToString(&bytes);
  spool_.push(bytes);  // always through the spool: a new report never overtakes an older one
}

size_t Agent::flush_spool() {
  const std::string target = "/v1/devices/" + url_encode(cfg_.device_id) + "/reports";
  return spool_.deliver([&](const std::string& bytes) {
    HttpRequest r;
    r.method = "POST";
    r.target = target;
    r.body = bytes;
    r.content_type = "application/x-protobuf";
    try {
      HttpResponse res = http_.send(r);
      if (res.status < 300) return true;
      if (res.status >= 400 && res.status < 500 && res.status != 408 && res.status != 429) {
        // The server will never take this one (malformed, forbidden): drop it rather than block the queue.
        log_line("report rejected by the server (HTTP " + std::to_string(res.status) + "): " + problem_text(res.body) +
                 "; dropped");
        return true;
      }
      return false;
    } catch (const NetworkError& e) {
      log_line(std::string("server unreachable, report stays spooled: ") + e.what());
      return false;
    }
  });
}

void Agent::cycle_model(const FollowedModel& m, CycleStats& st) {
  ModelState& cur = state_[m.name];
  // 1. Manifest: /latest with If-None-Match, or the version with the wanted tag.
  json manifest;
  if (m.tag.empty()) {
    HttpRequest r;
    r.target = "/v1/models/" + url_encode(m.name) + "/latest";
    if (!cur.sha256.empty()) r.headers["If-None-Match"] = "\"" + cur.sha256 + "\"";
    HttpResponse res = http_.send(r);
    ++st.polled;
    if (res.status == 304) return maybe_remeasure(m, st);
    if (res.status >= 400) throw HttpError(res.status, "GET " + r.target + ": HTTP " + std::to_string(res.status) + ": " + problem_text(res.body), res.body);
    manifest = json::parse(res.body);
  } else {
    HttpResponse res = http_.get("/v1/models/" + url_encode(m.name));
    ++st.polled;
    for (const auto& v : json::parse(res.body).at("versions"))
      if (v.value("tag", "") == m.tag) {
        manifest = v;
        break;
      }
    if (manifest.is_null()) throw Error("model '" + m.name + "' has no version tagged '" + m.tag + "'");
  }
  const std::string sha = manifest.value("sha256", manifest.value("artifact", ""));
  const std::string tag = manifest.value("tag", "");
  const uint64_t size = manifest.value("size_bytes", manifest.value("size", uint64_t(0)));
  std::string url = manifest.value("url", "/v1/artifacts/" + sha);
  if (sha.size() != 64) throw Error("manifest of '" + m.name + "' has no sha256");
  if (sha == cur.sha256) return maybe_remeasure(m, st);  // same artifact (a tagged lookup has no ETag)
  if (sha == cur.rejected_sha) return maybe_remeasure(m, st);  // already reported; wait for a new version
  if (url.rfind("http", 0) == 0) url = url.substr(parse_url(url).origin().size());  // same server, path only

  // 2. Download to models/<sha>.tsm (temp file, verified, renamed); the previous file stays.
  const std::string dest = (fs::path(cfg_.data_dir) / "models" / (sha + ".tsm")).string();
  auto reject = [&](const std::string& why) {
    log_line("model " + m.name + ": " + why + "; keeping " + (cur.sha256.empty() ? "no model" : cur.sha256));
    auto rep = base_report(m.name, tag, sha);
    rep.set_error(why);
    report(std::move(rep));
    cur.rejected_sha = sha;
    save_state();
    ++st.rejected;
    st.errors.push_back(m.name + ": " + why);
  };
  try {
    auto d = http_.download(url, dest, size ? std::optional<uint64_t>(size) : std::nullopt, sha);
    log_line("model " + m.name + ": downloaded " + sha + " (" + std::to_string(d.bytes) + " bytes, sha256 verified)");
  } catch (const IntegrityError& e) {
    reject(std::string("artifact rejected: ") + e.what());
    return;
  }
  // The sha256 above says the bytes are the ones the server named; the content hash inside says they
  // are the ones the writer wrote (a blob damaged before the server took its sha256 passes the first).
  try {
    const ArtifactIntegrity in = check_artifact_file(dest);
    if (in.state == ArtifactIntegrity::State::kUnverified)
      log_line("model " + m.name + ": " + sha + " carries no content hash (written before artifacts had one); unverified");
  } catch (const Error& e) {
    std::error_code ec;
    fs::remove(dest, ec);
    reject(std::string("artifact rejected: ") + e.what());
    return;
  }

  // 3. Load + workload on the new artifact. A failure to load keeps the previous model.
  tensorslm::v1::DeviceReport rep;
  try {
    rep = measure(m, tag, sha, dest);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(dest, ec);
    reject(std::string("model does not load or run: ") + e.what());
    return;
  }
  // 4. Adopt: the new artifact is the current one; the previous file goes.
  const std::string old_path = cur.path;
  cur.sha256 = sha;
  cur.tag = tag;
  cur.path = dest;
  cur.rejected_sha.clear();
  cur.measured_unix = static_cast<int64_t>(std::time(nullptr));
  save_state();
  if (!old_path.empty() && old_path != dest) {
    std::error_code ec;
    fs::remove(old_path, ec);
  }
  report(std::move(rep));
  ++st.updated;
  ++st.workloads;
  log_line("model " + m.name + ": now at " + sha + " (tag " + tag + ")");
}

tensorslm::v1::DeviceReport Agent::measure(const FollowedModel& m, const std::string& tag, const std::string& sha,
                                           const std::string& path) {
  struct MeterRun {  // the meter samples for the duration of this model's measurements only
    EnergyMeter* m;
    explicit MeterRun(EnergyMeter* x) : m(x) { if (m) m->start(); }
    ~MeterRun() { if (m) m->stop(); }
  } meter_run(meter_.get());
  const double idle_w = measure_idle_watts(meter_.get(), cfg_.workload.idle_s, &stop_);
  auto rep = base_report(m.name, tag, sha);
  auto* w = rep.mutable_workload();
  w->set_prompts(static_cast<uint32_t>(cfg_.workload.prompts.size() + cfg_.workload.token_ids.size()));
  w->set_max_new_tokens(static_cast<uint32_t>(cfg_.workload.max_new_tokens));
  w->set_warmup(static_cast<uint32_t>(cfg_.workload.warmup));
  w->set_repetitions(static_cast<uint32_t>(cfg_.workload.repetitions));
  w->set_threads(static_cast<uint32_t>(cfg_.workload.threads));
  w->set_embedding(cfg_.runtime.embedding);
  w->set_head(cfg_.runtime.head);
  // The file's content hash was checked once, after its download (check_artifact_file above).
  WorkloadInput in{path, "compressed", cfg_.runtime.embedding, cfg_.runtime.head, cfg_.runtime.base_model_dir, ContentCheck::kSkip};
  *rep.add_runs() = run_workload(in, cfg_.workload, meter_.get(), idle_w, &stop_);
  w->set_prompts(static_cast<uint32_t>(rep.runs(0).queries_size() / std::max(1, cfg_.workload.repetitions)));
  if (cfg_.workload.dense_ab && !stop_) {
    try {
      WorkloadInput dense{path, "dense", "dense", "materialize", cfg_.runtime.base_model_dir, ContentCheck::kSkip};
      *rep.add_runs() = run_workload(dense, cfg_.workload, meter_.get(), idle_w, &stop_);
    } catch (const std::exception& e) {
      log_line("model " + m.name + ": dense A/B run failed: " + e.what());
    }
  }
  return rep;
}

void Agent::maybe_remeasure(const FollowedModel& m, CycleStats& st) {
  ModelState& cur = state_[m.name];
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (cfg_.remeasure_interval_s <= 0 || cur.sha256.empty() || stop_ ||
      now - cur.measured_unix < cfg_.remeasure_interval_s)
    return;
  try {
    auto rep = measure(m, cur.tag, cur.sha256, cur.path);
    cur.measured_unix = now;
    save_state();
    report(std::move(rep));
    ++st.workloads;
    log_line("model " + m.name + ": re-measured " + cur.sha256);
  } catch (const std::exception& e) {  // the model ran before: report the failure, try again next interval
    cur.measured_unix = now;
    save_state();
    auto rep = base_report(m.name, cur.tag, cur.sha256);
    rep.set_error(std::string("re-measurement failed: ") + e.what());
    report(std::move(rep));
    st.errors.push_back(m.name + ": re-measurement failed: " + e.what());
  }
}

CycleStats Agent::run_once() {
  CycleStats st;
  for (const auto& m : cfg_.models) {
    if (stop_) break;
    try {
      cycle_model(m, st);
    } catch (const std::exception& e) {  // server down, bad manifest: try again next poll
      st.errors.push_back(m.name + ": " + e.what());
      log_line("model " + m.name + ": " + e.what());
    }
  }
  st.delivered = flush_spool();
  st.spooled = spool_.size();
  return st;
}

void Agent::run() {
  log_line("following " + std::to_string(cfg_.models.size()) + " model(s) on " + cfg_.http.server + " as '" +
           cfg_.device_id + "', polling every " + std::to_string(cfg_.poll_interval_s) + " s");
  while (!stop_) {
    run_once();
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(cfg_.poll_interval_s), [this] { return stop_.load(); });
  }
  const size_t n = flush_spool();
  log_line("stopping; flushed " + std::to_string(n) + " report(s), " + std::to_string(spool_.size()) + " still spooled");
}

}  // namespace tsm::client
