// Block-quantized linear layer (see block_linear.h).
#include "methods/block_quant/block_linear.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "formats/array_pack.h"
#include "methods/block_quant/block_quant_codec.h"
#include "methods/block_quant/k_quants.h"
#include "methods/block_quant/vec_dot.h"
#include "methods/codec.h"

namespace tsm {

namespace {

// Output features per task and the size below which one thread does it all: matmul_xwt's split
// (model/linear.cpp), so every linear layer shares the OpenMP threads the same way.
constexpr int64_t kOutBlock = 64;
constexpr int64_t kParallelMin = int64_t(1) << 15;

}  // namespace

BlockLinear::BlockLinear(BlockType t, int64_t in, int64_t out, std::vector<uint8_t> blocks, int rows_per_block)
    : type_(t), in_(in), out_(out), rows_per_block_(rows_per_block), blocks_(std::move(blocks)) {
  const BlockFormat& f = block_format(t);
  const int k = rows_per_block;
  if (k < 1 || (k > 1 && (vec_dot::has_q8_kernel(t) || in * k != f.values)))
    throw Error(std::string(f.name) + " linear layer: " + std::to_string(k) + " rows per block does not fit " + std::to_string(in) + " inputs");
  in_padded_ = k == 1 ? (in + f.values - 1) / f.values * f.values : in;
  row_bytes_ = k == 1 ? in_padded_ / f.values * f.bytes : f.bytes;
  const int64_t units = k == 1 ? out : (out + k - 1) / k;
  if (in < 1 || out < 1 || int64_t(blocks_.size()) != units * row_bytes_)
    throw Error(std::string(f.name) + " linear layer: " + std::to_string(blocks_.size()) + " bytes of blocks for " +
                std::to_string(out) + " x " + std::to_string(in) + " (expected " + std::to_string(units * row_bytes_) + ")");
}

void BlockLinear::forward(const float* x, int64_t n, float* y) const {
  if (vec_dot::has_q8_kernel(type_)) forward_q8(x, n, y);
  else forward_decoded(x, n, y);
}

void BlockLinear::forward_q8(const float* x, int64_t n, float* y) const {
  const int64_t nb = in_padded_ / vec_dot::kQ8Values;
  // Activations: (n, nb) q8 blocks, quantized once for all outputs.
  std::vector<vec_dot::BlockQ8> act(size_t(n * nb));
  std::vector<float> pad(in_ == in_padded_ ? 0 : size_t(in_padded_), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * in_;
    if (!pad.empty()) {
      std::copy(xi, xi + in_, pad.begin());
      xi = pad.data();
    }
    vec_dot::quantize_q8(xi, in_padded_, act.data() + i * nb);
  }
  const int64_t blocks = (out_ + kOutBlock - 1) / kOutBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && out_ * in_ > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t o1 = std::min(out_, (b + 1) * kOutBlock);
    for (int64_t o = b * kOutBlock; o < o1; ++o) {
      const uint8_t* w = blocks_.data() + o * row_bytes_;
      for (int64_t i = 0; i < n; ++i) y[i * out_ + o] = vec_dot::dot_q8(type_, w, act.data() + i * nb, nb);
    }
  }
}

void BlockLinear::forward_decoded(const float* x, int64_t n, float* y) const {
  const BlockFormat& f = block_format(type_);
  // Activations zero-padded to whole super-blocks: (n, in_padded_) (x itself when in_ is whole).
  std::vector<float> xp;
  const float* xs = x;
  if (in_ != in_padded_) {
    xp.assign(size_t(n * in_padded_), 0.0f);
    for (int64_t i = 0; i < n; ++i) std::copy(x + i * in_, x + (i + 1) * in_, xp.begin() + i * in_padded_);
    xs = xp.data();
  }
  const int k = rows_per_block_;
  const int64_t nsb = k == 1 ? in_padded_ / f.values : 1;  // super-blocks decoded per stored unit
  const int64_t blocks = (out_ + kOutBlock - 1) / kOutBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && out_ * in_ > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    // One decoded unit: rows packing a weight row (in_padded_), flat a block of k rows (values).
    std::vector<float> unit(size_t(nsb * f.values));
    int64_t decoded = -1;  // the unit in `unit`
    const int64_t o1 = std::min(out_, (b + 1) * kOutBlock);
    for (int64_t o = b * kOutBlock; o < o1; ++o) {
      const int64_t u = o / k;
      if (u != decoded) {
        const uint8_t* w = blocks_.data() + u * row_bytes_;
        for (int64_t s = 0; s < nsb; ++s) kquant::dequantize_superblock(type_, w + s * f.bytes, unit.data() + s * f.values);
        decoded = u;
      }
      const float* row = unit.data() + (o % k) * in_;
      for (int64_t i = 0; i < n; ++i) y[i * out_ + o] = vec_dot::dot_f32(row, xs + i * in_padded_, in_padded_);
    }
  }
}

std::unique_ptr<LinearOp> make_block_linear(const v1::CompressedTensor& t) {
  const auto type = parse_block_type(t.method());
  if (!type) throw FormatError("tensor '" + t.name() + "': method '" + t.method() + "' is not a block type");
  const std::string name(block_format(*type).name);
  auto [rows, cols] = matrix_shape(t);
  json r;
  try {
    r = t.params_json().empty() ? json::object() : json::parse(t.params_json());
  } catch (const json::exception&) {
    throw FormatError(name + " tensor '" + t.name() + "': params_json is not JSON");
  }
  const bool io = stored_in_out(r);
  const int64_t out = io ? cols : rows, in = io ? rows : cols;
  if (out < 1 || in < 1) throw FormatError(name + " tensor '" + t.name() + "': empty shape");
  int k = 1;
  try {
    k = block_rows_per_block(*type, r, in);
  } catch (const FormatError& e) {
    throw FormatError(name + " tensor '" + t.name() + "': " + e.what());
  }
  const std::vector<int64_t> shape = block_array_shape(*type, k, out, in);
  const v1::Array& a = find_array(t, "blocks");  // checks product(shape) * dtype size == data size
  if (a.dtype() != v1::U8 || array_shape(a) != shape)
    throw FormatError(name + " tensor '" + t.name() + "': 'blocks' must be u8 of shape (" + std::to_string(shape[0]) + ", " +
                      std::to_string(shape[1]) + ")");
  const auto* p = reinterpret_cast<const uint8_t*>(a.data().data());
  return std::make_unique<BlockLinear>(*type, in, out, std::vector<uint8_t>(p, p + a.data().size()), k);
}

}  // namespace tsm
