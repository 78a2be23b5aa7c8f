// Fuzz target: device reports (server/api/device_report parse_device_report), as POST
// /v1/devices/{id}/reports reads a body. The first input byte picks the form (even: protobuf, with
// Content-Type application/x-protobuf; odd: proto3 JSON, application/json), the rest is the body.
// A report that is accepted must print (device_report_json) as JSON that parses again, as
// GET /v1/reports does with the stored text, and must keep the invariant parse_device_report states.
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "fuzz_util.h"
#include "api/device_report.h"
#include "http/problem.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm::server;
  if (size == 0) return 0;
  const std::string ct = data[0] % 2 == 0 ? "application/x-protobuf" : "application/json; charset=utf-8";
  const std::string device = "pi-1";
  tensorslm::v1::DeviceReport rep;
  try {
    rep = parse_device_report(tsm::fuzz::text(data + 1, size - 1), ct, device, 1700000000);
  } catch (const HttpError& e) {
    if (e.status != http::status::bad_request && e.status != http::status::unprocessable_entity)
      tsm::fuzz::finding("device_report: unexpected status " + std::to_string(int(e.status)));
    return 0;
  }
  if (rep.device().device_id() != device || rep.model().empty() || rep.created_unix() == 0)
    tsm::fuzz::finding("device_report: accepted report breaks the invariant");
  const std::string js = device_report_json(rep);
  try {
    (void)nlohmann::json::parse(js);
  } catch (const nlohmann::json::exception& e) {
    tsm::fuzz::finding(std::string("device_report: stored JSON does not parse back: ") + e.what());
  }
  return 0;
}
