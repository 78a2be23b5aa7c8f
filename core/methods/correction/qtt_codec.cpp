// Quantized base + tensor-train correction (see qtt_codec.h).
#include "methods/correction/qtt_codec.h"

#include <algorithm>

#include "formats/array_pack.h"
#include "methods/correction/quantized_base.h"
#include "methods/saten/saten_factors.h"
#include "methods/saten/saten_fit.h"
#include "methods/tt_core_arrays.h"

namespace tsm {

namespace {

json base_params(const QttParams& p, int64_t rows, int64_t cols) {
  return tsm::base_params(p.base, p.orientation, p.calibration, p.packing, rows, cols);
}

std::vector<int64_t> read_modes(const v1::CompressedTensor& t, const std::string& name, const std::string& who) {
  const v1::Array& a = find_array(t, name);
  if (a.dtype() != v1::I64 || array_shape(a).size() != 1) throw FormatError(who + "'" + name + "' must be a 1-D i64 array");
  return unpack<int64_t>(a);
}

/// Core k's stored shape (r_k, o_k, i_k, r_{k+1}).
std::vector<int64_t> core_shape(const SatenLayout& L, const std::vector<int64_t>& ranks, size_t k) {
  return {ranks[k], L.out_modes[k], L.in_modes[k], ranks[k + 1]};
}

}  // namespace

QttCodec::QttCodec()
    : spec_(std::string(kQttMethod),
            {
                choice_param("base", &QttParams::base, base_type_names(), "the block type of the quantized base"),
                integer_param("order", &QttParams::order, 2, 8, "number of TT cores; rows and columns are each factored into as many modes"),
                integer_param("rank", &QttParams::rank, 1, 4096, "cap on every TT rank of the correction"),
                int_choice_param("core_bits", &QttParams::core_bits, {8, 4, 32},
                                 "bits per stored core element: 8 or 4 (symmetric, one f32 scale per core column), 32 = f32"),
                choice_param("orientation", &QttParams::orientation, {"out_in", "in_out"},
                             "in_out: the tensor is stored (in, out) (GPT-2 Conv1D)"),
                choice_param("calibration", &QttParams::calibration, {"none", "gptq"},
                             "gptq: the base by GPTQ (needs a whole-model job with calibrate); the train then fits its residual"),
                choice_param("packing", &QttParams::packing, {"auto", "rows", "flat"}, kBasePackingHelp),
            }) {}

json QttCodec::resolve(const json& params, int64_t rows, int64_t cols) const {
  QttParams p = spec_.parse(params);
  if (rows < 1 || cols < 1) throw ParamError("shape", "needs a non-empty matrix");
  p.packing = base_params(p, rows, cols)["packing"].get<std::string>();
  return spec_.to_json(p);
}

bool QttCodec::needs_calibration(const json& r) const { return spec_.parse(r).calibration != "none"; }

v1::CompressedTensor QttCodec::encode(ConstMatrixRef W, const json& r, const CodecContext& ctx) const {
  const QttParams p = spec_.parse(r);
  if (p.calibration != "none")
    throw ParamError("calibration", "gptq needs the layer's inputs: compress the whole model with calibrate (or use calibration none)");
  return encode_with(W, p, nullptr, ctx);
}

v1::CompressedTensor QttCodec::encode_calibrated(ConstMatrixRef W, const json& r, const Calibration& cal, const CodecContext& ctx) const {
  const QttParams p = spec_.parse(r);
  return encode_with(W, p, p.calibration != "none" && cal.input_covariance ? &cal : nullptr, ctx);
}

v1::CompressedTensor QttCodec::encode_with(ConstMatrixRef W, const QttParams& p, const Calibration* cal, const CodecContext& ctx) const {
  const v1::CompressedTensor base = encode_base(W, p.base, base_params(p, W.rows(), W.cols()), cal, ctx);
  ctx.check_cancel();
  const bool io = p.orientation == "in_out";
  const MatrixRM Rs = W - base_codec(p.base).decode(base);  // stored shape
  const MatrixRM R = io ? MatrixRM(Rs.transpose()) : Rs;     // (out, in)
  const SatenLayout L = make_saten_layout(SatenLayoutKind::Mpo, R.rows(), R.cols(), int(p.order));
  const TensorTrain tt = layout_tt_svd(L, R, 0.0, std::vector<int64_t>(size_t(p.order - 1), p.rank));
  ctx.check_cancel();

  auto t = tensor_header(name(), W.rows(), W.cols());
  t.set_params_json(spec_.to_json(p).dump());
  t.add_arrays()->CopyFrom(find_array(base, "blocks"));
  const std::vector<int64_t> d{p.order}, d1{p.order + 1};
  t.add_arrays()->CopyFrom(make_array<int64_t>("out_modes", d, std::span<const int64_t>(L.out_modes)));
  t.add_arrays()->CopyFrom(make_array<int64_t>("in_modes", d, std::span<const int64_t>(L.in_modes)));
  t.add_arrays()->CopyFrom(make_array<int64_t>("ranks", d1, std::span<const int64_t>(tt.ranks)));
  for (size_t k = 0; k < tt.cores.size(); ++k) add_core_arrays(t, int(k), core_shape(L, tt.ranks, k), tt.cores[k], p.core_bits);
  ctx.report(1.0);
  return t;
}

MatrixRM QttCodec::decode(const v1::CompressedTensor& t) const {
  const std::string who = "qtt tensor '" + t.name() + "': ";
  auto [rows, cols] = matrix_shape(t);
  QttParams p;
  try {
    const json stored = t.params_json().empty() ? json::object() : json::parse(t.params_json());
    p = spec_.parse(stored);
    if (!stored.is_object() || !stored.contains("packing")) p.packing = "rows";  // written before the base had packing
  } catch (const json::exception&) {
    throw FormatError(who + "params_json is not JSON");
  } catch (const ParamError& e) {
    throw FormatError(who + e.what());
  }
  const bool io = p.orientation == "in_out";
  const int64_t out = io ? cols : rows, in = io ? rows : cols;
  const auto out_modes = read_modes(t, "out_modes", who), in_modes = read_modes(t, "in_modes", who);
  if (int64_t(out_modes.size()) != p.order || int64_t(in_modes.size()) != p.order) throw FormatError(who + "modes disagree with order");
  for (int64_t m : out_modes)
    if (m < 1 || m > out) throw FormatError(who + "output mode out of range");
  for (int64_t m : in_modes)
    if (m < 1 || m > in) throw FormatError(who + "input mode out of range");
  SatenLayout L;
  try {
    L = make_saten_layout(SatenLayoutKind::Mpo, out_modes, in_modes);
  } catch (const Error& e) {
    throw FormatError(who + e.what());
  }
  if (L.d_out != out || L.d_in != in) throw FormatError(who + "modes do not multiply to the shape");
  TensorTrain tt;
  tt.modes = L.tensor_modes();
  tt.ranks = read_modes(t, "ranks", who);
  if (int64_t(tt.ranks.size()) != p.order + 1 || tt.ranks.front() != 1 || tt.ranks.back() != 1)
    throw FormatError(who + "'ranks' must have order + 1 entries starting and ending with 1");
  for (int64_t r : tt.ranks)
    if (r < 1 || r > p.rank) throw FormatError(who + "a TT rank exceeds the rank cap");
  for (size_t k = 0; k < size_t(p.order); ++k) tt.cores.push_back(read_core_arrays(t, int(k), core_shape(L, tt.ranks, k), p.core_bits, who));
  json bp;
  try {
    bp = base_params(p, rows, cols);
  } catch (const ParamError& e) {
    throw FormatError(who + e.what());
  }
  MatrixRM M = decode_base(t, p.base, bp, rows, cols);
  const MatrixRM C = from_layout_tensor(L, tt.full());  // (out, in)
  if (io) M.noalias() += C.transpose();
  else M += C;
  return M;
}

// The base's working set, the residual and its layout tensor, TT-SVD's unfoldings and their SVDs
// (double), and the full correction at decode.
uint64_t QttCodec::working_set_bytes(int64_t rows, int64_t cols, const json& r, bool cal) const {
  const uint64_t mn = uint64_t(rows) * uint64_t(cols);
  const QttParams p = spec_.parse(r);
  return base_codec(p.base).working_set_bytes(rows, cols, base_params(p, rows, cols), cal) + 48 * mn;
}

}  // namespace tsm
