// Honest baselines for every result, each at its own natural size or, for SVD, at the rank whose
// stored bytes are nearest to a target: fp16 cast, symmetric per-row int8, Q4_0 (blocks of 32
// values, one f16 scale each, as llama.cpp), global truncated SVD.
#pragma once
#include <vector>

#include "artifact.pb.h"
#include "common/matrix.h"

namespace tsm {

/// Computes all baselines for A; `target_bytes` picks the SVD rank. Quality via metrics/metrics.h.
std::vector<::tensorslm::v1::Baseline> compute_baselines(ConstMatrixRef A, uint64_t target_bytes, size_t source_dtype_size);

}  // namespace tsm
