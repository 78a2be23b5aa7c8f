// Aggregation of device reports for GET /v1/reports/summary: groups by (model, tag, device) and
// gives latency percentiles (nearest-rank over the per-query totals of the compressed run, or over
// the reported p50s when a report carries no per-query timings), mean tokens/s and energy per query.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "store/store.h"

namespace tsm::server {

/// Nearest-rank percentile (q in [0, 100]) of `v` (sorted in place); 0 for an empty vector.
double percentile(std::vector<double>& v, double q);
nlohmann::json summarize_reports(const std::vector<ReportRecord>& reports);

}  // namespace tsm::server
