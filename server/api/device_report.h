// A device report body (POST /v1/devices/{id}/reports) parsed and checked: pure, without the store
// or a connection, so that it is tested and fuzzed apart from the handler (reports_api.cpp).
// The body is a serialized tensorslm.v1.DeviceReport (Content-Type application/x-protobuf,
// application/protobuf or application/octet-stream) or its proto3 JSON form (any other type).
// Invariant of a returned report: device.device_id == the URL's device, model is non-empty,
// created_unix is set (now when the body left it 0), and device_report_json() of it is valid JSON.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "report.pb.h"

namespace tsm::server {

/// Throws HttpError 400 when the body is not a DeviceReport in the form `content_type` names, 422
/// (with `field`) when its device id differs from `device` or it names no model.
tensorslm::v1::DeviceReport parse_device_report(std::string_view body, const std::string& content_type,
                                                const std::string& device, uint64_t now_unix);
/// The report as stored and listed: proto3 JSON with the .proto field names.
std::string device_report_json(const tensorslm::v1::DeviceReport& rep);

}  // namespace tsm::server
