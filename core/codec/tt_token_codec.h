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
#include <span>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "common/dtype.h"

namespace tsm {

/// The tt-token codec. Params: {shape: [n_1..n_m] | "auto", order: m (for auto, default 3),
/// exactly one of ranks: [r_1..r_{m-1}] | eps: E | ratio: R (default ranks [4, ...]),
/// core_dtype: f32|f16|bf16|int8 (default f32)}. ratio R means stored_bytes <= rows*cols*4 / R;
/// per-token ranks are then allocated greedily to minimise the (CodecContext::row_weights-weighted)
/// total squared error within that budget.
class TtTokenCodec : public Codec {
 public:
  std::string_view name() const override { return "tt-token"; }
  std::string_view summary() const override;
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
  uint64_t stored_bytes(const v1::CompressedTensor& t) const override;
};

/// In-memory decoder of a tt-token CompressedTensor (used by the model runtime for embedding lookups).
/// Holds the validated arrays (cores in their stored dtype); decoding contracts one token's cores.
class TokenTrainTable {
 public:
  /// Validates every array (dtypes, shapes, ranks, offsets); throws tsm::FormatError on bad input.
  static TokenTrainTable from_proto(const v1::CompressedTensor& t);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int order() const { return static_cast<int>(modes_.size()); }
  std::span<const int64_t> modes() const { return modes_; }
  DType core_dtype() const { return dtype_; }
  /// Ranks r_0..r_m of token `id`.
  std::vector<int64_t> token_ranks(int64_t id) const;

  void decode_row(int64_t id, float* out) const;                       // out: (cols)
  void decode_rows(std::span<const int32_t> ids, float* out) const;    // out: (ids.size(), cols); no per-token allocation
  void decode_range(int64_t begin, int64_t end, float* out) const;     // out: (end-begin, cols)
  void decode_all(float* out) const;                                   // out: (rows, cols)
  uint64_t stored_bytes() const { return stored_bytes_; }

  /// Floats of scratch one decode needs (for callers that decode from several threads: one each).
  size_t workspace_floats() const { return workspace_floats_; }
  /// decode_row with caller-provided scratch of workspace_floats() floats (thread-safe, no allocation).
  void decode_row(int64_t id, float* out, float* workspace) const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  std::vector<int64_t> modes_;             ///< n_1..n_m
  DType dtype_ = DType::F32;               ///< f32, f16, bf16 or i8
  bool ragged_ = false;                    ///< false: shared ranks_; true: token_ranks_ + offsets_
  std::vector<int64_t> ranks_;             ///< fixed: r_0..r_m
  std::vector<uint16_t> token_ranks_;      ///< ragged: (rows, m-1)
  std::vector<int64_t> offsets_;           ///< ragged: (rows+1) element offsets into cores_[0]
  // Cores in their stored dtype (only the vector of dtype_ is used). Fixed: m arrays, array k is
  // (rows, r_{k-1}, n_k, r_k); ragged: one array (total) indexed by offsets_.
  std::vector<std::vector<float>> cores_f32_;
  std::vector<std::vector<uint16_t>> cores_u16_;   ///< f16 / bf16 bit patterns
  std::vector<std::vector<int8_t>> cores_i8_;
  std::vector<float> scales_;              ///< i8 only: (rows, m)
  std::vector<int64_t> core_stride_;       ///< fixed: elements per token of core k
  size_t workspace_floats_ = 0;
  uint64_t stored_bytes_ = 0;
};

}  // namespace tsm
