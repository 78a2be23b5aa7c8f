// POST /v1/devices/{id}/reports (protobuf DeviceReport or its proto3 JSON form; a device token may
// post only for the device ids its config lists), GET /v1/reports (filters: model, tag, device,
// since, until, limit), GET /v1/reports/summary.
#include "api/api_util.h"
#include "api/device_report.h"
#include "api/report_summary.h"
#include "api/routes.h"
#include "app.h"
#include "spec/job_spec.h"
#include "report.pb.h"

namespace tsm::server {

namespace {

ReportFilter filter_from(const Request& r) {
  ReportFilter f;
  f.model = r.q("model");
  f.tag = r.q("tag");
  f.device = r.q("device");
  f.since_unix = static_cast<int64_t>(query_number(r, "since", 0, 0, 1e11));
  f.until_unix = static_cast<int64_t>(query_number(r, "until", 0, 0, 1e11));
  f.limit = static_cast<int>(query_number(r, "limit", 100, 1, 10000));
  return f;
}

}  // namespace

void post_device_report(App& app, RequestPtr req, Respond respond) {
  const std::string device = req->params[0];
  if (!is_safe_name(device))
    throw HttpError(http::status::bad_request, "device id '" + device + "' must be 1-128 characters of [A-Za-z0-9._-]");
  // A device token speaks only for the devices its config entry lists (TokenConfig::devices).
  if (!req->principal.may_report_for(device)) {
    std::string listed;
    for (const auto& d : req->principal.devices) listed += (listed.empty() ? "" : ", ") + d;
    throw HttpError(http::status::forbidden,
                    "token '" + req->principal.name + "' may not post reports for device '" + device + "' (its devices: " +
                        (listed.empty() ? "none" : listed) + "); add the id to the token's \"devices\" in the server config",
                    {{"device", device}});
  }
  const tensorslm::v1::DeviceReport rep = parse_device_report(req->body, req->header(http::field::content_type), device,
                                                              static_cast<uint64_t>(std::time(nullptr)));
  const std::string js = device_report_json(rep);
  ReportRecord r{0, device, rep.model(), rep.tag(), rep.artifact_sha256(), static_cast<int64_t>(rep.created_unix()), js};
  app.store->insert_report(r);
  respond(json_response(http::status::created, {{"id", r.id}, {"device", device}, {"model", r.model}, {"tag", r.tag}}));
}

void list_reports(App& app, RequestPtr req, Respond respond) {
  json out = json::array();
  for (const auto& r : app.store->list_reports(filter_from(*req)))
    out.push_back({{"id", r.id}, {"device", r.device}, {"model", r.model}, {"tag", r.tag},
                   {"artifact_sha256", r.artifact_sha256}, {"created_unix", r.created_unix},
                   {"report", json::parse(r.report_json)}});
  respond(json_response(http::status::ok, {{"reports", out}}));
}

void get_reports_summary(App& app, RequestPtr req, Respond respond) {
  ReportFilter f = filter_from(*req);
  f.limit = static_cast<int>(query_number(*req, "limit", 100000, 1, 1e6));
  respond(json_response(http::status::ok, {{"groups", summarize_reports(app.store->list_reports(f))}}));
}

}  // namespace tsm::server
