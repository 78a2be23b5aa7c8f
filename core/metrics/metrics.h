// Reconstruction quality of an approximation A_hat of A (both (rows, cols)): relative Frobenius
// error, per-row cosine similarity (mean, min, 1st percentile) and max abs error.
#pragma once
#include "artifact.pb.h"
#include "common/matrix.h"

namespace tsm {

struct ErrorStats {
  double rel_error = 0;      ///< ||A - A_hat||_F / ||A||_F (0 when A = 0 and A_hat = 0)
  double cos_mean = 1, cos_min = 1, cos_p01 = 1;  ///< rows that are zero in both count as 1
  double max_abs_error = 0;
};

ErrorStats error_stats(ConstMatrixRef A, ConstMatrixRef A_hat);

/// Fills the quality fields of `m` from `s` and the size fields from the byte counts.
void fill_metrics(::tensorslm::v1::Metrics& m, const ErrorStats& s, uint64_t stored_bytes, uint64_t rows, uint64_t cols,
                  size_t source_dtype_size);

}  // namespace tsm
