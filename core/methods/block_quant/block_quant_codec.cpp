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

/// Whether blocks can run across rows of `in` inputs: `in` divides the block and is a whole number of
/// sub-blocks, and row-wise blocks would pad.
bool flat_fits(BlockType t, int64_t in) {
  const BlockFormat& f = block_format(t);
  return in > 0 && in % f.values != 0 && f.values % in == 0 && in % f.sub_values == 0;
}

/// "packing" of resolved params; params written before packing existed mean rows.
std::string packing_of(const json& r) {
  return r.is_object() && r.contains("packing") && r["packing"].is_string() ? r["packing"].get<std::string>() : "rows";
}

}  // namespace

int block_rows_per_block(BlockType t, const json& resolved, int64_t in) {
  const std::string p = packing_of(resolved);
  if (p == "rows") return 1;
  if (p != "flat" || !flat_fits(t, in))
    throw FormatError(std::string(block_format(t).name) + ": packing '" + p + "' does not fit " + std::to_string(in) + " inputs");
  return static_cast<int>(block_format(t).values / in);
}

std::vector<int64_t> block_array_shape(BlockType t, int rows_per_block, int64_t out, int64_t in) {
  if (rows_per_block == 1) return {out, row_bytes_of(t, in)};
  return {(out + rows_per_block - 1) / rows_per_block, block_format(t).bytes};
}

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
      choice_param("packing", &BlockQuantParams::packing, {"auto", "rows", "flat"},
                   "rows: each output feature's inputs padded to whole blocks (ggml's layout); flat: rows narrower than a "
                   "block share blocks (a k-quant over 128 inputs: two rows per 256-value super-block, no padding); "
                   "auto: flat where it fits and rows would pad, else rows"),
  });
}

json BlockQuantCodec::param_schema() const { return spec_.schema(); }

json BlockQuantCodec::resolve(const json& p, int64_t rows, int64_t cols) const {
  BlockQuantParams r = spec_.parse(p);
  if (rows < 1 || cols < 1) throw ParamError("shape", "needs a non-empty matrix");
  const int64_t in = r.orientation == "in_out" ? rows : cols;
  if (r.packing == "auto") r.packing = flat_fits(type_, in) ? "flat" : "rows";
  if (r.packing == "flat" && !flat_fits(type_, in))
    throw ParamError("packing", "flat needs a number of inputs that divides the block of " + std::to_string(block_format(type_).values) +
                                    " values and is a multiple of " + std::to_string(block_format(type_).sub_values) + " (got " +
                                    std::to_string(in) + ")");
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
  const int64_t out = io ? W.cols() : W.rows(), in = io ? W.rows() : W.cols();
  const int k = block_rows_per_block(type_, r, in);
  // M: rows packing: (out, inp), the inputs zero-padded to whole blocks; flat packing: (outp, in), the
  // rows zero-padded to whole blocks of k rows. Either way M is `units` contiguous runs of
  // unit_values floats, each quantized to unit_bytes.
  const int64_t inp = k == 1 ? padded(type_, in) : in, outp = (out + k - 1) / k * k;
  MatrixRM M = MatrixRM::Zero(outp, inp);
  if (io) M.topLeftCorner(out, in) = W.transpose();
  else M.topLeftCorner(out, in) = W;
  const std::vector<int64_t> shape = block_array_shape(type_, k, out, in);
  const int64_t units = shape[0], unit_bytes = shape[1], unit_values = k == 1 ? inp : block_format(type_).values;
  std::vector<uint8_t> blocks(static_cast<size_t>(units * unit_bytes));  // (units, unit_bytes)
  if (H) {
    if (H->rows() != in) throw Error(std::string(name()) + ": input covariance is " + std::to_string(H->rows()) + " wide for " + std::to_string(in) + " inputs");
    MatrixRMd Hp = MatrixRMd::Zero(inp, inp);
    Hp.topLeftCorner(in, in) = *H;
    ctx.check_cancel();
    gptq_quantize(type_, M, Hp, blocks.data(), 0.01, k);
  } else {
    // Units are independent: ctx.threads threads over chunks of them (the k-quants' reference
    // quantizer runs at tens of MB/s per core), each unit's bytes the same as on one thread.
    const int threads = std::max(1, ctx.threads);
    constexpr int64_t kChunk = 64;
    std::atomic<bool> stop{false};
    std::atomic<int64_t> done{0};
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (int64_t o0 = 0; o0 < units; o0 += kChunk) {
      if (stop.load(std::memory_order_relaxed)) continue;
      if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) {
        stop = true;
        continue;
      }
      const int64_t o1 = std::min(units, o0 + kChunk);
      for (int64_t o = o0; o < o1; ++o)
        quantize_row(type_, M.data() + o * unit_values, unit_values, blocks.data() + o * unit_bytes);
      const int64_t d = done.fetch_add(o1 - o0) + (o1 - o0);
      if (omp_get_thread_num() == 0) ctx.report(double(d) / double(units));
    }
    if (stop) throw Canceled();
  }
  ctx.report(1.0);
  auto t = tensor_header(name(), W.rows(), W.cols());
  t.set_params_json(r.dump());
  t.add_arrays()->CopyFrom(make_array("blocks", DType::U8, shape, blocks.data(), blocks.size()));
  return t;
}

MatrixRM dequantize_blocks(BlockType t, const uint8_t* blocks, int64_t out, int64_t in, int rows_per_block) {
  if (rows_per_block > 1) {
    const int64_t units = block_array_shape(t, rows_per_block, out, in)[0];
    std::vector<float> flat(static_cast<size_t>(units * block_format(t).values));
    dequantize_row(t, blocks, int64_t(flat.size()), flat.data());
    return Eigen::Map<const MatrixRM>(flat.data(), out, in);
  }
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
  } catch (const json::exception&) {
    throw FormatError(std::string(name()) + " tensor '" + t.name() + "': params_json is not JSON");
  }
  const bool io = stored_in_out(r);
  const int64_t out = io ? cols : rows, in = io ? rows : cols;
  int k = 1;
  try {
    k = block_rows_per_block(type_, r, in);
  } catch (const FormatError& e) {
    throw FormatError(std::string(name()) + " tensor '" + t.name() + "': " + e.what());
  }
  const std::vector<int64_t> shape = block_array_shape(type_, k, out, in);
  const v1::Array& a = find_array(t, "blocks");
  if (a.dtype() != v1::U8 || array_shape(a) != shape)
    throw FormatError(std::string(name()) + " tensor '" + t.name() + "': 'blocks' must be u8 of shape (" + std::to_string(shape[0]) +
                      ", " + std::to_string(shape[1]) + ")");
  MatrixRM M = dequantize_blocks(type_, reinterpret_cast<const uint8_t*>(a.data().data()), out, in, k);
  return io ? MatrixRM(M.transpose()) : M;
}

// Plain rounding: the padded f32 copy M and the blocks (the default covers them). GPTQ: W and the
// updated weights in double, one code per weight (int), one BlockParams per block, the padded input
// covariance and H, H^-1, its Cholesky factor U (inp^2 doubles each) and a batch of errors.
uint64_t BlockQuantCodec::working_set_bytes(int64_t rows, int64_t cols, const json& r, bool cal) const {
  const uint64_t dflt = Codec::working_set_bytes(rows, cols, r, cal);
  if (!cal || !needs_calibration(r)) return dflt;
  const bool io = stored_in_out(r);
  const uint64_t out = uint64_t(io ? cols : rows), inp = uint64_t(padded(type_, io ? rows : cols));
  const uint64_t blocks = out * inp / uint64_t(block_format(type_).values) + 1;
  return dflt + 12 * out * inp + blocks * sizeof(BlockParams) + 6 * 8 * inp * inp + 8 * out * 128;
}

}  // namespace tsm
