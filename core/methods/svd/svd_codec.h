// "svd": global truncated SVD baseline, W ~ L R with L = U_k S_k (rows, k) and R = V_k^T (k, cols).
// The SVD comes from the eigendecomposition (double) of the Gram matrix of W's smaller side, which
// is exact for the kept singular directions up to ~1e-8 of sigma_max and fast for tall embeddings.
// Arrays: "left" f32 (rows, k), "right" f32 (k, cols). Params: rank k or eps (relative Frobenius).
#pragma once
#include <Eigen/Core>
#include <optional>

#include "methods/codec.h"

namespace tsm {

/// Singular values of A (descending, size p = min(rows, cols)) and the singular vectors of its
/// smaller side: right vectors (cols, p) when rows >= cols, else left vectors (rows, p).
struct GramSvd {
  bool wide = false;           ///< rows < cols: basis holds left singular vectors
  Eigen::VectorXd sigma;       ///< (p) descending
  Eigen::MatrixXd basis;       ///< (cols, p) or (rows, p), column j <-> sigma[j]
};
GramSvd gram_svd(ConstMatrixRef A);

/// Rank-k factors of A from `g`: left (rows, k), right (k, cols), A_k = left * right.
void svd_factors(ConstMatrixRef A, const GramSvd& g, int64_t k, MatrixRM& left, MatrixRM& right);

/// Smallest k >= 1 with sum_{j >= k} sigma_j^2 <= eps^2 * sum_j sigma_j^2.
int64_t rank_for_eps(const Eigen::VectorXd& sigma, double eps);

inline constexpr std::string_view kSvdMethod = "svd";

/// The parameters: exactly one of rank and eps once resolved (rank defaults to min(rows, cols) / 8).
struct SvdParams {
  std::optional<int64_t> rank;  ///< kept singular values, 1..min(rows, cols)
  std::optional<double> eps;    ///< relative Frobenius error bound in [0, 1]; picks the rank
};
/// Validates params (JSON object or null) for a (rows, cols) matrix and fills the default.
SvdParams resolve_svd_params(const json& params, int64_t rows, int64_t cols);
json svd_params_json(const SvdParams& p);

class SvdCodec : public Codec {
 public:
  std::string_view name() const override { return kSvdMethod; }
  std::string_view summary() const override { return "baseline: global truncated SVD of the whole matrix (rank or eps)"; }
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
  uint64_t working_set_bytes(int64_t rows, int64_t cols, const json& resolved, bool calibrated) const override;
};

}  // namespace tsm
