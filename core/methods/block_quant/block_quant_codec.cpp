// Block quantization codecs (see block_quant_codec.h).
#include "methods/block_quant/block_quant_codec.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "formats/array_pack.h"
#include "methods/block_quant/gptq.h"

namespace tsm {

namespace {

/// n rounded up to whole blocks of the format (32 values; 256 for a k-quant super-block).
int64_t padded(BlockType t, int64_t n) {
  const int64_t b = block_format(t).values;
  return (n + b - 1) / b * b;
}

/// Bytes of one stored row of n inputs: whole blocks, the padding included.
int64_t row_bytes_of(BlockType t, int64_t n) { return padded(t, n) / block_format(t).values * block_format(t).bytes; }

}  // namespace

BlockQuantCodec::BlockQuantCodec(BlockType t) : type_(t), spec_(block_quant_param_spec(std::string(block_format(t).name))) {
  const BlockFormat& f = block_format(t);
  const std::string bits = std::to_string(f.bytes * 8.0 / f.values).substr(0, 4) + " bits/weight), ";
  if (f.values == f.sub_values)
    summary_ = "llama.cpp " + std::string(f.name) + ": blocks of 32 inputs, " + std::to_string(f.bytes) + " bytes (" + bits +
               (f.has_min ? "scale and minimum" : "one scale") + " per block; optional GPTQ calibration";
  else
    summary_ = "llama.cpp " + std::string(f.name.substr(0, 3)) + "K (k-quant): super-blocks of 256 inputs, " + std::to_string(f.bytes) +
               " bytes (" + bits + std::to_string(f.values / f.sub_values) + " sub-blocks of " + std::to_string(f.sub_values) +
               " with quantized " + (f.has_min ? "scales and minimums" : "scales") + "; optional GPTQ calibration";
}

ParamSpec<BlockQuantParams> block_quant_param_spec(std::string method) {
  return ParamSpec<BlockQuantParams>(std::move(method), {
      choice_param("orientation", &BlockQuantParams::orientation, {"out_in", "in_out"},
                   "in_out: the tensor is stored (in, out) (GPT-2 Conv1D); blocks run along the inputs either way"),
      choice_param("calibration", &BlockQuantParams::calibration, {"none", "gptq"},
                   "gptq: error feedback in the norm of the layer's inputs (arXiv 2210.17323; k-types also refit sub-block scales "
                   "weighted by the inputs' energy, as llama.cpp's imatrix); needs a whole-model job with calibrate"),
  });
}

json BlockQuantCodec::param_schema() const { return spec_.schema(); }

json BlockQuantCodec::resolve(const json& p, int64_t rows, int64_t cols) const {
  const BlockQuantParams r = spec_.parse(p);
  if (rows < 1 || cols < 1) throw ParamError("shape", "needs a non-empty matrix");
  return spec_.to_json(r);
}

bool BlockQuantCodec::needs_calibration(const json& r) const { return spec_.parse(r).calibration != "none"; }

v1::CompressedTensor BlockQuantCodec::encode(ConstMatrixRef W, const json& r, const CodecContext& ctx) const {
  if (needs_calibration(r))
    throw ParamError("calibration", "gptq needs the layer's inputs: compress the whole model with calibrate (or use calibration none)");
  return encode_with(W, r, nullptr, ctx);
}

v1::CompressedTensor BlockQuantCodec::encode_calibrated(ConstMatrixRef W, const json& r, const Calibration& cal,
                                                        const CodecContext& ctx) const {
  if (!needs_calibration(r) || !cal.input_covariance) return encode_with(W, r, nullptr, ctx);
  return encode_with(W, r, cal.input_covariance, ctx);
}

v1::CompressedTensor BlockQuantCodec::encode_with(ConstMatrixRef W, const json& r, const MatrixRMd* H,
                                                  const CodecContext& ctx) const {
  const bool io = stored_in_out(r);
  // M: (out, in) with the inputs zero-padded to whole blocks (a multiple of block_format(type_).values).
  const int64_t out = io ? W.cols() : W.rows(), in = io ? W.rows() : W.cols(), inp = padded(type_, in);
  MatrixRM M = MatrixRM::Zero(out, inp);
  if (io) M.leftCols(in) = W.transpose();
  else M.leftCols(in) = W;
  const int64_t row_bytes = row_bytes_of(type_, in);
  std::vector<uint8_t> blocks(static_cast<size_t>(out * row_bytes));  // (out, row_bytes)
  if (H) {
    if (H->rows() != in) throw Error(std::string(name()) + ": input covariance is " + std::to_string(H->rows()) + " wide for " + std::to_string(in) + " inputs");
    MatrixRMd Hp = MatrixRMd::Zero(inp, inp);
    Hp.topLeftCorner(in, in) = *H;
    ctx.check_cancel();
    gptq_quantize(type_, M, Hp, blocks.data());
  } else {
    // Rows are independent: ctx.threads threads over chunks of rows (the k-quants' reference
    // quantizer runs at tens of MB/s per core), each row's bytes the same as on one thread.
    const int threads = std::max(1, ctx.threads);
    constexpr int64_t kChunk = 64;
    std::atomic<bool> stop{false};
    std::atomic<int64_t> done{0};
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (int64_t o0 = 0; o0 < out; o0 += kChunk) {
      if (stop.load(std::memory_order_relaxed)) continue;
      if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) {
        stop = true;
        continue;
      }
      const int64_t o1 = std::min(out, o0 + kChunk);
      for (int64_t o = o0; o < o1; ++o) quantize_row(type_, M.row(o).data(), inp, blocks.data() + o * row_bytes);
      const int64_t d = done.fetch_add(o1 - o0) + (o1 - o0);
      if (omp_get_thread_num() == 0) ctx.report(double(d) / double(out));
    }
    if (stop) throw Canceled();
  }
  ctx.report(1.0);
  auto t = tensor_header(name(), W.rows(), W.cols());
  t.set_params_json(r.dump());
  const std::vector<int64_t> s{out, row_bytes};
  t.add_arrays()->CopyFrom(make_array("blocks", DType::U8, s, blocks.data(), blocks.size()));
  return t;
}

MatrixRM dequantize_blocks(BlockType t, const uint8_t* blocks, int64_t out, int64_t in) {
  const int64_t inp = padded(t, in), row_bytes = row_bytes_of(t, in);
  MatrixRM M(out, in);
  std::vector<float> row(static_cast<size_t>(inp));
  for (int64_t o = 0; o < out; ++o) {
    dequantize_row(t, blocks + o * row_bytes, inp, row.data());
    std::copy(row.begin(), row.begin() + in, M.row(o).data());
  }
  return M;
}

MatrixRM BlockQuantCodec::decode(const v1::CompressedTensor& t) const {
  auto [rows, cols] = matrix_shape(t);
  json r;
  try {
    r = t.params_json().empty() ? json::object() : json::parse(t.params_json());
  } catch (const json::parse_error&) {
    throw FormatError(std::string(name()) + " tensor '" + t.name() + "': params_json is not JSON");
  }
  const bool io = stored_in_out(r);
  const int64_t out = io ? cols : rows, in = io ? rows : cols;
  const int64_t row_bytes = row_bytes_of(type_, in);
  const v1::Array& a = find_array(t, "blocks");
  if (a.dtype() != v1::U8 || array_shape(a) != std::vector<int64_t>{out, row_bytes})
    throw FormatError(std::string(name()) + " tensor '" + t.name() + "': 'blocks' must be u8 of shape (" + std::to_string(out) +
                      ", " + std::to_string(row_bytes) + ")");
  MatrixRM M = dequantize_blocks(type_, reinterpret_cast<const uint8_t*>(a.data().data()), out, in);
  return io ? MatrixRM(M.transpose()) : M;
}

}  // namespace tsm
