// The v1 API and the operations endpoints as one route table (routes.cpp): verb, path pattern,
// the scope a token needs, how the body is read, where the handler runs, and the handler. The
// handlers live in api/<resource>_api.cpp; each parses and validates its request, then answers
// or hands the work to the job service / blocking pool. The table is also the source of
// /v1/openapi.json's paths.
#pragma once
#include "app.h"

namespace tsm::server {

// uploads_api.cpp
void post_upload(App& app, RequestPtr req, Respond respond);
void get_upload(App& app, RequestPtr req, Respond respond);
void delete_upload(App& app, RequestPtr req, Respond respond);
// jobs_api.cpp
void post_job(App& app, RequestPtr req, Respond respond);
void list_jobs(App& app, RequestPtr req, Respond respond);
void get_job(App& app, RequestPtr req, Respond respond);
void cancel_job(App& app, RequestPtr req, Respond respond);
// artifacts_api.cpp
void get_artifact(App& app, RequestPtr req, Respond respond);
// models_api.cpp
void list_models(App& app, RequestPtr req, Respond respond);
void get_model(App& app, RequestPtr req, Respond respond);
void get_model_latest(App& app, RequestPtr req, Respond respond);
// reports_api.cpp
void post_device_report(App& app, RequestPtr req, Respond respond);
void list_reports(App& app, RequestPtr req, Respond respond);
void get_reports_summary(App& app, RequestPtr req, Respond respond);
// ops_api.cpp
void get_healthz(App& app, RequestPtr req, Respond respond);
void get_readyz(App& app, RequestPtr req, Respond respond);
void get_metrics(App& app, RequestPtr req, Respond respond);
void get_openapi(App& app, RequestPtr req, Respond respond);

}  // namespace tsm::server
