// tt-token (TensorSLM, arXiv 2506.13514): every row of a (V, d) embedding matrix is reshaped to the
// modes n_1..n_m (prod = d) and stored as its own tensor train found by TT-SVD.
// Invariant: a token's TT has ranks 1 = r_0, r_1..r_{m-1}, r_m = 1; token t's core k is (r_{k-1}, n_k, r_k).
// Layout of the CompressedTensor arrays (all little-endian, row-major):
//   fixed ranks  : "modes" i64 (m), "ranks" i64 (m+1), "core_k" for k = 0..m-1: (V, r_{k-1}, n_k, r_k) of core_dtype
//   eps / ratio  : "modes" i64 (m), "token_ranks" u16 (V, m-1) = r_1..r_{m-1} per token,
//                  "offsets" u32|i64 (V+1) element offsets into "cores", "cores" (total) of core_dtype,
//                  token t's cores 0..m-1 concatenated at cores[offsets[t] .. offsets[t+1])
//   int8 cores   : plus "scales" f32 (V, m): value = int8 * scales[t, k] (symmetric, per token and core)
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "methods/codec.h"
#include "methods/param_spec.h"
#include "common/dtype.h"

namespace tsm {

/// The parameters (their JSON Schema and parse come from one description in tt_token_codec.cpp).
/// Resolved: shape set, order absent, exactly one of ranks (a list), eps, ratio; core_dtype canonical.
struct TtTokenParams {
  std::optional<std::vector<int64_t>> shape;  ///< modes n_1..n_m (product = row length); absent: "auto"
  std::optional<int64_t> order;               ///< modes for shape auto, 1..32 (3 when absent)
  std::optional<IntOrList> ranks;             ///< r_1..r_{m-1}, or one value for all (default 4 each)
  std::optional<double> eps;                  ///< per-token relative Frobenius error bound, [0, 1]
  std::optional<double> ratio;                ///< dense f32 bytes / stored bytes, > 0
  std::string core_dtype = "f32";             ///< f32 | f16 | bf16 | int8
};

/// The tt-token codec. Params: {shape: [n_1..n_m] | "auto", order: m (for auto, default 3),
/// exactly one of ranks: [r_1..r_{m-1}] | eps: E | ratio: R (default ranks [4, ...]),
/// core_dtype: f32|f16|bf16|int8 (default f32)}. ratio R means stored_bytes <= rows*cols*4 / R;
/// per-token ranks are then allocated greedily to minimise the (CodecContext::row_weights-weighted)
/// total squared error within that budget.
inline constexpr std::string_view kTtTokenMethod = "tt-token";

class TtTokenCodec : public Codec {
 public:
  std::string_view name() const override { return kTtTokenMethod; }
  std::string_view summary() const override;
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
  uint64_t stored_bytes(const v1::CompressedTensor& t) const override;
};

}  // namespace tsm
