#include "api/device_report.h"

#include <google/protobuf/util/json_util.h>

#include <climits>

#include "http/problem.h"

namespace tsm::server {

tensorslm::v1::DeviceReport parse_device_report(std::string_view body, const std::string& content_type,
                                                const std::string& device, uint64_t now_unix) {
  tensorslm::v1::DeviceReport rep;
  const std::string ct = content_type.substr(0, content_type.find(';'));
  if (ct == "application/x-protobuf" || ct == "application/protobuf" || ct == "application/octet-stream") {
    if (body.size() > INT32_MAX || !rep.ParseFromArray(body.data(), static_cast<int>(body.size())))
      throw HttpError(http::status::bad_request, "body is not a serialized tensorslm.v1.DeviceReport");
  } else {
    google::protobuf::util::JsonParseOptions o;
    auto st = google::protobuf::util::JsonStringToMessage(google::protobuf::StringPiece(body.data(), body.size()), &rep, o);
    if (!st.ok())
      throw HttpError(http::status::bad_request, "body is not a DeviceReport in JSON form: " + std::string(st.message()));
  }
  if (rep.device().device_id().empty()) rep.mutable_device()->set_device_id(device);
  if (rep.device().device_id() != device)
    throw HttpError(http::status::unprocessable_entity,
                    "device.device_id '" + rep.device().device_id() + "' differs from the URL's '" + device + "'",
                    {{"field", "device.device_id"}});
  if (rep.model().empty()) throw HttpError(http::status::unprocessable_entity, "model: required", {{"field", "model"}});
  if (rep.created_unix() == 0) rep.set_created_unix(now_unix);
  return rep;
}

std::string device_report_json(const tensorslm::v1::DeviceReport& rep) {
  std::string js;
  google::protobuf::util::JsonPrintOptions po;
  po.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(rep, &js, po);
  return js;
}

}  // namespace tsm::server
