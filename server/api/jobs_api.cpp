// POST /v1/jobs (validate against the method table, enqueue, optional ?wait=), GET /v1/jobs,
// GET /v1/jobs/{id} (?wait=), DELETE /v1/jobs/{id} (cooperative cancel).
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <regex>

#include "api/api_util.h"
#include "app.h"
#include "codec/method_table.h"
#include "common/error.h"
#include "jobs/job_input.h"
#include "jobs/job_spec.h"

namespace tsm::server {

namespace {

json job_json(const JobRecord& j, double progress) {
  json out = {{"id", j.id},
              {"state", j.state},
              {"progress", progress},
              {"upload", j.upload},
              {"method", j.method},
              {"priority", j.priority},
              {"spec", json::parse(j.spec_json)},
              {"attempts", j.attempts},
              {"created_unix", j.created_unix},
              {"url", "/v1/jobs/" + j.id}};
  if (j.started_unix) out["started_unix"] = j.started_unix;
  if (j.finished_unix) out["finished_unix"] = j.finished_unix;
  if (!j.error.empty()) out["error"] = j.error;
  if (!j.timings_json.empty()) out["timings"] = json::parse(j.timings_json);
  if (!j.result_json.empty()) out["result"] = json::parse(j.result_json);
  return out;
}

bool terminal(const std::string& s) { return s == "succeeded" || s == "failed" || s == "canceled"; }

JobRecord must_get(App& app, const std::string& id) {
  auto j = is_id(id, "j_") ? app.store->get_job(id) : std::nullopt;
  if (!j) throw HttpError(http::status::not_found, "no job '" + id + "'");
  return *j;
}

json current_job_json(App& app, const std::string& id) {
  auto j = must_get(app, id);
  return job_json(j, app.jobs->progress(id, j.progress));
}

/// Answers with the job once it ends or after `wait_s` (200 when finished, else `pending_status`).
void respond_when_done(App& app, const std::string& id, double wait_s, http::status pending_status, Respond respond,
                       const std::string& location) {
  auto make = [&app, id, pending_status, location] {
    json j = current_job_json(app, id);
    auto r = json_response(terminal(j["state"]) ? http::status::ok : pending_status, j);
    if (!location.empty()) r.set(http::field::location, location);
    return r;
  };
  if (wait_s <= 0) return respond(make());
  // Timer and completion share one strand: finish() never races the timer's handler.
  auto strand = boost::asio::make_strand(app.ioc);
  auto timer = std::make_shared<boost::asio::steady_timer>(strand, std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000)));
  auto fired = std::make_shared<std::atomic<bool>>(false);
  auto finish = [timer, fired, respond, make] {
    if (fired->exchange(true)) return;
    timer->cancel();
    try {
      respond(make());
    } catch (const std::exception& e) {
      respond(problem(http::status::internal_server_error, e.what()));
    }
  };
  timer->async_wait([finish](const boost::system::error_code&) { finish(); });
  app.jobs->when_done(id, [strand, finish] { boost::asio::post(strand, finish); });
}

}  // namespace

void add_job_routes(App& app) {
  app.router.add(http::verb::post, "/v1/jobs", Perm::Jobs, [&app](RequestPtr req, Respond respond) {
    double wait_s = query_number(*req, "wait", 0, 0, app.config.max_wait_s);
    JobSpec spec = parse_job_spec(parse_json_body(*req));
    auto upload = is_id(spec.upload, "u_") ? app.store->get_upload(spec.upload) : std::nullopt;
    if (!upload)
      throw HttpError(http::status::unprocessable_entity, "upload '" + spec.upload + "' does not exist (POST /v1/uploads first)",
                      {{"field", "upload"}});
    if (spec.whole_model && upload->format != "tar")
      throw HttpError(http::status::unprocessable_entity,
                      "whole_model needs an HF model directory upload (a tar); upload " + upload->id + " is " + upload->format,
                      {{"field", "whole_model"}});
    if (spec.max_kl && !spec.whole_model)
      throw HttpError(http::status::unprocessable_entity,
                      "quality_gate.max_kl needs a whole-model job (KL is measured by running the model)",
                      {{"field", "quality_gate.max_kl"}});
    if (spec.whole_model) {
      try {
        std::regex(whole_model_regex(*upload, spec));
      } catch (const std::regex_error& e) {
        throw HttpError(http::status::unprocessable_entity, std::string("tensors: not a valid regex: ") + e.what(),
                        {{"field", "tensors"}});
      }
    }
    // Whole-model jobs match by regex search inside the builder; plain jobs by name or full match here.
    auto which = spec.whole_model ? std::vector<TensorInfo>{} : select_tensors(*upload, spec.tensors);
    const Codec& codec = find_codec(spec.method);
    for (const auto& t : which) {
      if (t.dtype != "f32" && t.dtype != "f16" && t.dtype != "bf16" && t.dtype != "f64")
        throw HttpError(http::status::unprocessable_entity, "tensor '" + t.name + "' has dtype " + t.dtype + "; only floating tensors are compressed",
                        {{"field", "tensors"}});
      try {
        (void)codec.resolve(spec.params, t.rows(), t.cols());
      } catch (const ParamError& e) {
        throw HttpError(http::status::unprocessable_entity,
                        std::string(e.what()) + " (tensor '" + t.name + "', " + std::to_string(t.rows()) + " x " +
                            std::to_string(t.cols()) + ")",
                        {{"field", "params." + e.field()}});
      }
    }
    JobRecord j;
    j.id = new_id("j_");
    j.upload = upload->id;
    j.method = spec.method;
    j.spec_json = spec.to_json().dump();
    j.priority = spec.priority;
    j.created_unix = static_cast<int64_t>(std::time(nullptr));
    if (!app.jobs->submit(j)) {
      auto r = problem(http::status::service_unavailable,
                       "the job queue is full (" + std::to_string(app.jobs->queue_capacity()) + " queued); retry later");
      r.set(http::field::retry_after, "5");
      return respond(std::move(r));
    }
    respond_when_done(app, j.id, wait_s, http::status::accepted, respond, "/v1/jobs/" + j.id);
  });

  app.router.add(http::verb::get, "/v1/jobs", Perm::Read, [&app](RequestPtr req, Respond respond) {
    JobFilter f;
    f.state = req->q("state");
    if (!f.state.empty() && f.state != "queued" && f.state != "running" && !terminal(f.state))
      throw HttpError(http::status::bad_request, "state: '" + f.state + "' is not a job state", {{"field", "state"}});
    f.method = req->q("method");
    f.upload = req->q("upload");
    f.after_seq = static_cast<int64_t>(query_number(*req, "cursor", 0, 0, 9e18));
    f.limit = static_cast<int>(query_number(*req, "limit", 50, 1, 500));
    auto rows = app.store->list_jobs(f);
    json jobs = json::array();
    for (const auto& j : rows) jobs.push_back(job_json(j, app.jobs->progress(j.id, j.progress)));
    json out = {{"jobs", jobs}};
    if (static_cast<int>(rows.size()) == f.limit) out["next_cursor"] = std::to_string(rows.back().seq);
    respond(json_response(http::status::ok, out));
  });

  app.router.add(http::verb::get, "/v1/jobs/{id}", Perm::Read, [&app](RequestPtr req, Respond respond) {
    double wait_s = query_number(*req, "wait", 0, 0, app.config.max_wait_s);
    must_get(app, req->params[0]);
    respond_when_done(app, req->params[0], wait_s, http::status::ok, respond, "");
  });

  app.router.add(http::verb::delete_, "/v1/jobs/{id}", Perm::Jobs, [&app](RequestPtr req, Respond respond) {
    const std::string& id = req->params[0];
    must_get(app, id);
    switch (app.jobs->cancel(id)) {
      case JobService::CancelResult::Canceled:
        return respond(json_response(http::status::ok, current_job_json(app, id)));
      case JobService::CancelResult::Requested: {
        json j = current_job_json(app, id);
        j["cancel_requested"] = true;
        return respond(json_response(http::status::accepted, j));
      }
      case JobService::CancelResult::AlreadyFinished: {
        auto j = must_get(app, id);
        throw HttpError(http::status::conflict, "job " + id + " already ended (" + j.state + ")", {{"state", j.state}});
      }
      default:
        throw HttpError(http::status::not_found, "no job '" + id + "'");
    }
  });
}

}  // namespace tsm::server
