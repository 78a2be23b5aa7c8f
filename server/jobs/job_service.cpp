#include "jobs/job_service.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "methods/codec.h"
#include "pipeline/model_artifact.h"
#include "pipeline/planner.h"
#include "formats/hf_model_dir.h"
#include "common/error.h"
#include "common/json_text.h"
#include "common/thread_count.h"
#include "formats/artifact_io.h"
#include "jobs/job_input.h"
#include "jobs/job_runner.h"
#include "jobs/resolve_job.h"
#include "spec/job_spec.h"
#include "store/storage_error.h"

namespace tsm::server {

using nlohmann::json;
namespace v1 = ::tensorslm::v1;
using Clock = std::chrono::steady_clock;

namespace {
int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

/// A plan job whose target is out of reach and that built nothing: it fails with the planner's message.
struct PlanMissed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A plan job's phases as parts of its overall progress.
std::pair<double, double> phase_span(std::string_view phase) {
  if (phase == "calibrate") return {0.0, 0.05};
  if (phase == "candidates") return {0.05, 0.65};
  if (phase == "repair") return {0.65, 0.8};
  if (phase == "build") return {0.8, 1.0};
  return {0.0, 1.0};
}

/// Seconds per phase of a plan job: a phase lasts from its first report to the next phase's (the
/// last one to the end). Loading the dense model and sampling the sequence sets, before the first
/// report, count as calibrate. Reports may come from codec threads: guarded.
class PhaseClock {
 public:
  explicit PhaseClock(Clock::time_point start) : since_(start), phase_("calibrate") {}
  /// True when `phase` starts now.
  bool enter(std::string_view phase) {
    std::lock_guard lk(mu_);
    if (phase == phase_) return false;
    const auto now = Clock::now();
    secs_[phase_] += secs(since_, now);
    phase_ = std::string(phase);
    since_ = now;
    return true;
  }
  json seconds(Clock::time_point end) {
    std::lock_guard lk(mu_);
    auto out = secs_;
    out[phase_] += secs(since_, end);
    json j = json::object();
    for (const auto& [p, s] : out) j[p + "_s"] = s;
    return j;
  }

 private:
  std::mutex mu_;
  Clock::time_point since_;
  std::string phase_;
  std::map<std::string, double> secs_;
};
}  // namespace

JobService::JobService(MetadataStore& store, BlobStore& blobs, std::string models_dir, int workers, int codec_threads,
                       size_t queue_capacity, QueueOptions queue)
    : store_(store), blobs_(blobs), models_dir_(std::move(models_dir)), workers_(workers),
      codec_threads_(codec_threads > 0 ? codec_threads : std::max(1, default_thread_count() / std::max(1, workers))),
      queue_capacity_(queue_capacity), opt_(std::move(queue)) {
  if (opt_.worker_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    opt_.worker_id = std::string(host) + "-" + std::to_string(::getpid());
  }
}

JobService::~JobService() { stop(); }

void JobService::start() {
  if (!store_.shared()) {
    int n = store_.requeue_running();
    if (n > 0) spdlog::warn("{} job(s) were running when the server stopped; queued again", n);
  }
  store_.on_event([this](StoreEvent e, const std::string& id) { on_store_event(e, id); });
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
  housekeeper_ = std::thread([this] { housekeeping_loop(); });
  spdlog::info("job workers: {} as {} (codec threads per job: {}, lease {} s, {} attempts), {} job(s) queued", workers_,
               opt_.worker_id, codec_threads_, opt_.lease_s, opt_.max_attempts, queue_depth());
}

void JobService::stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, l] : live_) l->cancel = true;  // checkpoint: run_one puts them back to 'queued'
  }
  wake_workers();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (housekeeper_.joinable()) housekeeper_.join();
  store_.on_event(nullptr);
}

void JobService::wake_workers() {
  {
    std::lock_guard lk(wake_mu_);
    ++wake_seq_;
  }
  wake_cv_.notify_all();
}

size_t JobService::queue_depth() const {
  try {
    last_depth_ = store_.queued_count();
  } catch (const std::exception&) {
  }
  return static_cast<size_t>(last_depth_.load());
}

bool JobService::submit(JobRecord& j) {
  if (stopping_ || store_.queued_count() >= static_cast<int64_t>(queue_capacity_)) return false;
  j.state = v1::QUEUED;
  store_.insert_job(j);
  wake_workers();
  return true;
}

JobService::CancelResult JobService::cancel(const std::string& id) {
  auto mark_local = [this, &id] {
    std::lock_guard lk(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return false;
    it->second->cancel = true;
    return true;
  };
  if (mark_local()) {
    store_.request_cancel(id);  // GET shows it; a takeover after a crash cancels at once
    return CancelResult::Requested;
  }
  if (store_.cancel_queued(id, "canceled while queued", now_unix())) {
    fire_waiters(id);
    return CancelResult::Canceled;
  }
  // Running on another worker (of this process since the check above, or of another one): the
  // store tells it (its heartbeat sees the flag; a shared store's Cancel event at once).
  if (store_.request_cancel(id)) {
    mark_local();
    return CancelResult::Requested;
  }
  return store_.get_job(id) ? CancelResult::AlreadyFinished : CancelResult::NotFound;
}

double JobService::progress(const std::string& id, double stored) const {
  std::lock_guard lk(mu_);
  auto it = live_.find(id);
  return it != live_.end() ? it->second->progress.load() : stored;
}

std::string JobService::phase(const std::string& id) const {
  std::shared_ptr<Live> live;
  {
    std::lock_guard lk(mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return "";
    live = it->second;
  }
  std::lock_guard lk(live->phase_mu);
  return live->phase;
}

void JobService::when_done(const std::string& id, std::function<void()> cb) {
  {
    std::lock_guard lk(mu_);
    waiters_[id].push_back(std::move(cb));
  }
  // Registered first, checked second: an end between the two still fires it (here or by its event).
  try {
    auto j = store_.get_job(id);
    if (!j || is_terminal(j->state)) fire_waiters(id);
  } catch (const std::exception&) {
    // the store is unreachable: the periodic check fires it once the job has ended
  }
}

void JobService::fire_waiters(const std::string& id) {
  std::vector<std::function<void()>> cbs;
  {
    std::lock_guard lk(mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;
    cbs = std::move(it->second);
    waiters_.erase(it);
  }
  for (auto& cb : cbs) cb();
}

void JobService::check_waiters() {
  std::vector<std::string> ids;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, cbs] : waiters_) ids.push_back(id);
  }
  for (const auto& id : ids) {
    try {
      auto j = store_.get_job(id);
      if (!j || is_terminal(j->state)) fire_waiters(id);
    } catch (const std::exception&) {
      return;  // the store is unreachable: next round
    }
  }
}

void JobService::on_store_event(StoreEvent e, const std::string& id) {
  switch (e) {
    case StoreEvent::Submitted:
      if (workers_ > 0) wake_workers();
      break;
    case StoreEvent::Done:
      fire_waiters(id);
      break;
    case StoreEvent::Cancel: {
      std::lock_guard lk(mu_);
      if (auto it = live_.find(id); it != live_.end()) it->second->cancel = true;
      break;
    }
    case StoreEvent::Resync:
      wake_workers();  // and the heartbeat thread, which checks every waiter against the store
      break;
  }
}

void JobService::housekeeping_loop() {
  const auto tick = std::chrono::duration<double>(std::min(opt_.poll_s, opt_.lease_s / 3));
  uint64_t seen = 0;
  auto next_depth = Clock::now();
  while (!stopping_) {
    {
      std::unique_lock lk(wake_mu_);
      wake_cv_.wait_for(lk, tick, [&] { return stopping_ || wake_seq_ != seen; });
      seen = wake_seq_;
    }
    if (stopping_) break;
    std::vector<std::pair<std::string, std::shared_ptr<Live>>> running;
    {
      std::lock_guard lk(mu_);
      running.assign(live_.begin(), live_.end());
    }
    for (const auto& [id, live] : running) {
      try {
        switch (store_.heartbeat(id, live->worker, live->attempt, opt_.lease_s, live->progress.load())) {
          case LeaseState::Held:
            break;
          case LeaseState::CancelRequested:
            live->cancel = true;
            break;
          case LeaseState::Lost:
            if (!live->lost.exchange(true)) {
              ++counters_.leases_lost;
              spdlog::warn("job {}: lease lost (it expired and another worker took the job over); stopping here", id);
            }
            live->cancel = true;
            break;
        }
      } catch (const std::exception& e) {
        spdlog::warn("job {}: heartbeat failed: {}", id, e.what());
      }
    }
    check_waiters();
    if (Clock::now() >= next_depth) {
      queue_depth();  // refreshes last_queue_depth() for /readyz
      next_depth = Clock::now() + std::chrono::seconds(1);
    }
  }
}

void JobService::worker_loop(int index) {
  const std::string me = opt_.worker_id + "/" + std::to_string(index);
  bool store_down = false;
  while (!stopping_) {
    uint64_t seen;
    {
      std::lock_guard lk(wake_mu_);
      seen = wake_seq_;
    }
    std::optional<JobRecord> j;
    try {
      ClaimOutcome o;
      j = store_.claim_job(me, opt_.lease_s, opt_.max_attempts, o);
      if (store_down) spdlog::info("worker {}: the store is back", me);
      store_down = false;
      counters_.lease_expiries += o.exhausted.size() + (o.takeover ? 1 : 0);
      counters_.attempt_limit_failures += o.exhausted.size();
      for (const auto& id : o.exhausted) {
        spdlog::warn("job {}: failed: its lease expired on the last of {} attempts", id, opt_.max_attempts);
        fire_waiters(id);
      }
      if (j) {
        ++counters_.claims;
        if (o.takeover) {
          ++counters_.takeovers;
          spdlog::warn("job {}: its lease expired; taken over by {} (attempt {})", j->id, me, j->attempts);
        }
      }
    } catch (const std::exception& e) {
      if (!store_down) spdlog::error("worker {}: cannot claim a job: {}", me, e.what());
      store_down = true;
    }
    if (!j) {
      std::unique_lock lk(wake_mu_);
      wake_cv_.wait_for(lk, std::chrono::duration<double>(opt_.poll_s), [&] { return stopping_ || wake_seq_ != seen; });
      continue;
    }
    auto live = std::make_shared<Live>();
    live->worker = me;
    live->attempt = j->attempts;
    if (j->cancel_requested) live->cancel = true;
    {
      std::lock_guard lk(mu_);
      live_[j->id] = live;
      if (stopping_) live->cancel = true;
    }
    const std::string id = j->id;
    ++running_;
    try {
      run_one(std::move(*j), live);
    } catch (const std::exception& e) {
      spdlog::error("job {}: store failure: {}", id, e.what());
    }
    --running_;
    {
      std::lock_guard lk(mu_);
      live_.erase(id);
    }
    fire_waiters(id);
  }
}

template <class F>
auto JobService::patiently(const Live& live, F&& read) {
  const auto give_up = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.lease_s));
  for (;;) {
    try {
      return read();
    } catch (const StoreUnavailable& e) {
      if (Clock::now() > give_up || stopping_ || live.lost) throw;
      spdlog::warn("worker {}: waiting for the store: {}", live.worker, e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

bool JobService::finish(const JobRecord& j, const ArtifactRecord* a, ModelVersion* v) {
  const auto give_up = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.lease_s));
  for (;;) {
    try {
      if (store_.finish_job(j, a, v)) return true;
      ++counters_.leases_lost;
      spdlog::warn("job {}: lease lost before its end was written (another worker has the job); result discarded", j.id);
      return false;
    } catch (const StorageFull&) {
      throw;
    } catch (const std::exception& e) {
      if (Clock::now() > give_up || stopping_) {
        spdlog::error("job {}: cannot write its end: {}; its lease will expire and another worker rerun it", j.id, e.what());
        return false;
      }
      spdlog::warn("job {}: cannot write its end yet: {}; retrying", j.id, e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

void JobService::run_one(JobRecord j, const std::shared_ptr<Live>& live) {
  const std::string id = j.id;  // claimed: running, locked_by and attempts set by the store
  const auto t_start = Clock::now();
  std::optional<ArtifactRecord> artifact;
  std::optional<ModelVersion> version;
  spdlog::info("job {}: running ({} attempt {})", id, j.method, j.attempts);

  json timings = {{"queued_s", static_cast<double>(j.started_unix - j.created_unix)}};
  auto t_load = t_start, t_comp = t_start, t_store = t_start;
  std::unique_ptr<PhaseClock> phases;  // plan jobs
  json result = json::object();
  try {
    const v1::JobSpec spec = stored_job_spec(j.spec_pb);
    auto upload = patiently(*live, [&] { return store_.get_upload(spec.upload()); });
    if (!upload) throw Error("upload " + spec.upload() + " was deleted before the job ran; upload it again");
    const std::string model_dir = models_dir_ + "/" + upload->sha256;
    // Resolved once when the job was posted; only jobs queued before schema 4 are resolved here.
    // A plan job resolves to no tensors (the planner decides them).
    v1::ResolvedJob resolved;
    if (spec.has_plan()) {
    } else if (j.resolved_pb.empty()) {
      resolved = resolve_job(spec, *upload, model_dir);
    } else if (!resolved.ParseFromString(j.resolved_pb)) {
      throw Error("job " + id + ": its stored ResolvedJob does not parse");
    }
    CodecContext ctx;
    ctx.progress = [live](double p) { live->progress = std::clamp(p, 0.0, 1.0); };
    ctx.cancel = &live->cancel;
    ctx.threads = codec_threads_;
    v1::Artifact art;
    BuildTimings build_times;  // the artifact holds no wall time: identical jobs store identical bytes
    std::string plan_failure;  // a plan whose target is out of reach: the job fails, the report stays
    if (spec.has_plan()) {
      // The planner: candidates measured per tensor, the budget allocated, repaired and built.
      auto model = HfModelDir::open(model_dir);
      t_load = Clock::now();
      const PlannerOptions popt = planner_options(spec);
      phases = std::make_unique<PhaseClock>(t_load);
      {
        std::lock_guard lk(live->phase_mu);
        live->phase = "calibrate";
      }
      PhaseClock* clock = phases.get();
      const PlanProgress progress = [live, clock](std::string_view phase, double f) {
        if (clock->enter(phase)) {
          std::lock_guard lk(live->phase_mu);
          live->phase = std::string(phase);
        }
        const auto [lo, hi] = phase_span(phase);
        live->progress = lo + (hi - lo) * std::clamp(f, 0.0, 1.0);
      };
      ctx.progress = nullptr;  // the planner reports through `progress`, its build phase included
      PlanOutcome o = plan_model(model, popt, ctx, upload->sha256, progress);
      result["plan"] = plan_report_json(o.report);
      if (!o.report.target_met) plan_failure = o.report.message;
      if (o.artifact.tensors_size() == 0) {  // nothing was built (max_kl out of reach): no artifact to store
        t_comp = Clock::now();
        throw PlanMissed(plan_failure.empty() ? "the planner built no artifact" : plan_failure);
      }
      art = std::move(o.artifact);
      build_times = std::move(o.timings);
    } else if (spec.whole_model()) {
      // Whole HF model: the resolved tensors compressed, the rest passed through, quality measured.
      auto model = HfModelDir::open(model_dir);
      t_load = Clock::now();
      json job = artifact_job_json(spec);
      if (spec.entries_size() == 0)
        job["tensors"] = whole_model_regex(*upload, std::vector<std::string>(spec.tensors().begin(), spec.tensors().end()));
      art = build_model_artifact(model, plan_from_resolved(resolved, model.config()), ctx, upload->sha256,
                                 model_artifact_options(spec), job, &build_times);
    } else {
      std::vector<TensorInfo> which;
      const auto listing = upload_tensors(*upload);
      for (const auto& r : resolved.tensors())
        for (const auto& t : listing)
          if (t.name == r.name()) which.push_back(t);
      if (which.size() != size_t(resolved.tensors_size())) throw Error("job " + id + ": a resolved tensor is missing from its upload");
      auto tensors = load_tensors(*upload, blobs_.path(upload->sha256), model_dir, which);
      t_load = Clock::now();
      const json job = spec.entries_size() == 0 ? struct_json(spec.params()) : artifact_job_json(spec);
      art = compress_tensors(tensors, upload->sha256, resolved, job, ctx, &build_times);
    }
    t_comp = Clock::now();
    std::string bytes = serialize_artifact(art);
    const std::string content_sha = verify_artifact_for_store(bytes);
    std::string sha = blobs_.put(bytes);
    // The row keeps the first creation time of these bytes (an identical later job finds it there);
    // it is written with the job's end, in one transaction.
    const auto stored = patiently(*live, [&] { return store_.get_artifact(sha); });
    artifact = ArtifactRecord{sha, bytes.size(), id, art.method(), now_unix()};
    t_store = Clock::now();
    json plan_json = result.contains("plan") ? std::move(result["plan"]) : json();
    result = artifact_result_json(art, &build_times);
    if (!plan_json.is_null()) result["plan"] = std::move(plan_json);
    result["artifact"] = {{"id", sha}, {"sha256", sha}, {"size_bytes", bytes.size()}, {"url", "/v1/artifacts/" + sha},
                          {"content_sha256", content_sha}, {"created_unix", stored ? stored->created_unix : now_unix()}};
    std::string gate = quality_gate_failure(art, spec.quality_gate());
    if (!plan_failure.empty()) {
      j.state = v1::FAILED;  // built, but its held-out KL misses max_kl: stored, not published
      j.error = plan_failure + "; its artifact is stored but not published";
    } else if (!gate.empty()) {
      j.state = v1::FAILED;
      j.error = gate;
    } else if (const std::string clash = patiently(*live, [&] { return published_tag_clash(store_, spec); });
               !clash.empty()) {
      j.state = v1::FAILED;  // another job published the tag after this one was accepted
      j.error = "publish: " + clash + " after this job was accepted; its artifact is stored but not published";
    } else {
      j.state = v1::SUCCEEDED;
      if (spec.has_publish() && !spec.publish().model().empty()) {
        ModelVersion v{spec.publish().model(), spec.publish().tag(), sha, id, bytes.size(), 0, now_unix()};
        version = v;
        result["published"] = {{"model", v.model}, {"tag", v.tag}, {"url", "/v1/models/" + v.model + "/latest"}};
      }
    }
    j.progress = 1;
    j.result_json = dump_json(result);
  } catch (const Canceled&) {
    if (live->lost) return;  // another worker runs it now
    if (stopping_) {
      // checkpoint: picked up again after restart (or by another worker)
      if (store_.release_job(id, j.locked_by, j.attempts)) spdlog::info("job {}: interrupted by shutdown, queued again", id);
      return;
    }
    j.state = v1::CANCELED;
    j.error = "canceled by request";
  } catch (const StoreUnavailable& e) {
    // Not the job's fault: nothing is written; this worker's lease runs out and a worker reruns it
    // (attempts counted) once the database is back.
    spdlog::error("job {}: the store stayed unreachable ({}); left to its lease", id, e.what());
    return;
  } catch (const PlanMissed& e) {
    j.state = v1::FAILED;  // the result holds the plan report: the closest plan and the frontier
    j.error = e.what();
    j.result_json = dump_json(result);
  } catch (const std::exception& e) {
    j.state = v1::FAILED;
    j.error = e.what();
  }
  const auto t_end = Clock::now();
  if (phases) {
    timings["phases"] = phases->seconds(t_comp > t_load ? t_comp : t_end);
    std::lock_guard lk(live->phase_mu);
    live->phase.clear();
  }
  timings["load_s"] = secs(t_start, t_load);
  if (t_comp > t_load) timings["compress_s"] = secs(t_load, t_comp);
  if (t_store > t_comp) timings["store_s"] = secs(t_comp, t_store);
  timings["run_s"] = secs(t_start, t_end);
  j.timings_json = dump_json(timings);
  j.finished_unix = now_unix();
  if (live->lost) return;
  if (j.state != v1::SUCCEEDED) version.reset();
  if (!finish(j, artifact ? &*artifact : nullptr, version ? &*version : nullptr)) return;
  spdlog::info("job {}: {}{}{} ({:.2f} s)", id, state_name(j.state), j.error.empty() ? "" : ": ", j.error, secs(t_start, t_end));
}

}  // namespace tsm::server
