// "saten" (arXiv 2505.14871): W ~ TT(layout(W)) + S, tensor train plus sparse residual (this folder).
// Arrays (little-endian, row-major):
//   "in_modes" i64 (a), "out_modes" i64 (b), "ranks" i64 (d+1),
//   "core_k" for k = 0..d-1: saten layout (r_k, n_k, r_{k+1}); mpo (r_k, o_k, i_k, r_{k+1}); f32, or
//            with core_bits 8 / 4 i8 / packed u8 plus "core_scales_k" f32 (r_{k+1}) (tt_core_arrays.h)
//   unstructured: "sp_row_ptr" u32|i64 (d_out+1), "sp_cols" u16|u32 (nnz), "sp_values" f32 (nnz)
//   N:M:          "nm_values" f32 (d_out, d_in/M*N), "nm_index" u8 (ceil(d_out*d_in/M*N*bits/8)),
//                 bits = ceil(log2 M) per kept value = its position in its group, LSB first.
// Orientation: the fit always sees W as (d_out, d_in); with orientation "in_out" (GPT-2 Conv1D) the
// stored matrix is W^T, i.e. CompressedTensor.shape = (d_in, d_out) and decode() returns (d_in, d_out).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "methods/codec.h"
#include "methods/param_spec.h"
#include "methods/saten/saten_calibrate.h"
#include "methods/saten/saten_factors.h"

namespace tsm {

inline constexpr std::string_view kSatenMethod = "saten";

/// The parameters (JSON Schema and parse from one description in saten_codec.cpp). Resolved:
/// order, in_modes and out_modes set; exactly one of eps and ranks (a list of order - 1); density
/// set only for unstructured sparsity; index_bits 16 or 32.
struct SatenParams {
  std::string layout = "saten";                    ///< saten | mpo
  std::optional<int64_t> order;                    ///< TT cores, 1..16 (saten 4, mpo 3 when absent)
  std::optional<std::vector<int64_t>> in_modes;    ///< explicit input modes (with out_modes)
  std::optional<std::vector<int64_t>> out_modes;   ///< explicit output modes (with in_modes)
  std::optional<double> eps;                       ///< TT-SVD tolerance in [0, 1) (0.4 when neither is given)
  std::optional<IntOrList> ranks;                  ///< r_1..r_{d-1}, or one cap for all
  std::string sparsity = "unstructured";           ///< unstructured | none | "N:M" along the inputs
  std::optional<double> density;                   ///< kept fraction for unstructured (0.05 when absent)
  int index_bits = 0;                              ///< CSR column index width; 0 = 16 when d_in <= 65536
  int64_t refine_rounds = 3;                       ///< alternations TT(W - S) / S = top(W - TT), 0..50
  std::string orientation = "out_in";              ///< in_out: stored (in, out) as GPT-2 Conv1D
  int core_bits = 32;                              ///< 32 (f32), 8 or 4 bits per stored core element
  bool in_out() const { return orientation == "in_out"; }
};
/// Validates params for a stored (rows, cols) matrix; throws ParamError naming the field.
SatenParams resolve_saten_params(const json& params, int64_t rows, int64_t cols);
json saten_params_json(const SatenParams& p);

class SatenCodec : public Codec {
 public:
  std::string_view name() const override { return kSatenMethod; }
  std::string_view summary() const override;
  json param_schema() const override;
  json resolve(const json& params, int64_t rows, int64_t cols) const override;
  v1::CompressedTensor encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const override;
  MatrixRM decode(const v1::CompressedTensor& t) const override;
  uint64_t working_set_bytes(int64_t rows, int64_t cols, const json& resolved, bool calibrated) const override;
  bool calibrates() const override { return true; }
  /// saten_encode_calibrated with the whitening and Adam steps of `cal`.
  v1::CompressedTensor encode_calibrated(ConstMatrixRef W, const json& resolved, const Calibration& cal,
                                         const CodecContext& ctx) const override;
  /// saten_baselines.
  std::vector<v1::Baseline> own_baselines(ConstMatrixRef W, const json& resolved, uint64_t target_bytes,
                                          size_t source_dtype_size) const override;
};

/// Fit options from resolved params for a (d_out, d_in) matrix (after orientation).
SatenFitOptions saten_fit_options(const SatenParams& resolved, int64_t d_out, int64_t d_in);
/// Whether an artifact's params_json says the stored matrix is (in, out).
bool saten_in_out(const json& params);

/// The CompressedTensor of factors (shape and arrays, method "saten", params_json = resolved plus
/// "tt_ranks" and, when calibrated, "calibrated": true).
v1::CompressedTensor saten_to_proto(const SatenFactors& f, const SatenParams& resolved, bool calibrated = false);
/// Reads and validates every array; throws FormatError on any inconsistency.
SatenFactors saten_from_proto(const v1::CompressedTensor& t);

/// Calibration-aware encode: W in stored orientation, C = activation covariance (d_in, d_in).
v1::CompressedTensor saten_encode_calibrated(ConstMatrixRef W, const SatenParams& resolved, const MatrixRMd& C,
                                             const CalibrationOptions& cal, const CodecContext& ctx,
                                             CalibrationReport* report = nullptr);

/// Saten-specific baselines for W (stored orientation) at (nearest to) `target_bytes`: "tt" (plain TT,
/// same layout, uniform rank cap), "prune-2:4" (magnitude 2:4 alone, packed, its natural size) and
/// "prune" (unstructured magnitude pruning in CSR at equal bytes). compress_matrix adds svd/int8/...
std::vector<v1::Baseline> saten_baselines(ConstMatrixRef W, const SatenParams& resolved, uint64_t target_bytes,
                                          size_t source_dtype_size);

}  // namespace tsm
