#include "methods/saten/saten_codec.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/array_pack.h"
#include "methods/param_spec.h"
#include "common/tensor.h"
#include "metrics/metrics.h"
#include "methods/saten/saten_fit.h"
#include "methods/tt_core_arrays.h"

namespace tsm {

namespace {

constexpr int64_t kMaxRank = int64_t(1) << 20;

int nm_bits(int m) {
  int b = 1;
  while ((1 << b) < m) ++b;
  return b;
}

SatenLayout layout_from_params(const SatenParams& r, int64_t d_out, int64_t d_in) {
  const auto kind = parse_layout(r.layout);
  if (r.in_modes || r.out_modes) {
    if (!r.in_modes || !r.out_modes) throw ParamError("in_modes", "give both in_modes and out_modes");
    auto L = make_saten_layout(kind, *r.out_modes, *r.in_modes);
    if (L.d_out != d_out || L.d_in != d_in)
      throw ParamError("in_modes", "modes give a " + std::to_string(L.d_out) + "x" + std::to_string(L.d_in) +
                                       " matrix, the tensor is " + std::to_string(d_out) + "x" + std::to_string(d_in) +
                                       " (out x in)");
    if (kind == SatenLayoutKind::Saten && (L.in_modes.size() < 1 || L.out_modes.size() < 1))
      throw ParamError("in_modes", "saten layout needs at least one input and one output mode");
    return L;
  }
  return make_saten_layout(kind, d_out, d_in, static_cast<int>(r.order.value_or(kind == SatenLayoutKind::Saten ? 4 : 3)));
}

const ParamSpec<SatenParams>& saten_param_spec() {
  static const ParamSpec<SatenParams> spec(std::string(kSatenMethod), {
      choice_param("layout", &SatenParams::layout, {"saten", "mpo"},
                   "saten: W^T reshaped to input modes then output modes; mpo: interleaved TT-matrix"),
      integer_param("order", &SatenParams::order, 1, 16, "number of TT cores (default 4 for saten, 3 for mpo)"),
      int_list_param("in_modes", &SatenParams::in_modes, 1, "explicit input modes (with out_modes)"),
      int_list_param("out_modes", &SatenParams::out_modes, 1, "explicit output modes (with in_modes)"),
      number_param("eps", &SatenParams::eps, {0, 1, false, true},
                   "TT-SVD tolerance, delta = eps ||W||_F / sqrt(d-1) (default 0.4)"),
      int_or_list_param("ranks", &SatenParams::ranks, 1, "TT ranks r_1..r_{d-1} (or one cap for all)"),
      string_param("sparsity", &SatenParams::sparsity, "unstructured, none, or N:M such as 2:4 along the input dimension",
                   "^(unstructured|none|[0-9]+:[0-9]+)$"),
      number_param("density", &SatenParams::density, {0, 1}, "fraction of entries kept by unstructured sparsity (default 0.05)"),
      int_choice_param("index_bits", &SatenParams::index_bits, {0, 16, 32}, "CSR column index width; 0 = 16 when d_in <= 65536"),
      integer_param("refine_rounds", &SatenParams::refine_rounds, 0, 50, "alternations TT(W - S) / S = top(W - TT)"),
      choice_param("orientation", &SatenParams::orientation, {"out_in", "in_out"},
                   "in_out: the tensor is stored (in, out) as GPT-2 Conv1D"),
      int_choice_param("core_bits", &SatenParams::core_bits, {32, 8, 4},
                       "bits per stored TT core element: 32 (f32), 8 or 4 (symmetric, one scale per core column); "
                       "the sparse part is re-fitted to the rounded cores"),
  });
  return spec;
}

MatrixRM oriented(ConstMatrixRef W, bool in_out) { return in_out ? MatrixRM(W.transpose()) : MatrixRM(W); }

uint64_t array_bytes(const v1::Array& a) { return a.data().size() + 8ull * uint64_t(a.shape_size()); }

std::vector<int64_t> read_i64(const v1::CompressedTensor& t, const std::string& name) {
  const auto& a = find_array(t, name);
  const auto s = array_shape(a);
  if (s.size() != 1) throw FormatError("saten tensor '" + t.name() + "': '" + name + "' must be 1-D");
  return unpack<int64_t>(a);
}

/// Rounds f's cores to the stored precision (what decode will see); the sparse values become the
/// residual of the rounded train on their mask (the mask and so the bytes stay).
void round_cores(SatenFactors& f, int bits, ConstMatrixRef Wo) {
  if (bits == 32) return;
  for (int k = 0; k < f.tt.order(); ++k) f.tt.cores[size_t(k)] = round_core(f.tt.cores[size_t(k)], f.tt.ranks[size_t(k) + 1], bits);
  if (f.sparse.nnz() > 0) f.sparse.refill(Wo - f.tt_dense());
}

}  // namespace

std::string_view SatenCodec::summary() const {
  return "Saten: tensor train of the reshaped weight (input modes then output modes, or MPO) plus a sparse residual "
         "(unstructured CSR or N:M such as 2:4), refined by alternation; cores in f32, 8 or 4 bits (core_bits)";
}

SatenParams resolve_saten_params(const json& params, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) throw ParamError("shape", "saten needs a non-empty matrix");
  SatenParams p = saten_param_spec().parse(params);
  const int64_t d_out = p.in_out() ? cols : rows, d_in = p.in_out() ? rows : cols;
  const SatenLayout L = layout_from_params(p, d_out, d_in);
  const size_t d = L.tensor_modes().size();
  p.order = static_cast<int64_t>(d);
  p.in_modes = L.in_modes;
  p.out_modes = L.out_modes;

  if (p.eps && p.ranks) throw ParamError("eps", "give either eps or ranks, not both");
  if (p.ranks) {
    if (d < 2) throw ParamError("ranks", "a one-core train has no ranks");
    std::vector<int64_t> rk = p.ranks->scalar ? std::vector<int64_t>(d - 1, p.ranks->values[0]) : p.ranks->values;
    if (rk.size() != d - 1)
      throw ParamError("ranks", "needs " + std::to_string(d - 1) + " entries (order - 1), got " + std::to_string(rk.size()));
    for (auto& r : rk)
      if (r > kMaxRank) throw ParamError("ranks", "ranks above 2^20 are not supported");
    p.ranks = IntOrList{rk, false};
  } else {
    p.eps = p.eps.value_or(0.4);
  }

  const bool unstructured = p.sparsity == "unstructured";
  const SparsitySpec spec = SparsitySpec::parse(p.sparsity, p.density.value_or(0.05));
  if (spec.kind == SparsityKind::NM && d_in % spec.m != 0)
    throw ParamError("sparsity", p.sparsity + " needs the input dimension (" + std::to_string(d_in) + ") to be a multiple of " +
                                     std::to_string(spec.m));
  p.sparsity = spec.kind == SparsityKind::Unstructured || unstructured ? std::string("unstructured") : spec.str();
  p.density = unstructured ? std::optional<double>(spec.density) : std::nullopt;

  if (p.index_bits == 0) p.index_bits = d_in <= 65536 ? 16 : 32;
  if (p.index_bits == 16 && d_in > 65536) throw ParamError("index_bits", "16-bit indices need d_in <= 65536, got " + std::to_string(d_in));
  return p;
}

json saten_params_json(const SatenParams& p) { return saten_param_spec().to_json(p); }

json SatenCodec::param_schema() const { return saten_param_spec().schema(); }

json SatenCodec::resolve(const json& p, int64_t rows, int64_t cols) const {
  return saten_params_json(resolve_saten_params(p, rows, cols));
}

bool saten_in_out(const json& r) { return stored_in_out(r); }

SatenFitOptions saten_fit_options(const SatenParams& r, int64_t d_out, int64_t d_in) {
  SatenFitOptions o;
  o.layout = layout_from_params(r, d_out, d_in);
  if (r.ranks) o.ranks = r.ranks->values;
  o.eps = r.eps.value_or(0.0);
  o.sparsity = SparsitySpec::parse(r.sparsity, r.density.value_or(0.0));
  o.refine_rounds = static_cast<int>(r.refine_rounds);
  return o;
}

v1::CompressedTensor saten_to_proto(const SatenFactors& f, const SatenParams& resolved, bool calibrated) {
  const bool in_out = resolved.in_out();
  const auto& L = f.layout;
  v1::CompressedTensor t;
  t.set_method(std::string(kSatenMethod));
  t.add_shape(uint64_t(in_out ? L.d_in : L.d_out));
  t.add_shape(uint64_t(in_out ? L.d_out : L.d_in));
  json used = saten_params_json(resolved);
  used["tt_ranks"] = f.tt.ranks;
  if (calibrated) used["calibrated"] = true;
  t.set_params_json(used.dump());
  auto add = [&](v1::Array a) { t.add_arrays()->Swap(&a); };
  add(make_array<int64_t>("in_modes", std::vector<int64_t>{int64_t(L.in_modes.size())}, std::span<const int64_t>(L.in_modes)));
  add(make_array<int64_t>("out_modes", std::vector<int64_t>{int64_t(L.out_modes.size())}, std::span<const int64_t>(L.out_modes)));
  add(make_array<int64_t>("ranks", std::vector<int64_t>{int64_t(f.tt.ranks.size())}, std::span<const int64_t>(f.tt.ranks)));
  for (int k = 0; k < f.tt.order(); ++k) {
    std::vector<int64_t> shape;
    if (L.kind == SatenLayoutKind::Saten)
      shape = {f.tt.ranks[k], f.tt.modes[k], f.tt.ranks[k + 1]};
    else
      shape = {f.tt.ranks[k], L.out_modes[k], L.in_modes[k], f.tt.ranks[k + 1]};
    add_core_arrays(t, k, shape, f.tt.cores[k], resolved.core_bits);
  }
  const SparsitySpec spec = SparsitySpec::parse(resolved.sparsity, resolved.density.value_or(0.0));
  const auto& S = f.sparse;
  if (spec.kind == SparsityKind::NM) {
    if (!S.satisfies_nm(spec.n, spec.m)) throw Error("saten: sparse residual does not follow " + spec.str());
    const int64_t groups = L.d_in / spec.m, per_row = groups * spec.n;
    const int bits = nm_bits(spec.m);
    std::vector<float> vals(size_t(L.d_out * per_row), 0.f);
    std::vector<uint8_t> meta(size_t((L.d_out * per_row * bits + 7) / 8), 0);
    // Every group holds exactly n slots; a group with fewer kept entries (never produced by the fit)
    // is padded with zero values at unused positions so the positions stay strictly increasing.
    for (int64_t r = 0; r < L.d_out; ++r) {
      int64_t p = S.row_ptr[r];
      for (int64_t g = 0; g < groups; ++g) {
        std::vector<int> pos;
        std::vector<float> v;
        while (p < S.row_ptr[r + 1] && S.col[p] / spec.m == g) {
          pos.push_back(int(S.col[p] % spec.m));
          v.push_back(S.values[p]);
          ++p;
        }
        for (int j = 0; int(pos.size()) < spec.n; ++j)
          if (std::find(pos.begin(), pos.end(), j) == pos.end()) { pos.push_back(j); v.push_back(0.f); }
        std::vector<int> order(pos.size());
        for (size_t q = 0; q < order.size(); ++q) order[q] = int(q);
        std::sort(order.begin(), order.end(), [&](int a, int b) { return pos[a] < pos[b]; });
        for (int j = 0; j < spec.n; ++j) {
          const int64_t slot = r * per_row + g * spec.n + j;
          vals[slot] = v[order[j]];
          const uint64_t bit0 = uint64_t(slot) * bits;
          for (int b = 0; b < bits; ++b)
            if ((pos[order[j]] >> b) & 1) meta[(bit0 + b) / 8] |= uint8_t(1u << ((bit0 + b) % 8));
        }
      }
    }
    add(make_array<float>("nm_values", std::vector<int64_t>{L.d_out, per_row}, std::span<const float>(vals)));
    add(make_array<uint8_t>("nm_index", std::vector<int64_t>{int64_t(meta.size())}, std::span<const uint8_t>(meta)));
  } else if (S.nnz() > 0) {
    const int bits = resolved.index_bits == 32 || L.d_in > 65536 ? 32 : 16;
    const std::vector<int64_t> rp_shape{L.d_out + 1}, nnz_shape{S.nnz()};
    if (S.nnz() < (int64_t(1) << 32)) {
      std::vector<uint32_t> rp(S.row_ptr.begin(), S.row_ptr.end());
      add(make_array<uint32_t>("sp_row_ptr", rp_shape, std::span<const uint32_t>(rp)));
    } else {
      add(make_array<int64_t>("sp_row_ptr", rp_shape, std::span<const int64_t>(S.row_ptr)));
    }
    if (bits == 16) {
      std::vector<uint16_t> c(S.col.begin(), S.col.end());
      add(make_array<uint16_t>("sp_cols", nnz_shape, std::span<const uint16_t>(c)));
    } else {
      std::vector<uint32_t> c(S.col.begin(), S.col.end());
      add(make_array<uint32_t>("sp_cols", nnz_shape, std::span<const uint32_t>(c)));
    }
    add(make_array<float>("sp_values", nnz_shape, std::span<const float>(S.values)));
  }
  return t;
}

SatenFactors saten_from_proto(const v1::CompressedTensor& t) {
  const std::string who = "saten tensor '" + t.name() + "': ";
  if (t.shape_size() != 2 || t.shape(0) < 1 || t.shape(1) < 1 || t.shape(0) > (uint64_t(1) << 31) ||
      t.shape(1) > (uint64_t(1) << 31))
    throw FormatError(who + "shape must be (rows, cols) with 1 <= each < 2^31");
  json params;
  try {
    params = json::parse(t.params_json());
  } catch (const std::exception& e) {
    throw FormatError(who + "params_json is not JSON: " + e.what());
  }
  if (!params.is_object()) throw FormatError(who + "params_json must be an object");
  SatenFactors f;
  try {
    const bool in_out = saten_in_out(params);
    const int64_t d_out = int64_t(in_out ? t.shape(1) : t.shape(0)), d_in = int64_t(in_out ? t.shape(0) : t.shape(1));
    const auto kind = parse_layout(params.value("layout", std::string("saten")));
    const json& jb = params.contains("core_bits") ? params["core_bits"] : json(32);
    if (!jb.is_number_integer()) throw FormatError(who + "core_bits must be an integer");
    const int bits = checked_core_bits(jb.get<int64_t>());
    auto in_modes = read_i64(t, "in_modes"), out_modes = read_i64(t, "out_modes");
    if (in_modes.size() > 16 || out_modes.size() > 16) throw FormatError(who + "too many modes");
    for (int64_t m : in_modes)
      if (m < 1 || m > d_in) throw FormatError(who + "input mode out of range");
    for (int64_t m : out_modes)
      if (m < 1 || m > d_out) throw FormatError(who + "output mode out of range");
    f.layout = make_saten_layout(kind, out_modes, in_modes);
    if (f.layout.d_out != d_out || f.layout.d_in != d_in) throw FormatError(who + "modes do not multiply to the shape");
    const auto modes = f.layout.tensor_modes();
    const int d = int(modes.size());
    f.tt.modes = modes;
    f.tt.ranks = read_i64(t, "ranks");
    if (int(f.tt.ranks.size()) != d + 1 || f.tt.ranks.front() != 1 || f.tt.ranks.back() != 1)
      throw FormatError(who + "'ranks' must have order+1 entries starting and ending with 1");
    for (int64_t r : f.tt.ranks)
      if (r < 1 || r > kMaxRank) throw FormatError(who + "rank " + std::to_string(r) + " out of range");
    for (int k = 0; k < d; ++k) {
      const std::vector<int64_t> want = kind == SatenLayoutKind::Saten
                                            ? std::vector<int64_t>{f.tt.ranks[k], modes[k], f.tt.ranks[k + 1]}
                                            : std::vector<int64_t>{f.tt.ranks[k], out_modes[k], in_modes[k], f.tt.ranks[k + 1]};
      f.tt.cores.push_back(read_core_arrays(t, k, want, bits, who));
    }
    f.sparse = SparseResidual::empty(d_out, d_in);
    if (const auto* nv = try_find_array(t, "nm_values")) {
      const SparsitySpec spec = SparsitySpec::parse(params.value("sparsity", std::string()), 0.0);
      if (spec.kind != SparsityKind::NM) throw FormatError(who + "has N:M arrays but sparsity is not N:M");
      if (d_in % spec.m != 0) throw FormatError(who + "d_in is not a multiple of M");
      const int64_t groups = d_in / spec.m, per_row = groups * spec.n;
      const int bits = nm_bits(spec.m);
      if (array_shape(*nv) != std::vector<int64_t>{d_out, per_row} || nv->dtype() != v1::F32)
        throw FormatError(who + "'nm_values' must be f32 (" + std::to_string(d_out) + ", " + std::to_string(per_row) + ")");
      const auto& mi = find_array(t, "nm_index");
      const int64_t meta_bytes = (d_out * per_row * bits + 7) / 8;
      if (array_shape(mi) != std::vector<int64_t>{meta_bytes} || mi.dtype() != v1::U8)
        throw FormatError(who + "'nm_index' must be u8 (" + std::to_string(meta_bytes) + ")");
      const auto vals = unpack<float>(*nv);
      const auto meta = unpack<uint8_t>(mi);
      f.sparse.col.resize(vals.size());
      f.sparse.values = vals;
      for (int64_t slot = 0; slot < d_out * per_row; ++slot) {
        const uint64_t bit0 = uint64_t(slot) * bits;
        int pos = 0;
        for (int b = 0; b < bits; ++b) pos |= ((meta[(bit0 + b) / 8] >> ((bit0 + b) % 8)) & 1) << b;
        if (pos >= spec.m) throw FormatError(who + "N:M position " + std::to_string(pos) + " >= M");
        const int64_t g = (slot % per_row) / spec.n;
        f.sparse.col[slot] = int32_t(g * spec.m + pos);
      }
      for (int64_t r = 0; r <= d_out; ++r) f.sparse.row_ptr[r] = r * per_row;
    } else if (const auto* rp = try_find_array(t, "sp_row_ptr")) {
      const auto& ca = find_array(t, "sp_cols");
      const auto& va = find_array(t, "sp_values");
      if (array_shape(*rp) != std::vector<int64_t>{d_out + 1}) throw FormatError(who + "'sp_row_ptr' must have d_out+1 entries");
      if (va.dtype() != v1::F32 || array_shape(va).size() != 1 || array_shape(ca) != array_shape(va))
        throw FormatError(who + "'sp_cols' and 'sp_values' (f32) must be 1-D of the same length");
      if (rp->dtype() == v1::U32) {
        const auto v = unpack<uint32_t>(*rp);
        f.sparse.row_ptr.assign(v.begin(), v.end());
      } else {
        f.sparse.row_ptr = unpack<int64_t>(*rp);
      }
      if (ca.dtype() == v1::U16) {
        const auto v = unpack<uint16_t>(ca);
        f.sparse.col.assign(v.begin(), v.end());
      } else {
        const auto v = unpack<uint32_t>(ca);
        f.sparse.col.resize(v.size());
        for (size_t i = 0; i < v.size(); ++i) {
          if (v[i] > uint32_t(std::numeric_limits<int32_t>::max())) throw FormatError(who + "column index out of range");
          f.sparse.col[i] = int32_t(v[i]);
        }
      }
      f.sparse.values = unpack<float>(va);
    }
    f.validate();
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {  // ParamError from layout/sparsity parsing: the stored params are bad
    throw FormatError(who + e.what());
  }
  return f;
}

v1::CompressedTensor SatenCodec::encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const {
  const SatenParams r = resolve_saten_params(resolved, W.rows(), W.cols());
  const bool in_out = r.in_out();
  const MatrixRM Wo = oriented(W, in_out);
  SatenFitOptions o = saten_fit_options(r, Wo.rows(), Wo.cols());
  o.on_round = [&](int round) {
    ctx.check_cancel();
    ctx.report(double(round) / (o.refine_rounds + 1));
  };
  SatenFactors f = saten_fit(Wo, o);
  round_cores(f, r.core_bits, Wo);
  ctx.report(1.0);
  return saten_to_proto(f, r);
}

MatrixRM SatenCodec::decode(const v1::CompressedTensor& t) const {
  const SatenFactors f = saten_from_proto(t);
  MatrixRM W = f.reconstruct();
  const json p = json::parse(t.params_json());
  return saten_in_out(p) ? MatrixRM(W.transpose()) : W;
}

v1::CompressedTensor saten_encode_calibrated(ConstMatrixRef W, const SatenParams& r, const MatrixRMd& C,
                                             const CalibrationOptions& cal, const CodecContext& ctx,
                                             CalibrationReport* report) {
  const bool in_out = r.in_out();
  const MatrixRM Wo = oriented(W, in_out);
  SatenFitOptions o = saten_fit_options(r, Wo.rows(), Wo.cols());
  o.on_round = [&](int) { ctx.check_cancel(); };
  CalibrationOptions c = cal;
  const auto user_step = cal.on_step;
  c.on_step = [&](int step) {
    ctx.check_cancel();
    if (cal.adam_steps > 0) ctx.report(double(step) / cal.adam_steps);
    if (user_step) user_step(step);
  };
  SatenFactors f = saten_fit_calibrated(Wo, C, o, c, report);
  round_cores(f, r.core_bits, Wo);
  return saten_to_proto(f, r, true);
}

v1::CompressedTensor SatenCodec::encode_calibrated(ConstMatrixRef W, const json& resolved, const Calibration& cal,
                                                   const CodecContext& ctx) const {
  if (!cal.input_covariance) throw Error("saten: calibration without an input covariance");
  CalibrationOptions c;
  c.whitening = parse_whitening(cal.whitening);
  c.adam_steps = cal.adam_steps;
  return saten_encode_calibrated(W, resolve_saten_params(resolved, W.rows(), W.cols()), *cal.input_covariance, c, ctx);
}

std::vector<v1::Baseline> SatenCodec::own_baselines(ConstMatrixRef W, const json& resolved, uint64_t target_bytes,
                                                    size_t source_dtype_size) const {
  return saten_baselines(W, resolve_saten_params(resolved, W.rows(), W.cols()), target_bytes, source_dtype_size);
}

std::vector<v1::Baseline> saten_baselines(ConstMatrixRef W, const SatenParams& r, uint64_t target_bytes, size_t src_size) {
  const bool in_out = r.in_out();
  const MatrixRM Wo = oriented(W, in_out);
  const int64_t d_out = Wo.rows(), d_in = Wo.cols();
  std::vector<v1::Baseline> out;
  auto add = [&](const std::string& method, const json& params, const MatrixRM& Wh_o, uint64_t bytes) {
    v1::Baseline b;
    b.set_method(method);
    b.set_params_json(params.dump());
    const MatrixRM Wh = in_out ? MatrixRM(Wh_o.transpose()) : Wh_o;
    fill_metrics(*b.mutable_metrics(), error_stats(W, Wh), bytes, W.rows(), W.cols(), src_size);
    out.push_back(std::move(b));
  };
  const uint64_t meta = 16 + 8 * 3;  // shape + the three small arrays' shapes (as stored_bytes counts them)

  // Plain TT in the same layout, uniform rank cap nearest to the target bytes.
  {
    const SatenLayout L = layout_from_params(r, d_out, d_in);
    const auto modes = L.tensor_modes();
    const int d = int(modes.size());
    auto bytes_for = [&](int64_t cap) {
      std::vector<int64_t> rk(d + 1, 1);
      double left = 1;
      for (int k = 1; k < d; ++k) {
        left *= double(modes[k - 1]);
        double right = 1;
        for (int j = k; j < d; ++j) right *= double(modes[j]);
        rk[k] = int64_t(std::min<double>({double(cap), left, right, double(rk[k - 1] * modes[k - 1])}));
      }
      uint64_t b = meta + 8 * (modes.size() + d + 1 + 2) + 8 * 4 * d;
      for (int k = 0; k < d; ++k) b += 4ull * rk[k] * modes[k] * rk[k + 1];
      return b;
    };
    int64_t lo = 1, hi = 1;
    while (hi < kMaxRank && bytes_for(hi) < target_bytes && bytes_for(hi * 2) != bytes_for(hi)) hi *= 2;
    while (lo < hi) {  // smallest cap with bytes >= target, then pick the nearer neighbour
      const int64_t mid = (lo + hi) / 2;
      if (bytes_for(mid) >= target_bytes) hi = mid; else lo = mid + 1;
    }
    int64_t cap = lo;
    if (cap > 1 && std::llabs(int64_t(bytes_for(cap - 1)) - int64_t(target_bytes)) <
                       std::llabs(int64_t(bytes_for(cap)) - int64_t(target_bytes)))
      --cap;
    if (d >= 2) {
      const TensorTrain tt = layout_tt_svd(L, Wo, 0.0, std::vector<int64_t>(d - 1, cap));
      SatenFactors f;
      f.layout = L;
      f.tt = tt;
      f.sparse = SparseResidual::empty(d_out, d_in);
      SatenParams rr = r;
      rr.sparsity = "none";
      rr.density.reset();
      rr.core_bits = 32;  // the plain-TT baseline is f32, as its byte count assumes
      const auto t = saten_to_proto(f, rr);
      uint64_t b = 16;
      for (const auto& a : t.arrays()) b += array_bytes(a);
      add("tt", json{{"layout", layout_name(L.kind)}, {"rank_cap", cap}, {"ranks", tt.ranks}}, f.reconstruct(), b);
    }
  }
  // 2:4 magnitude pruning alone (its natural size: half the values in f32 + 2-bit positions).
  if (d_in % 4 == 0) {
    const auto S = select_sparse(Wo, SparsitySpec::parse("2:4", 0));
    const uint64_t vals = uint64_t(S.nnz()) * 4, idx = (uint64_t(S.nnz()) * 2 + 7) / 8;
    add("prune-2:4", json{{"sparsity", "2:4"}}, S.dense(), 16 + vals + 16 + idx + 8);
  }
  // Unstructured magnitude pruning at equal bytes (CSR: u32 row_ptr, u16/u32 cols, f32 values).
  {
    const uint64_t idx_bytes = d_in <= 65536 ? 2 : 4;
    const uint64_t fixed = 16 + 4ull * (d_out + 1) + 8 * 3;
    if (target_bytes > fixed) {
      const double k = double(target_bytes - fixed) / double(4 + idx_bytes);
      const double density = std::min(1.0, k / double(d_out * d_in));
      const auto S = select_sparse(Wo, SparsitySpec::parse("unstructured", density));
      add("prune", json{{"density", density}}, S.dense(), fixed + uint64_t(S.nnz()) * (4 + idx_bytes));
    }
  }
  return out;
}

// TT-SVD on double unfoldings of W (a few full copies), the dense residual and its top-k in each
// refinement round; calibrated: the input covariance's factors (d_in^2 doubles, several) and the
// whitened matrix.
uint64_t SatenCodec::working_set_bytes(int64_t rows, int64_t cols, const json& r, bool cal) const {
  const uint64_t mn = uint64_t(rows) * uint64_t(cols), in = uint64_t(std::max(rows, cols));
  return Codec::working_set_bytes(rows, cols, r, cal) + 100 * mn + (cal ? 48 * in * in + 24 * mn : 0);
}

}  // namespace tsm
