#include "api/report_summary.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace tsm::server {

using nlohmann::json;

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

json summarize_reports(const std::vector<ReportRecord>& reports) {
  struct Group {
    std::vector<double> latency_ms, ttft_ms, tokens_per_s, joules;
    std::string energy_source;
    int64_t count = 0, errors = 0, first = 0, last = 0;
  };
  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  for (const auto& r : reports) {
    auto& g = groups[{r.model, r.tag, r.device}];
    g.count++;
    g.first = g.first ? std::min(g.first, r.created_unix) : r.created_unix;
    g.last = std::max(g.last, r.created_unix);
    json j = json::parse(r.report_json);
    if (!j.value("error", std::string()).empty()) g.errors++;
    if (!j.contains("runs") || j["runs"].empty()) continue;
    const json* run = &j["runs"][0];
    for (const auto& x : j["runs"])
      if (x.value("variant", std::string()) == "compressed") { run = &x; break; }
    if (run->contains("queries") && !(*run)["queries"].empty()) {
      for (const auto& q : (*run)["queries"]) {
        g.latency_ms.push_back(q.value("total_ms", 0.0));
        if (q.contains("ttft_ms")) g.ttft_ms.push_back(q.value("ttft_ms", 0.0));
      }
    } else if (run->contains("p50_ms")) {
      g.latency_ms.push_back(run->value("p50_ms", 0.0));
      if (run->contains("ttft_p50_ms")) g.ttft_ms.push_back(run->value("ttft_p50_ms", 0.0));
    }
    if (run->contains("tokens_per_s")) g.tokens_per_s.push_back(run->value("tokens_per_s", 0.0));
    if (run->contains("energy")) {
      const auto& e = (*run)["energy"];
      if (e.contains("joules_per_query")) g.joules.push_back(e.value("joules_per_query", 0.0));
      if (g.energy_source.empty()) g.energy_source = e.value("source", std::string());
    }
  }
  auto mean = [](const std::vector<double>& v) -> json {
    if (v.empty()) return nullptr;
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
  };
  json out = json::array();
  for (auto& [k, g] : groups) {
    json lat = json::object();
    if (!g.latency_ms.empty())
      lat = {{"p50", percentile(g.latency_ms, 50)}, {"p90", percentile(g.latency_ms, 90)},
             {"p99", percentile(g.latency_ms, 99)}, {"samples", g.latency_ms.size()}};
    json ttft = g.ttft_ms.empty() ? json(nullptr) : json(percentile(g.ttft_ms, 50));
    out.push_back({{"model", std::get<0>(k)},
                   {"tag", std::get<1>(k)},
                   {"device", std::get<2>(k)},
                   {"reports", g.count},
                   {"error_reports", g.errors},
                   {"latency_ms", lat},
                   {"ttft_p50_ms", ttft},
                   {"tokens_per_s_mean", mean(g.tokens_per_s)},
                   {"joules_per_query_mean", mean(g.joules)},
                   {"energy_source", g.energy_source},
                   {"first_unix", g.first},
                   {"last_unix", g.last}});
  }
  return out;
}

}  // namespace tsm::server
