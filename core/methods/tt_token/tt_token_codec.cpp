#include "methods/tt_token/tt_token_codec.h"

#include "methods/tt_token/token_train_table.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <queue>
#include <string>

#include "formats/array_pack.h"
#include "methods/param_spec.h"
#include "methods/tt_token/tt_token_limits.h"
#include "common/tensor.h"
#include "tt/small_tt_svd.h"
#include "tt/tensorize.h"

namespace tsm {

namespace {

using namespace tt_token;


// ---- parameters ---------------------------------------------------------------------------------

struct TtParams {
  std::vector<int64_t> shape;   // n_1..n_m
  enum Mode { Ranks, Eps, Ratio } mode = Ranks;
  std::vector<int64_t> ranks;   // r_1..r_{m-1} (Ranks)
  double eps = 0, ratio = 0;
  DType dtype = DType::F32;
};

std::vector<int64_t> full_ranks(const std::vector<int64_t>& shape) {
  const int m = static_cast<int>(shape.size());
  int64_t numel = 1;
  for (int64_t n : shape) numel *= n;
  std::vector<int64_t> r(m + 1, 1);
  int64_t left = 1;
  for (int k = 0; k < m - 1; ++k) {
    left *= shape[k];
    r[k + 1] = std::min(left, numel / left);
  }
  return r;
}


std::string dtype_param_name(DType t) { return t == DType::I8 ? "int8" : std::string(dtype_name(t)); }

// Ragged layout byte accounting, matching Codec::stored_bytes (array data + 8 per shape entry).
struct RaggedCost {
  size_t dsize, off_size;
  int m;
  bool int8;
  uint64_t fixed() const {  // tensor shape, modes, token_ranks, offsets, cores (+ scales) headers
    return 16 + (8ull * m + 8) + 16 + 8 + off_size + 8 + (int8 ? 16 : 0);
  }
  uint64_t per_token_meta() const { return 2ull * (m - 1) + off_size + (int8 ? 4ull * m : 0); }
};

size_t offsets_size(int64_t rows, std::span<const int64_t> modes) {
  auto fr = full_ranks(std::vector<int64_t>(modes.begin(), modes.end()));
  return static_cast<double>(rows) * static_cast<double>(token_elems(modes, fr)) < 4.0e9 ? 4 : 8;
}

const ParamSpec<TtTokenParams>& tt_param_spec() {
  static const ParamSpec<TtTokenParams> spec(std::string(kTtTokenMethod), {
      int_list_param("shape", &TtTokenParams::shape, 1,
                     "modes n_1..n_m of each row (product = row length), or auto (balanced factorization)", "auto"),
      integer_param("order", &TtTokenParams::order, 1, kMaxOrder, "number of modes for shape auto (default 3)"),
      int_or_list_param("ranks", &TtTokenParams::ranks, 1, "fixed TT ranks r_1..r_{m-1} shared by all tokens (default 4 each)"),
      number_param("eps", &TtTokenParams::eps, {0, 1}, "per-token relative error bound; ranks vary per token"),
      number_param("ratio", &TtTokenParams::ratio, {0, std::numeric_limits<double>::infinity(), true},
                   "dense f32 bytes / stored bytes; ranks allocated globally"),
      choice_param("core_dtype", &TtTokenParams::core_dtype, {"f32", "f16", "bf16", "int8"}, "storage type of the cores",
                   {{"float32", "f32"}, {"float16", "f16"}, {"bfloat16", "bf16"}, {"i8", "int8"}}),
  });
  return spec;
}

TtParams parse_params(const json& p, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) throw ParamError("shape", "tt-token needs a non-empty (rows, cols) matrix");
  const TtTokenParams g = tt_param_spec().parse(p);
  TtParams t;
  // shape
  if (!g.shape) {
    t.shape = balanced_factorization(cols, static_cast<int>(g.order.value_or(3)));
  } else {
    if (g.order) throw ParamError("order", "only applies with shape \"auto\"");
    if (g.shape->size() > kMaxOrder) throw ParamError("shape", "needs 1.." + std::to_string(kMaxOrder) + " modes");
    t.shape = *g.shape;
    validate_shape(t.shape, cols);
  }
  const int m = static_cast<int>(t.shape.size());
  const auto fr = full_ranks(t.shape);
  // rank mode
  if (int(g.ranks.has_value()) + int(g.eps.has_value()) + int(g.ratio.has_value()) > 1)
    throw ParamError("ranks", "give exactly one of ranks, eps, ratio");
  if (g.eps) {
    t.mode = TtParams::Eps;
    t.eps = *g.eps;
  } else if (g.ratio) {
    t.mode = TtParams::Ratio;
    t.ratio = *g.ratio;
  } else {
    t.mode = TtParams::Ranks;
    if (g.ranks && g.ranks->scalar) {
      for (int k = 1; k < m; ++k) t.ranks.push_back(std::min(g.ranks->values[0], fr[k]));
    } else if (g.ranks) {
      if (static_cast<int>(g.ranks->values.size()) != m - 1)
        throw ParamError("ranks", "needs " + std::to_string(m - 1) + " entries r_1..r_" + std::to_string(m - 1) + " for " +
                                      std::to_string(m) + " modes, got " + std::to_string(g.ranks->values.size()));
      t.ranks = g.ranks->values;
    } else {
      for (int k = 1; k < m; ++k) t.ranks.push_back(std::min<int64_t>(4, fr[k]));
    }
    std::vector<int64_t> r{1};
    r.insert(r.end(), t.ranks.begin(), t.ranks.end());
    r.push_back(1);
    for (int k = 1; k < m; ++k) {
      if (r[k] < 1) throw ParamError("ranks", "every rank must be >= 1");
      if (r[k] > fr[k])
        throw ParamError("ranks", "r_" + std::to_string(k) + " = " + std::to_string(r[k]) + " exceeds the full rank " +
                                      std::to_string(fr[k]) + " of this shape");
    }
    for (int k = 1; k < m; ++k)
      if (r[k] > r[k - 1] * t.shape[k - 1] || r[k] > t.shape[k] * r[k + 1])
        throw ParamError("ranks", "r_" + std::to_string(k) + " = " + std::to_string(r[k]) +
                                      " must be <= r_{k-1} * n_k and <= n_{k+1} * r_{k+1} (inconsistent ranks)");
  }
  // storage dtype
  t.dtype = parse_dtype(g.core_dtype);
  if (t.mode == TtParams::Ratio) {
    RaggedCost rc{dtype_size(t.dtype), offsets_size(rows, t.shape), m, t.dtype == DType::I8};
    std::vector<int64_t> ones(m + 1, 1);
    const double min_bytes = rc.fixed() + rows * (rc.per_token_meta() + token_elems(t.shape, ones) * rc.dsize);
    const double budget = double(rows) * double(cols) * 4.0 / t.ratio;
    if (min_bytes > budget)
      throw ParamError("ratio", "ratio " + std::to_string(t.ratio) + " is out of reach: all ranks 1 already need " +
                                    std::to_string(static_cast<uint64_t>(min_bytes)) + " bytes (ratio " +
                                    std::to_string(double(rows) * cols * 4.0 / min_bytes) + ")");
  }
  return t;
}

json to_json(const TtParams& t) {
  TtTokenParams g;
  g.shape = t.shape;
  if (t.mode == TtParams::Ranks) g.ranks = IntOrList{t.ranks, false};
  if (t.mode == TtParams::Eps) g.eps = t.eps;
  if (t.mode == TtParams::Ratio) g.ratio = t.ratio;
  g.core_dtype = dtype_param_name(t.dtype);
  return tt_param_spec().to_json(g);
}

// ---- core storage -------------------------------------------------------------------------------

// Typed output buffer for cores of one dtype: f32 / f16 / bf16 / i8 (+ per token-and-core scale).
struct CoreSink {
  explicit CoreSink(DType d) : dtype(d) {}
  DType dtype;
  std::vector<float> f32;
  std::vector<uint16_t> u16;
  std::vector<int8_t> i8;
  void resize(int64_t n) {
    if (dtype == DType::F32) f32.resize(n);
    else if (dtype == DType::I8) i8.resize(n);
    else u16.resize(n);
  }
  // Writes n doubles at element offset `at`; returns the int8 scale (1 for float dtypes).
  float put(const double* src, int64_t n, int64_t at) {
    switch (dtype) {
      case DType::F32:
        for (int64_t i = 0; i < n; ++i) f32[at + i] = static_cast<float>(src[i]);
        return 1.f;
      case DType::F16:
        for (int64_t i = 0; i < n; ++i) u16[at + i] = float_to_half(static_cast<float>(src[i]));
        return 1.f;
      case DType::BF16:
        for (int64_t i = 0; i < n; ++i) u16[at + i] = float_to_bf16(static_cast<float>(src[i]));
        return 1.f;
      default: {
        double mx = 0;
        for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::abs(src[i]));
        const float scale = static_cast<float>(mx / 127.0);
        const double inv = mx > 0 ? 127.0 / mx : 0.0;
        for (int64_t i = 0; i < n; ++i) i8[at + i] = static_cast<int8_t>(std::lrint(std::clamp(src[i] * inv, -127.0, 127.0)));
        return scale;
      }
    }
  }
  v1::Array to_array(const std::string& name, std::span<const int64_t> shape) const {
    switch (dtype) {
      case DType::F32: return make_array(name, DType::F32, shape, f32.data(), f32.size() * 4);
      case DType::I8: return make_array(name, DType::I8, shape, i8.data(), i8.size());
      default: return make_array(name, dtype, shape, u16.data(), u16.size() * 2);
    }
  }
};

// Runs fn(thread_workspace, t) for every row t on ctx.threads threads, with progress and cancellation.
template <class Fn>
void for_each_row(int64_t rows, const std::vector<int64_t>& shape, const CodecContext& ctx, double p0, double p1, Fn fn) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> done{0};
  const int threads = std::max(1, ctx.threads);
  constexpr int64_t kChunk = 512;
#pragma omp parallel num_threads(threads)
  {
    SmallTtSvd ws(shape);
#pragma omp for schedule(dynamic, 1)
    for (int64_t c0 = 0; c0 < rows; c0 += kChunk) {
      if (stop.load(std::memory_order_relaxed)) continue;
      if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed)) {
        stop = true;
        continue;
      }
      const int64_t c1 = std::min(rows, c0 + kChunk);
      for (int64_t t = c0; t < c1; ++t) fn(ws, t);
      int64_t d = done.fetch_add(c1 - c0) + (c1 - c0);
      if (omp_get_thread_num() == 0) ctx.report(p0 + (p1 - p0) * double(d) / double(rows));
    }
  }
  if (stop) throw Canceled();
}

// ---- rank allocation for `ratio` ----------------------------------------------------------------

struct Candidate {
  uint64_t bytes;   // core bytes
  double err2;      // squared error of the token
  uint32_t id;      // index into the token's rank list
};

// Lower convex hull of (bytes, err2) with strictly falling error, starting at the smallest bytes.
std::vector<Candidate> lower_hull(std::vector<Candidate> c) {
  std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
    return a.bytes != b.bytes ? a.bytes < b.bytes : a.err2 < b.err2;
  });
  std::vector<Candidate> h;
  for (const auto& p : c) {
    if (!h.empty() && p.err2 >= h.back().err2) continue;
    while (h.size() >= 2) {
      const auto& a = h[h.size() - 2];
      const auto& b = h.back();
      // b lies on or above the segment a-p: drop it
      const double lhs = (a.err2 - b.err2) * double(p.bytes - a.bytes);
      const double rhs = (a.err2 - p.err2) * double(b.bytes - a.bytes);
      if (lhs <= rhs) h.pop_back();
      else break;
    }
    h.push_back(p);
  }
  return h;
}

}  // namespace

// ---- codec --------------------------------------------------------------------------------------

std::string_view TtTokenCodec::summary() const {
  return "TensorSLM: every embedding row as its own tensor train (TT-SVD); fixed ranks, per-token eps, or a global size ratio";
}

json TtTokenCodec::param_schema() const { return tt_param_spec().schema(); }

json TtTokenCodec::resolve(const json& params, int64_t rows, int64_t cols) const {
  return to_json(parse_params(params, rows, cols));
}

uint64_t TtTokenCodec::stored_bytes(const v1::CompressedTensor& t) const { return Codec::stored_bytes(t); }

v1::CompressedTensor TtTokenCodec::encode(ConstMatrixRef W, const json& resolved, const CodecContext& ctx) const {
  const int64_t rows = W.rows(), cols = W.cols();
  const TtParams P = parse_params(resolved, rows, cols);
  const int m = static_cast<int>(P.shape.size());
  const bool int8 = P.dtype == DType::I8;
  if (!ctx.row_weights.empty() && static_cast<int64_t>(ctx.row_weights.size()) != rows)
    throw Error("tt-token: row_weights has " + std::to_string(ctx.row_weights.size()) + " entries for " + std::to_string(rows) + " rows");

  v1::CompressedTensor out;
  out.set_method(std::string(kTtTokenMethod));
  out.add_shape(rows);
  out.add_shape(cols);
  out.set_params_json(to_json(P).dump());
  const std::vector<int64_t> mshape{m};
  out.add_arrays()->CopyFrom(make_array<int64_t>("modes", mshape, P.shape));
  std::vector<float> scales(int8 ? rows * m : 0);  // (rows, m)

  if (P.mode == TtParams::Ranks) {
    std::vector<int64_t> r{1};
    r.insert(r.end(), P.ranks.begin(), P.ranks.end());
    r.push_back(1);
    std::vector<CoreSink> sinks(m, CoreSink(P.dtype));
    std::vector<int64_t> stride(m);
    for (int k = 0; k < m; ++k) {
      stride[k] = r[k] * P.shape[k] * r[k + 1];
      sinks[k].resize(rows * stride[k]);
    }
    for_each_row(rows, P.shape, ctx, 0.0, 1.0, [&](SmallTtSvd& ws, int64_t t) {
      ws.run(W.row(t).data(), P.ranks, 0.0);
      for (int k = 0; k < m; ++k) {
        const float s = sinks[k].put(ws.core(k), stride[k], t * stride[k]);
        if (int8) scales[t * m + k] = s;
      }
    });
    const std::vector<int64_t> rshape{m + 1};
    out.add_arrays()->CopyFrom(make_array<int64_t>("ranks", rshape, r));
    for (int k = 0; k < m; ++k) {
      const std::vector<int64_t> cs{rows, r[k], P.shape[k], r[k + 1]};
      out.add_arrays()->CopyFrom(sinks[k].to_array("core_" + std::to_string(k), cs));
    }
  } else {
    // Pass 1: per-token ranks (eps: the per-token TT-SVD; ratio: global greedy allocation).
    std::vector<uint16_t> tr(static_cast<size_t>(rows) * (m - 1));  // (rows, m-1)
    if (P.mode == TtParams::Eps) {
      for_each_row(rows, P.shape, ctx, 0.0, 0.5, [&](SmallTtSvd& ws, int64_t t) {
        const float* x = W.row(t).data();
        double n2 = 0;
        for (int64_t j = 0; j < cols; ++j) n2 += double(x[j]) * x[j];
        ws.run(x, {}, m > 1 ? P.eps * P.eps * n2 / (m - 1) : 0.0);
        for (int k = 1; k < m; ++k) tr[t * (m - 1) + k - 1] = static_cast<uint16_t>(ws.ranks()[k]);
      });
    } else {
      const size_t dsize = dtype_size(P.dtype);
      RaggedCost rc{dsize, offsets_size(rows, P.shape), m, int8};
      const double budget = std::floor(double(rows) * double(cols) * 4.0 / P.ratio);
      // candidate rank lists per token: uniform levels L = 1..max (r_k = min(L, full)), and per-token eps ladders
      const auto fr = full_ranks(P.shape);
      const int64_t maxL = *std::max_element(fr.begin(), fr.end());
      static const double kEps[] = {0.7, 0.5, 0.35, 0.25, 0.17, 0.12, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005, 0.001};
      std::vector<std::vector<Candidate>> hulls(rows);
      std::vector<std::vector<uint16_t>> cand_ranks(rows);  // per token: (candidates, m-1)
      for_each_row(rows, P.shape, ctx, 0.0, 0.5, [&](SmallTtSvd& ws, int64_t t) {
        const float* x = W.row(t).data();
        double n2 = 0;
        for (int64_t j = 0; j < cols; ++j) n2 += double(x[j]) * x[j];
        std::vector<Candidate> c;
        auto& cr = cand_ranks[t];
        auto add = [&](double err2) {
          auto rk = ws.ranks();
          for (uint32_t i = 0; i < c.size(); ++i)  // same ranks seen before
            if (std::equal(rk.begin() + 1, rk.end() - 1, cr.begin() + i * (m - 1))) return;
          for (int k = 1; k < m; ++k) cr.push_back(static_cast<uint16_t>(rk[k]));
          c.push_back({static_cast<uint64_t>(token_elems(P.shape, rk)) * dsize, err2, static_cast<uint32_t>(c.size())});
        };
        std::vector<int64_t> caps(m - 1);
        for (int64_t L = 1; L <= maxL; ++L) {
          for (int k = 1; k < m; ++k) caps[k - 1] = std::min(L, fr[k]);
          add(ws.run(x, caps, 0.0));
        }
        if (m > 1)
          for (double e : kEps) add(ws.run(x, {}, e * e * n2 / (m - 1)));
        hulls[t] = lower_hull(std::move(c));
      });
      // Greedy: start every token at its cheapest candidate, then take the upgrade with the largest
      // weighted error reduction per byte while it fits in the budget.
      std::vector<uint32_t> pos(rows, 0);
      double used = rc.fixed() + double(rows) * rc.per_token_meta();
      for (int64_t t = 0; t < rows; ++t) used += hulls[t][0].bytes;
      auto weight = [&](int64_t t) { return ctx.row_weights.empty() ? 1.0 : std::max(0.0, double(ctx.row_weights[t])); };
      using Item = std::pair<double, int64_t>;  // (gain per byte, token)
      std::priority_queue<Item> heap;
      auto push = [&](int64_t t) {
        const auto& h = hulls[t];
        if (pos[t] + 1 >= h.size()) return;
        const auto& a = h[pos[t]];
        const auto& b = h[pos[t] + 1];
        heap.push({weight(t) * (a.err2 - b.err2) / double(b.bytes - a.bytes), t});
      };
      for (int64_t t = 0; t < rows; ++t) push(t);
      while (!heap.empty()) {
        const int64_t t = heap.top().second;
        heap.pop();
        const auto& h = hulls[t];
        const double extra = double(h[pos[t] + 1].bytes - h[pos[t]].bytes);
        if (used + extra > budget) continue;  // this token stops here; cheaper upgrades elsewhere may still fit
        used += extra;
        ++pos[t];
        push(t);
      }
      for (int64_t t = 0; t < rows; ++t) {
        const uint32_t id = hulls[t][pos[t]].id;
        std::copy_n(cand_ranks[t].begin() + id * (m - 1), m - 1, tr.begin() + t * (m - 1));
      }
    }
    // offsets from the ranks
    std::vector<int64_t> offs(rows + 1, 0);
    std::vector<int64_t> r(m + 1, 1);
    for (int64_t t = 0; t < rows; ++t) {
      for (int k = 1; k < m; ++k) r[k] = tr[t * (m - 1) + k - 1];
      offs[t + 1] = offs[t] + token_elems(P.shape, r);
    }
    CoreSink sink(P.dtype);
    sink.resize(offs[rows]);
    // Pass 2: the TT-SVD of each token at its ranks, written at its offset.
    for_each_row(rows, P.shape, ctx, 0.5, 1.0, [&](SmallTtSvd& ws, int64_t t) {
      int64_t caps[kMaxOrder];
      for (int k = 1; k < m; ++k) caps[k - 1] = tr[t * (m - 1) + k - 1];
      ws.run(W.row(t).data(), std::span<const int64_t>(caps, m - 1), 0.0);
      int64_t at = offs[t];
      for (int k = 0; k < m; ++k) {
        const float s = sink.put(ws.core(k), ws.core_size(k), at);
        if (int8) scales[t * m + k] = s;
        at += ws.core_size(k);
      }
    });
    const std::vector<int64_t> trs{rows, m - 1}, os{rows + 1}, cs{offs[rows]};
    out.add_arrays()->CopyFrom(make_array<uint16_t>("token_ranks", trs, tr));
    if (offsets_size(rows, P.shape) == 4) {
      std::vector<uint32_t> o32(offs.begin(), offs.end());
      out.add_arrays()->CopyFrom(make_array<uint32_t>("offsets", os, o32));
    } else {
      out.add_arrays()->CopyFrom(make_array<int64_t>("offsets", os, offs));
    }
    out.add_arrays()->CopyFrom(sink.to_array("cores", cs));
  }
  if (int8) {
    const std::vector<int64_t> ss{rows, m};
    out.add_arrays()->CopyFrom(make_array<float>("scales", ss, scales));
  }
  if (P.mode == TtParams::Ratio) {
    const double budget = std::floor(double(rows) * double(cols) * 4.0 / P.ratio);
    if (double(stored_bytes(out)) > budget)
      throw Error("tt-token: internal error: ratio allocation exceeded its budget (" + std::to_string(stored_bytes(out)) +
                  " > " + std::to_string(budget) + " bytes)");
  }
  ctx.report(1.0);
  return out;
}

MatrixRM TtTokenCodec::decode(const v1::CompressedTensor& t) const {
  TokenTrainTable tab = TokenTrainTable::from_proto(t);
  MatrixRM out(tab.rows(), tab.cols());
  tab.decode_all(out.data());
  return out;
}

}  // namespace tsm
