// POST /v1/jobs (validate against the method table, or a plan against the model, enqueue, optional
// ?wait=), GET /v1/jobs, GET /v1/jobs/{id} (?wait=; a running plan job shows its phase),
// DELETE /v1/jobs/{id} (cooperative cancel).
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "api/api_util.h"
#include "api/routes.h"
#include "app.h"
#include "common/error.h"
#include "jobs/resolve_job.h"
#include "spec/job_spec.h"

namespace tsm::server {

namespace {

/// The job's JSON text. result and timings are stored as JSON text written by the server: they are
/// spliced in as they are, not parsed and dumped again on every poll.
std::string job_text(const JobRecord& j, double progress, const std::string& phase, bool cancel_requested = false) {
  json head = {{"id", j.id},
               {"state", state_name(j.state)},
               {"progress", progress},
               {"upload", j.upload},
               {"method", j.method},
               {"priority", j.priority},
               {"spec", job_spec_json(stored_job_spec(j.spec_pb))},
               {"attempts", j.attempts},
               {"created_unix", j.created_unix},
               {"url", "/v1/jobs/" + j.id}};
  if (!phase.empty()) head["phase"] = phase;  // a running plan job: calibrate, candidates, repair, build
  if (j.started_unix) head["started_unix"] = j.started_unix;
  if (j.finished_unix) head["finished_unix"] = j.finished_unix;
  if (!j.error.empty()) head["error"] = j.error;
  if (cancel_requested) head["cancel_requested"] = true;
  std::string out = dump_json(head);
  out.pop_back();  // the closing brace
  if (!j.timings_json.empty()) out += ",\"timings\":" + j.timings_json;
  if (!j.result_json.empty()) out += ",\"result\":" + j.result_json;
  out += '}';
  return out;
}

JobRecord must_get(App& app, const std::string& id) {
  auto j = is_id(id, "j_") ? app.store->get_job(id) : std::nullopt;
  if (!j) throw HttpError(http::status::not_found, "no job '" + id + "'");
  return *j;
}

StringResponse job_response(App& app, http::status status, const JobRecord& j, bool cancel_requested = false) {
  return text_response(status, job_text(j, app.jobs->progress(j.id, j.progress), app.jobs->phase(j.id), cancel_requested),
                       "application/json");
}

/// Answers with the job once it ends or after `wait_s` (200 when it ended meanwhile, else `pending_status`).
void respond_when_done(App& app, Request& req, const std::string& id, double wait_s, http::status pending_status,
                       Respond respond, const std::string& location) {
  // Without a wait the answer is pending_status whatever the state (a fast job may have ended
  // already: POST /v1/jobs is 202 all the same); after a wait, 200 once the job ended.
  auto make = [&app, id, pending_status, location, waited = wait_s > 0] {
    const JobRecord j = must_get(app, id);
    auto r = job_response(app, waited && is_terminal(j.state) ? http::status::ok : pending_status, j);
    if (!location.empty()) r.set(http::field::location, location);
    return r;
  };
  if (wait_s <= 0) return respond(make());
  // The timer, the job's completion and a client disconnect all run on one strand. Whichever comes
  // first takes the reply; a disconnect drops it (and the connection it holds) at once.
  auto strand = boost::asio::make_strand(app.ioc);
  auto timer = std::make_shared<boost::asio::steady_timer>(strand, std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000)));
  auto pending = std::make_shared<Respond>(std::move(respond));
  // The reply reads the store: on the request pool, not on the strand's I/O thread.
  auto finish = [timer, pending, make, pool = &app.requests] {
    if (!*pending) return;
    Respond r = std::exchange(*pending, nullptr);
    timer->cancel();
    boost::asio::post(*pool, [r = std::move(r), make] {
      try {
        r(make());
      } catch (const std::exception& e) {
        r(problem(http::status::internal_server_error, e.what()));
      }
    });
  };
  timer->async_wait([finish](const boost::system::error_code&) { finish(); });
  req.on_disconnect = [strand, timer, pending] {
    boost::asio::post(strand, [timer, pending] {
      *pending = nullptr;
      timer->cancel();
    });
  };
  app.jobs->when_done(id, [strand, finish] { boost::asio::post(strand, finish); });
}

}  // namespace

void post_job(App& app, RequestPtr req, Respond respond) {
  double wait_s = query_number(*req, "wait", 0, 0, app.config.max_wait_s);
  const v1::JobSpec spec = parse_job_spec(parse_json_body(*req));
  auto upload = is_id(spec.upload(), "u_") ? app.store->get_upload(spec.upload()) : std::nullopt;
  if (!upload)
    throw HttpError(http::status::unprocessable_entity, "upload '" + spec.upload() + "' does not exist (POST /v1/uploads first)",
                    {{"field", "upload"}});
  // Every tensor with its method and resolved params, decided now (this handler runs on the
  // request pool) and stored: a bad parameter is a 422 here, not a failed job later.
  const v1::ResolvedJob resolved = resolve_job(spec, *upload, app.models_dir + "/" + upload->sha256);
  // A job that cannot fit in memory is refused now, not killed by the kernel with the server.
  if (const uint64_t limit = app.config.effective_job_memory_max_bytes(); limit) {
    const MemoryEstimate est = job_memory_estimate(spec, *upload, resolved, app.models_dir + "/" + upload->sha256);
    if (est.bytes > limit)
      throw HttpError(http::status::unprocessable_entity,
                      "this job needs about " + est.text() + " of memory, more than the server allows one job (" +
                          std::to_string(limit >> 20) + " MiB, job_memory_max_bytes); use a smaller model, fewer evaluation "
                          "or calibration tokens, or raise the limit",
                      {{"field", "memory"}, {"estimated_bytes", est.bytes}, {"limit_bytes", limit}});
  }
  if (const std::string clash = published_tag_clash(*app.store, spec); !clash.empty())
    throw HttpError(http::status::conflict, clash + "; send publish.replace: true to publish it again",
                    {{"field", "publish.tag"}});
  JobRecord j;
  j.id = new_id("j_");
  j.upload = upload->id;
  j.method = spec.has_plan() ? "plan" : spec.method();  // GET /v1/jobs?method=plan lists the planner's jobs
  spec.SerializeToString(&j.spec_pb);
  resolved.SerializeToString(&j.resolved_pb);
  j.priority = spec.priority();
  j.created_unix = static_cast<int64_t>(std::time(nullptr));
  if (!app.jobs->submit(j)) {
    auto r = problem(http::status::service_unavailable,
                     "the job queue is full (" + std::to_string(app.jobs->queue_capacity()) + " queued); retry later");
    r.set(http::field::retry_after, "5");
    return respond(std::move(r));
  }
  respond_when_done(app, *req, j.id, wait_s, http::status::accepted, respond, "/v1/jobs/" + j.id);
}

void list_jobs(App& app, RequestPtr req, Respond respond) {
  JobFilter f;
  if (const std::string st = req->q("state"); !st.empty()) {
    f.state = parse_state(st);
    if (!f.state) throw HttpError(http::status::bad_request, "state: '" + st + "' is not a job state", {{"field", "state"}});
  }
  f.method = req->q("method");
  f.upload = req->q("upload");
  f.after_seq = static_cast<int64_t>(query_number(*req, "cursor", 0, 0, 9e18));
  f.limit = static_cast<int>(query_number(*req, "limit", 50, 1, 500));
  auto rows = app.store->list_jobs(f);
  std::string out = "{\"jobs\":[";
  for (size_t i = 0; i < rows.size(); ++i)
    out += (i ? "," : "") + job_text(rows[i], app.jobs->progress(rows[i].id, rows[i].progress), app.jobs->phase(rows[i].id));
  out += ']';
  if (static_cast<int>(rows.size()) == f.limit) out += ",\"next_cursor\":\"" + std::to_string(rows.back().seq) + '"';
  out += '}';
  respond(text_response(http::status::ok, std::move(out), "application/json"));
}

void get_job(App& app, RequestPtr req, Respond respond) {
  double wait_s = query_number(*req, "wait", 0, 0, app.config.max_wait_s);
  const JobRecord j = must_get(app, req->params[0]);
  if (wait_s <= 0 || is_terminal(j.state)) return respond(job_response(app, http::status::ok, j));
  respond_when_done(app, *req, j.id, wait_s, http::status::ok, respond, "");
}

void cancel_job(App& app, RequestPtr req, Respond respond) {
  const std::string& id = req->params[0];
  must_get(app, id);
  switch (app.jobs->cancel(id)) {
    case JobService::CancelResult::Canceled:
      return respond(job_response(app, http::status::ok, must_get(app, id)));
    case JobService::CancelResult::Requested:
      return respond(job_response(app, http::status::accepted, must_get(app, id), true));
    case JobService::CancelResult::AlreadyFinished: {
      auto j = must_get(app, id);
      throw HttpError(http::status::conflict, "job " + id + " already ended (" + state_name(j.state) + ")",
                      {{"state", state_name(j.state)}});
    }
    default:
      throw HttpError(http::status::not_found, "no job '" + id + "'");
  }
}

}  // namespace tsm::server
