// Block quantization codecs (see block_quant_codec.h).
#include "methods/block_quant/block_quant_codec.h"

#include <vector>

#include "formats/array_pack.h"
#include "methods/block_quant/gptq.h"

namespace tsm {

namespace {

constexpr int64_t kQK = 32;

int64_t padded(int64_t n) { return (n + kQK - 1) / kQK * kQK; }

}  // namespace

BlockQuantCodec::BlockQuantCodec(BlockType t) : type_(t) {
  const BlockFormat& f = block_format(t);
  summary_ = "llama.cpp " + std::string(f.name) + ": blocks of 32 inputs, " + std::to_string(f.bytes) + " bytes (" +
             std::to_string(f.bytes * 8.0 / 32).substr(0, 4) + " bits/weight), " +
             (f.has_min ? "scale and minimum" : "one scale") + " per block; optional GPTQ calibration";
}

json BlockQuantCodec::param_schema() const {
  return json::parse(R"JSON({
    "type": "object", "additionalProperties": false,
    "properties": {
      "orientation": {"enum": ["out_in", "in_out"], "default": "out_in",
                      "description": "in_out: the tensor is stored (in, out) (GPT-2 Conv1D); blocks run along the inputs either way"},
      "calibration": {"enum": ["none", "gptq"], "default": "none",
                      "description": "gptq: error feedback in the norm of the layer's inputs (arXiv 2210.17323); needs a whole-model job with calibrate"}
    }})JSON");
}

json BlockQuantCodec::resolve(const json& p, int64_t rows, int64_t cols) const {
  if (!p.is_null() && !p.is_object()) throw ParamError("params", "must be a JSON object");
  json out = {{"orientation", "out_in"}, {"calibration", "none"}};
  if (p.is_object())
    for (auto it = p.begin(); it != p.end(); ++it) {
      const std::string& k = it.key();
      if (k == "orientation") {
        if (!it->is_string() || (*it != "out_in" && *it != "in_out")) throw ParamError(k, "must be out_in or in_out");
      } else if (k == "calibration") {
        if (!it->is_string() || (*it != "none" && *it != "gptq")) throw ParamError(k, "must be none or gptq");
      } else {
        throw ParamError(k, "unknown parameter (" + std::string(name()) + " takes orientation, calibration)");
      }
      out[k] = *it;
    }
  if (rows < 1 || cols < 1) throw ParamError("shape", "needs a non-empty matrix");
  return out;
}

bool BlockQuantCodec::needs_calibration(const json& r) const {
  return r.value("calibration", std::string("none")) != "none";
}

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
  const BlockFormat& f = block_format(type_);
  const bool io = stored_in_out(r);
  // M: (out, in) with the inputs zero-padded to a multiple of 32.
  const int64_t out = io ? W.cols() : W.rows(), in = io ? W.rows() : W.cols(), inp = padded(in);
  MatrixRM M = MatrixRM::Zero(out, inp);
  if (io) M.leftCols(in) = W.transpose();
  else M.leftCols(in) = W;
  const int64_t row_bytes = inp / kQK * f.bytes;
  std::vector<uint8_t> blocks(static_cast<size_t>(out * row_bytes));  // (out, row_bytes)
  if (H) {
    if (H->rows() != in) throw Error(std::string(name()) + ": input covariance is " + std::to_string(H->rows()) + " wide for " + std::to_string(in) + " inputs");
    MatrixRMd Hp = MatrixRMd::Zero(inp, inp);
    Hp.topLeftCorner(in, in) = *H;
    ctx.check_cancel();
    gptq_quantize(type_, M, Hp, blocks.data());
  } else {
    for (int64_t o = 0; o < out; ++o) {
      if ((o & 1023) == 0) {
        ctx.check_cancel();
        ctx.report(double(o) / double(out));
      }
      quantize_row(type_, M.row(o).data(), inp, blocks.data() + o * row_bytes);
    }
  }
  ctx.report(1.0);
  auto t = tensor_header(name(), W.rows(), W.cols());
  t.set_params_json(r.dump());
  const std::vector<int64_t> s{out, row_bytes};
  t.add_arrays()->CopyFrom(make_array("blocks", DType::U8, s, blocks.data(), blocks.size()));
  return t;
}

MatrixRM dequantize_blocks(BlockType t, const uint8_t* blocks, int64_t out, int64_t in) {
  const int64_t inp = padded(in), row_bytes = inp / kQK * block_format(t).bytes;
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
  const int64_t row_bytes = padded(in) / kQK * block_format(type_).bytes;
  const v1::Array& a = find_array(t, "blocks");
  if (a.dtype() != v1::U8 || array_shape(a) != std::vector<int64_t>{out, row_bytes})
    throw FormatError(std::string(name()) + " tensor '" + t.name() + "': 'blocks' must be u8 of shape (" + std::to_string(out) +
                      ", " + std::to_string(row_bytes) + ")");
  MatrixRM M = dequantize_blocks(type_, reinterpret_cast<const uint8_t*>(a.data().data()), out, in);
  return io ? MatrixRM(M.transpose()) : M;
}

}  // namespace tsm
