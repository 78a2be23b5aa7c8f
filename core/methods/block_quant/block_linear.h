// The runtime's linear layer for a block-quantized CompressedTensor (q8_0, q4_0, q4_1, q5_0, q5_1,
// q2_k ... q6_k): y = x W^T run on the stored blocks, never decoded to a dense f32 matrix.
//   32-value types: each activation row is quantized to q8 blocks once per forward (vec_dot.h), then
//     every output is an integer block dot product (AVX2 / NEON / scalar, chosen at compile time).
//   k-quants: each weight row's super-blocks are decoded to f32 one row at a time into a per-thread
//     buffer (in_padded floats, reused for all n activation rows) and dotted in f32 (vec_dot::dot_f32);
//     no integer q8_K kernels yet, so these run slower than the 32-value types.
// Invariant: in/out features are the logical (d_in, d_out) whatever the stored orientation. The codec
// stores output feature o's blocks along the inputs for either orientation (block_quant_codec.h), so
// GPT-2 Conv1D weights (orientation in_out) need no repack: only CompressedTensor.shape is (in, out).
// Layout of blocks_ (u8), either packing of block_quant_codec.h, used as stored:
//   rows (rows_per_block 1): (out, row_bytes), row_bytes = ceil(in / B) * block bytes (B = 32 or 256),
//     the padding inputs zero; activations are zero-padded to ceil(in / B) * B.
//   flat (k = rows_per_block = B / in > 1, k-quants only): (ceil(out / k), block bytes), output o's
//     inputs at values (o % k) * in .. of block o / k.
// Error against the decoded reference: k-quants f32 rounding only (<= 2 in u sum|x_j w_j|); the
// 32-value types add the activation quantization, bounded in vec_dot.h.
#pragma once
#include <memory>
#include <vector>

#include "artifact.pb.h"
#include "methods/block_quant/block_formats.h"
#include "model/linear.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

class BlockLinear final : public LinearOp {
 public:
  /// blocks: as the codec stores them for rows_per_block (tsm::Error on a size or packing mismatch).
  BlockLinear(BlockType t, int64_t in, int64_t out, std::vector<uint8_t> blocks, int rows_per_block = 1);
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  void forward(const float* x, int64_t n, float* y) const override;
  uint64_t resident_bytes() const override { return blocks_.size(); }
  BlockType type() const { return type_; }

 private:
  void forward_q8(const float* x, int64_t n, float* y) const;
  void forward_decoded(const float* x, int64_t n, float* y) const;

  BlockType type_;
  int64_t in_, out_;
  int rows_per_block_;  ///< 1 (rows packing) or k (flat)
  int64_t in_padded_;   ///< rows: in rounded up to whole blocks; flat: in
  int64_t row_bytes_;   ///< rows: bytes of one stored row; flat: bytes of one block
  std::vector<uint8_t> blocks_;  ///< rows: (out, row_bytes_); flat: (ceil(out / k), row_bytes_)
};

/// Validates `t` (method a block type, shape, params_json orientation and packing, 'blocks' u8 of the
/// packing's shape with that many bytes; tsm::FormatError otherwise) and copies its blocks.
std::unique_ptr<LinearOp> make_block_linear(const v1::CompressedTensor& t);

}  // namespace tsm
