// Fuzz target: job-spec JSON (server/spec/job_spec parse_job_spec), as POST /v1/jobs reads a body:
// nlohmann::json::parse (a parse error is the 400 of parse_json_body), parse_job_spec (ParamError
// 422 naming the field), then what the server does with a spec it accepted: print it for clients
// (job_spec_json, dumped) and store and reload it (SerializeToString, stored_job_spec).
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_text.h"
#include "fuzz_util.h"
#include "spec/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  using namespace tsm::server;
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(fuzz::text(data, size));
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  v1::JobSpec spec;
  try {
    spec = parse_job_spec(body);
  } catch (const Error&) {
    return 0;
  }
  const nlohmann::json printed = job_spec_json(spec);
  (void)dump_json(printed);
  (void)printed.dump();  // strict: an accepted spec holds valid UTF-8 only
  std::string pb;
  if (!spec.SerializeToString(&pb)) fuzz::finding("job_spec: an accepted spec does not serialize");
  const v1::JobSpec back = stored_job_spec(pb);
  if (back.SerializeAsString() != pb) fuzz::finding("job_spec: stored spec does not reload to the same message");
  return 0;
}
