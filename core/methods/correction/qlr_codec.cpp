// Quantized base + low-rank int8 correction (see qlr_codec.h).
#include "methods/correction/qlr_codec.h"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>

#include "common/thin_svd.h"
#include "formats/array_pack.h"
#include "methods/correction/quantized_base.h"
#include "methods/int8/int8_codec.h"

namespace tsm {

namespace {

json base_params(const QlrParams& p, int64_t rows, int64_t cols) {
  return tsm::base_params(p.base, p.orientation, p.calibration, p.packing, rows, cols);
}

/// Per-row int8 of M (rows, cols): values (rows * cols) and scales (rows).
void quantize_rows(const MatrixRM& M, std::vector<int8_t>& q, std::vector<float>& scales) {
  q.resize(size_t(M.size()));
  scales.resize(size_t(M.rows()));
  for (int64_t i = 0; i < M.rows(); ++i) scales[size_t(i)] = quantize_row_int8(M.row(i).data(), M.cols(), q.data() + i * M.cols());
}

MatrixRM dequantize_rows(const v1::CompressedTensor& t, const char* values, const char* scales, int64_t rows, int64_t cols) {
  const v1::Array& a = find_array(t, values);
  const v1::Array& s = find_array(t, scales);
  if (a.dtype() != v1::I8 || array_shape(a) != std::vector<int64_t>{rows, cols} || s.dtype() != v1::F32 ||
      array_shape(s) != std::vector<int64_t>{rows})
    throw FormatError("qlr tensor '" + t.name() + "': '" + values + "' must be i8 (" + std::to_string(rows) + ", " + std::to_string(cols) +
                      ") with f32 '" + scales + "' (" + std::to_string(rows) + ")");
  const auto q = unpack<int8_t>(a);
  const auto sc = unpack<float>(s);
  MatrixRM M(rows, cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) M(i, j) = sc[size_t(i)] * float(q[size_t(i * cols + j)]);
  return M;
}

}  // namespace

QlrCodec::QlrCodec()
    : spec_(std::string(kQlrMethod),
            {
                choice_param("base", &QlrParams::base, base_type_names(), "the block type of the quantized base"),
                integer_param("rank", &QlrParams::rank, 1, std::numeric_limits<int64_t>::max(),
                              "rank of the correction L R of the base's residual (at most min(rows, cols))"),
                choice_param("orientation", &QlrParams::orientation, {"out_in", "in_out"},
                             "in_out: the tensor is stored (in, out) (GPT-2 Conv1D)"),
                choice_param("calibration", &QlrParams::calibration, {"none", "gptq"},
                             "gptq: the base by GPTQ and the correction fitted in the norm of the layer's inputs; needs a "
                             "whole-model job with calibrate"),
                choice_param("packing", &QlrParams::packing, {"auto", "rows", "flat"}, kBasePackingHelp),
            }) {}

json QlrCodec::resolve(const json& params, int64_t rows, int64_t cols) const {
  QlrParams p = spec_.parse(params);
  if (rows < 1 || cols < 1) throw ParamError("shape", "needs a non-empty matrix");
  if (p.rank > std::min(rows, cols))
    throw ParamError("rank", "rank " + std::to_string(p.rank) + " exceeds min(rows, cols) = " + std::to_string(std::min(rows, cols)));
  p.packing = base_params(p, rows, cols)["packing"].get<std::string>();
  return spec_.to_json(p);
}

bool QlrCodec::needs_calibration(const json& r) const { return spec_.parse(r).calibration != "none"; }

v1::CompressedTensor QlrCodec::encode(ConstMatrixRef W, const json& r, const CodecContext& ctx) const {
  const QlrParams p = spec_.parse(r);
  if (p.calibration != "none")
    throw ParamError("calibration", "gptq needs the layer's inputs: compress the whole model with calibrate (or use calibration none)");
  return encode_with(W, p, nullptr, ctx);
}

v1::CompressedTensor QlrCodec::encode_calibrated(ConstMatrixRef W, const json& r, const Calibration& cal, const CodecContext& ctx) const {
  const QlrParams p = spec_.parse(r);
  return encode_with(W, p, p.calibration != "none" && cal.input_covariance ? &cal : nullptr, ctx);
}

v1::CompressedTensor QlrCodec::encode_with(ConstMatrixRef W, const QlrParams& p, const Calibration* cal, const CodecContext& ctx) const {
  const v1::CompressedTensor base = encode_base(W, p.base, base_params(p, W.rows(), W.cols()), cal, ctx);
  ctx.check_cancel();
  const bool io = p.orientation == "in_out";
  const MatrixRM Rs = W - base_codec(p.base).decode(base);    // stored shape
  const Eigen::MatrixXd R = io ? Eigen::MatrixXd(Rs.transpose().cast<double>()) : Eigen::MatrixXd(Rs.cast<double>());  // (out, in)
  const int64_t out = R.rows(), in = R.cols(), k = p.rank;
  MatrixRM left(out, k), right(k, in);
  if (!cal) {
    // Best rank-k approximation of R, split as U sqrt(S) and sqrt(S) V^T (balanced rows for int8).
    const ThinSvd s = thin_svd(R);
    for (int64_t j = 0; j < k; ++j) {
      const double r = std::sqrt(s.S(j));
      left.col(j) = (s.U.col(j) * r).cast<float>();
      right.row(j) = (s.V.col(j).transpose() * r).cast<float>();
    }
  } else {
    // min ||(R - L Rt) C^{1/2}||_F: with C + damp I = G G^T (Cholesky), the best rank-k M_k of
    // M = R G gives L Rt G = M_k, so Rt = sqrt(S) V^T G^{-1}.
    Eigen::MatrixXd C = *cal->input_covariance;
    if (C.rows() != in) throw Error("qlr: input covariance is " + std::to_string(C.rows()) + " wide for " + std::to_string(in) + " inputs");
    const double damp = 0.01 * std::max(C.diagonal().mean(), 1e-12);
    C.diagonal().array() += damp;
    const Eigen::LLT<Eigen::MatrixXd> llt(C);
    const Eigen::MatrixXd G = llt.matrixL();
    const ThinSvd s = thin_svd(R * G);
    for (int64_t j = 0; j < k; ++j) {
      const double r = std::sqrt(s.S(j));
      left.col(j) = (s.U.col(j) * r).cast<float>();
      // Rt_j = r v_j^T G^{-1}  <=>  G^T Rt_j^T = r v_j
      const Eigen::VectorXd rt = G.transpose().triangularView<Eigen::Upper>().solve(s.V.col(j) * r);
      right.row(j) = rt.transpose().cast<float>();
    }
  }
  std::vector<int8_t> lq, rq;
  std::vector<float> ls, rs;
  quantize_rows(left, lq, ls);
  quantize_rows(right, rq, rs);
  auto t = tensor_header(name(), W.rows(), W.cols());
  t.set_params_json(spec_.to_json(p).dump());
  t.add_arrays()->CopyFrom(find_array(base, "blocks"));
  const std::vector<int64_t> sl{out, k}, sls{out}, sr{k, in}, srs{k};
  t.add_arrays()->CopyFrom(make_array<int8_t>("left", sl, lq));
  t.add_arrays()->CopyFrom(make_array<float>("left_scales", sls, ls));
  t.add_arrays()->CopyFrom(make_array<int8_t>("right", sr, rq));
  t.add_arrays()->CopyFrom(make_array<float>("right_scales", srs, rs));
  ctx.report(1.0);
  return t;
}

MatrixRM QlrCodec::decode(const v1::CompressedTensor& t) const {
  auto [rows, cols] = matrix_shape(t);
  QlrParams p;
  try {
    const json stored = t.params_json().empty() ? json::object() : json::parse(t.params_json());
    p = spec_.parse(stored);
    if (!stored.is_object() || !stored.contains("packing")) p.packing = "rows";  // written before the base had packing
  } catch (const json::exception&) {
    throw FormatError("qlr tensor '" + t.name() + "': params_json is not JSON");
  } catch (const ParamError& e) {
    throw FormatError("qlr tensor '" + t.name() + "': " + e.what());
  }
  if (p.rank < 1 || p.rank > std::min(rows, cols)) throw FormatError("qlr tensor '" + t.name() + "': rank out of range");
  json bp;
  try {
    bp = base_params(p, rows, cols);
  } catch (const ParamError& e) {
    throw FormatError("qlr tensor '" + t.name() + "': " + e.what());
  }
  MatrixRM M = decode_base(t, p.base, bp, rows, cols);
  const bool io = p.orientation == "in_out";
  const int64_t out = io ? cols : rows, in = io ? rows : cols;
  const MatrixRM L = dequantize_rows(t, "left", "left_scales", out, p.rank);
  const MatrixRM Rt = dequantize_rows(t, "right", "right_scales", p.rank, in);
  if (io) M.noalias() += (L * Rt).transpose();
  else M.noalias() += L * Rt;
  return M;
}

// The base block type's encode, the residual in double, its thin SVD (full U and V of the residual
// in double), and calibrated: the covariance's Cholesky factor and the whitened residual.
uint64_t QlrCodec::working_set_bytes(int64_t rows, int64_t cols, const json& r, bool cal) const {
  const uint64_t mn = uint64_t(rows) * uint64_t(cols), n = uint64_t(std::max(rows, cols));
  const QlrParams p = spec_.parse(r);
  const uint64_t base = base_codec(p.base).working_set_bytes(rows, cols, base_params(p, rows, cols), cal);
  return base + 48 * mn + 24 * n * n + (cal ? 24 * n * n + 16 * mn : 0);
}

}  // namespace tsm
