#include "pipeline/metrics_json.h"

#include "formats/array_pack.h"

#include <cstdio>

namespace tsm {

namespace {
json parse_params(const std::string& s) {
  if (s.empty()) return json::object();
  json j = json::parse(s, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json(s) : j;
}
std::string dtype_text(v1::DType t) {
  if (t == v1::DTYPE_UNSPECIFIED) return "";
  try {
    return std::string(dtype_name(from_proto(t)));
  } catch (const Error&) {
    return "unknown(" + std::to_string(static_cast<int>(t)) + ")";
  }
}
}  // namespace

json metrics_to_json(const v1::Metrics& m) {
  return {{"stored_bytes", m.stored_bytes()}, {"dense_f32_bytes", m.dense_f32_bytes()}, {"source_bytes", m.source_bytes()},
          {"ratio_f32", m.ratio_f32()},       {"ratio_source", m.ratio_source()},       {"rel_error", m.rel_error()},
          {"cos_mean", m.cos_mean()},         {"cos_min", m.cos_min()},                 {"cos_p01", m.cos_p01()},
          {"max_abs_error", m.max_abs_error()}, {"seconds", m.seconds()}};
}

json baseline_to_json(const v1::Baseline& b) {
  return {{"method", b.method()}, {"params", parse_params(b.params_json())}, {"metrics", metrics_to_json(b.metrics())}};
}

json tensor_report_json(const v1::CompressedTensor& t) {
  json shape = json::array();
  for (uint64_t d : t.shape()) shape.push_back(d);
  json arrays = json::array();
  for (const auto& a : t.arrays()) {
    json s = json::array();
    for (uint64_t d : a.shape()) s.push_back(d);
    arrays.push_back({{"name", a.name()}, {"dtype", dtype_text(a.dtype())}, {"shape", s}, {"bytes", a.data().size()}});
  }
  json baselines = json::array();
  for (const auto& b : t.baselines()) baselines.push_back(baseline_to_json(b));
  return {{"name", t.name()},
          {"method", t.method()},
          {"shape", shape},
          {"source_dtype", dtype_text(t.source_dtype())},
          {"params", parse_params(t.params_json())},
          {"arrays", arrays},
          {"metrics", metrics_to_json(t.metrics())},
          {"baselines", baselines}};
}

json artifact_report_json(const v1::Artifact& a) {
  json tensors = json::array();
  for (const auto& t : a.tensors()) tensors.push_back(tensor_report_json(t));
  json names = json::array();
  uint64_t pbytes = 0;
  for (const auto& p : a.passthrough()) {
    names.push_back(p.name());
    pbytes += p.data().size();
  }
  json j = {{"format_version", a.format_version()},
            {"generator", a.generator()},
            {"source_sha256", a.source_sha256()},
            {"method", a.method()},
            {"params", parse_params(a.params_json())},
            {"tensors", tensors},
            {"passthrough", {{"count", a.passthrough_size()}, {"bytes", pbytes}, {"names", names}}},
            {"has_config", !a.config_json().empty()},
            {"has_tokenizer", !a.tokenizer_json().empty()},
            {"total", metrics_to_json(a.total())}};
  if (a.created_unix() != 0) j["created_unix"] = a.created_unix();  // artifacts written before deterministic ones
  j["config_bytes"] = a.config_json().size();        // shown apart from the tensors' ratio
  j["tokenizer_bytes"] = a.tokenizer_json().size();
  if (a.has_quality()) j["quality"] = quality_to_json(a.quality());
  return j;
}

json quality_to_json(const v1::ModelQuality& q) {
  json alts = json::array();
  for (const auto& a : q.alternatives())
    alts.push_back({{"method", a.method()}, {"stored_bytes", a.stored_bytes()}, {"ratio_f32", a.ratio_f32()}, {"kl_mean", a.kl_mean()},
                    {"top1_agreement", a.top1_agreement()}, {"ppl", a.ppl()}});
  json j = {{"ppl_dense", q.ppl_dense()},           {"ppl_compressed", q.ppl_compressed()},
            {"ppl_delta", q.ppl_compressed() - q.ppl_dense()}, {"kl_mean", q.kl_mean()},
            {"top1_agreement", q.top1_agreement()}, {"nll_delta_mean", q.nll_delta_mean()},
            {"tokens", q.tokens()},                 {"sequences", q.sequences()},
            {"source", q.source()},                 {"alternatives", alts}};
  if (!q.verdict().empty()) j["verdict"] = q.verdict();
  if (!q.warning().empty()) j["warning"] = q.warning();
  return j;
}

std::string quality_text(const v1::ModelQuality& q) {
  char buf[512];
  std::string out;
  std::snprintf(buf, sizeof buf,
                "quality: KL %.5f nats/token, top-1 agreement %.4f, ppl %.4f -> %.4f (%+.4f), over %llu predicted tokens in %llu sequences\n"
                "  (%s)\n",
                q.kl_mean(), q.top1_agreement(), q.ppl_dense(), q.ppl_compressed(), q.ppl_compressed() - q.ppl_dense(),
                (unsigned long long)q.tokens(), (unsigned long long)q.sequences(), q.source().c_str());
  out += buf;
  if (q.alternatives_size() > 0) {
    out += "  the same tensors in each reference representation, same sequences:\n";
    std::snprintf(buf, sizeof buf, "    %-10s %12s %8s %10s %7s %9s\n", "method", "bytes", "ratio", "KL", "top-1", "ppl");
    out += buf;
    for (const auto& a : q.alternatives()) {
      std::snprintf(buf, sizeof buf, "    %-10s %12llu %7.2fx %10.5f %7.4f %9.4f\n", a.method().c_str(), (unsigned long long)a.stored_bytes(),
                    a.ratio_f32(), a.kl_mean(), a.top1_agreement(), a.ppl());
      out += buf;
    }
  }
  if (!q.warning().empty()) out += q.warning() + "\n";
  if (!q.verdict().empty()) out += q.verdict() + "\n";
  return out;
}

}  // namespace tsm
