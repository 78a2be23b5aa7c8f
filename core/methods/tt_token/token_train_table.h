// TokenTrainTable: the in-memory decoder of a tt-token CompressedTensor (tt_token_codec.h has the
// array layout). It holds the validated arrays with cores in their stored dtype; decoding a token
// contracts its cores r_0 = 1 .. r_m = 1 into one row of `cols` floats.
// Invariant: a table that constructed has consistent ranks, offsets and array sizes, so decoding
// any id in [0, rows) reads only inside its arrays.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "artifact.pb.h"
#include "common/dtype.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

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
