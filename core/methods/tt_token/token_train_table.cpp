// Decoding tt-token cores (see token_train_table.h): validation of the arrays read from a file and
// the contraction kernels of one token's train.
#include "methods/tt_token/token_train_table.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/tensor.h"
#include "formats/array_pack.h"
#include "methods/tt_token/tt_token_codec.h"
#include "methods/tt_token/tt_token_limits.h"

namespace tsm {

using namespace tt_token;

// ---- decoder ------------------------------------------------------------------------------------

namespace {

// out (P, L) = T (P, a) * G (a, L), all row-major: per row of out, `a` axpys over its L contiguous
// columns. Generic fallback for ranks without a fixed-size kernel below.
inline void contract_any(const float* __restrict T, int64_t P, int64_t a, const float* __restrict G, int64_t L,
                         float* __restrict out) {
  for (int64_t p = 0; p < P; ++p) {
    float* o = out + p * L;
    const float* tp = T + p * a;
    {
      const float t0 = tp[0];
#pragma omp simd
      for (int64_t j = 0; j < L; ++j) o[j] = t0 * G[j];
    }
    for (int64_t i = 1; i < a; ++i) {
      const float ti = tp[i];
      const float* g = G + i * L;
#pragma omp simd
      for (int64_t j = 0; j < L; ++j) o[j] += ti * g[j];
    }
  }
}

// Same product for a compile-time inner size A: a column block of G (A rows, W lanes) stays in
// registers while the P rows of T stream past, each output block is accumulated in a register and
// stored once (the axpy form above re-loads and re-stores the output A times).
// (a dependent vector_size in an alias template is ignored by GCC, hence two plain typedefs)
typedef float Vec8f __attribute__((vector_size(32)));  // 8 lanes (AVX); memcpy loads / stores (unaligned)
typedef float Vec4f __attribute__((vector_size(16)));  // 4 lanes (SSE)

template <int A, class V>
inline void contract_block(const float* __restrict T, int64_t P, const float* __restrict G, int64_t L, int64_t j,
                           float* __restrict out) {
  static_assert(sizeof(V) == 16 || sizeof(V) == 32);
  V g[A];
  for (int i = 0; i < A; ++i) std::memcpy(&g[i], G + i * L + j, sizeof(V));
  for (int64_t p = 0; p < P; ++p) {
    const float* tp = T + p * A;
    V acc = tp[0] * g[0];
    for (int i = 1; i < A; ++i) acc += tp[i] * g[i];
    std::memcpy(out + p * L + j, &acc, sizeof(V));
  }
}

template <int A>
void contract_fixed(const float* __restrict T, int64_t P, const float* __restrict G, int64_t L, float* __restrict out) {
  int64_t j = 0;
  for (; j + 8 <= L; j += 8) contract_block<A, Vec8f>(T, P, G, L, j, out);
  if (j + 4 <= L) {
    contract_block<A, Vec4f>(T, P, G, L, j, out);
    j += 4;
  }
  for (; j < L; ++j)
    for (int64_t p = 0; p < P; ++p) {
      float acc = 0;
      for (int i = 0; i < A; ++i) acc += T[p * A + i] * G[i * L + j];
      out[p * L + j] = acc;
    }
}

inline void contract(const float* __restrict T, int64_t P, int64_t a, const float* __restrict G, int64_t L,
                     float* __restrict out) {
  if (L >= 4) {
    switch (a) {
      case 1: return contract_fixed<1>(T, P, G, L, out);
      case 2: return contract_fixed<2>(T, P, G, L, out);
      case 3: return contract_fixed<3>(T, P, G, L, out);
      case 4: return contract_fixed<4>(T, P, G, L, out);
      case 5: return contract_fixed<5>(T, P, G, L, out);
      case 6: return contract_fixed<6>(T, P, G, L, out);
      case 8: return contract_fixed<8>(T, P, G, L, out);
      case 12: return contract_fixed<12>(T, P, G, L, out);
      case 16: return contract_fixed<16>(T, P, G, L, out);
      default: break;
    }
  }
  contract_any(T, P, a, G, L, out);
}

}  // namespace

TokenTrainTable TokenTrainTable::from_proto(const v1::CompressedTensor& t) {
  TokenTrainTable tab;
  const std::string who = "tt-token tensor '" + t.name() + "'";
  if (t.shape_size() != 2) throw FormatError(who + ": shape must be (rows, cols), has " + std::to_string(t.shape_size()) + " entries");
  if (t.shape(0) > (uint64_t{1} << 32) || t.shape(1) > (uint64_t{1} << 24) || t.shape(1) < 1)
    throw FormatError(who + ": implausible shape (" + std::to_string(t.shape(0)) + ", " + std::to_string(t.shape(1)) + ")");
  const int64_t rows = static_cast<int64_t>(t.shape(0)), cols = static_cast<int64_t>(t.shape(1));
  tab.rows_ = rows;
  tab.cols_ = cols;

  const v1::Array& ma = find_array(t, "modes");
  if (array_shape(ma).size() != 1 || ma.dtype() != v1::I64) throw FormatError(who + ": 'modes' must be a 1-D i64 array");
  tab.modes_ = unpack<int64_t>(ma);
  const int m = static_cast<int>(tab.modes_.size());
  if (m < 1 || m > kMaxOrder) throw FormatError(who + ": 'modes' has " + std::to_string(m) + " entries (1.." + std::to_string(kMaxOrder) + " allowed)");
  int64_t prod = 1;
  for (int64_t n : tab.modes_) {
    if (n < 1 || n > cols) throw FormatError(who + ": mode " + std::to_string(n) + " out of range");
    prod *= n;
    if (prod > cols) break;
  }
  if (prod != cols) throw FormatError(who + ": modes do not multiply to the row length " + std::to_string(cols));

  auto check_dtype = [&](const v1::Array& a) {
    DType d = tsm::from_proto(a.dtype());
    if (d != DType::F32 && d != DType::F16 && d != DType::BF16 && d != DType::I8)
      throw FormatError(who + ": array '" + a.name() + "' has dtype " + std::string(dtype_name(d)) + " (cores are f32, f16, bf16 or i8)");
    return d;
  };
  auto take_cores = [&](const v1::Array& a) {
    if (tab.dtype_ == DType::F32) tab.cores_f32_.push_back(unpack<float>(a));
    else if (tab.dtype_ == DType::I8) tab.cores_i8_.push_back(unpack<int8_t>(a));
    else {
      tab.cores_u16_.emplace_back(a.data().size() / 2);
      std::memcpy(tab.cores_u16_.back().data(), a.data().data(), a.data().size());
    }
  };
  // scratch: converted cores of one token + two ping-pong buffers of the largest partial contraction
  auto workspace_for = [&](std::span<const int64_t> r) -> int64_t {
    int64_t left = 1, mx = 0;
    for (int k = 0; k < m - 1; ++k) {
      left *= tab.modes_[k];
      mx = std::max(mx, left * r[k + 1]);
    }
    return mx;
  };
  int64_t max_inter = 0, max_elems = 0;

  if (const v1::Array* ra = try_find_array(t, "ranks")) {
    tab.ragged_ = false;
    if (ra->dtype() != v1::I64 || array_shape(*ra) != std::vector<int64_t>{m + 1})
      throw FormatError(who + ": 'ranks' must be i64 of shape (" + std::to_string(m + 1) + ")");
    tab.ranks_ = unpack<int64_t>(*ra);
    if (tab.ranks_.front() != 1 || tab.ranks_.back() != 1) throw FormatError(who + ": ranks must start and end with 1");
    for (int64_t r : tab.ranks_)
      if (r < 1 || r > kMaxRank) throw FormatError(who + ": rank " + std::to_string(r) + " out of range 1.." + std::to_string(kMaxRank));
    tab.core_stride_.resize(m);
    for (int k = 0; k < m; ++k) {
      const v1::Array& ca = find_array(t, "core_" + std::to_string(k));
      DType d = check_dtype(ca);
      if (k == 0) tab.dtype_ = d;
      else if (d != tab.dtype_) throw FormatError(who + ": cores have different dtypes");
      const std::vector<int64_t> want{rows, tab.ranks_[k], tab.modes_[k], tab.ranks_[k + 1]};
      if (array_shape(ca) != want)
        throw FormatError(who + ": 'core_" + std::to_string(k) + "' has shape " + shape_str(array_shape(ca)) + ", ranks and modes need " + shape_str(want));
      tab.core_stride_[k] = tab.ranks_[k] * tab.modes_[k] * tab.ranks_[k + 1];
      take_cores(ca);
    }
    max_inter = workspace_for(tab.ranks_);
    max_elems = token_elems(tab.modes_, tab.ranks_);
  } else if (const v1::Array* tra = try_find_array(t, "token_ranks")) {
    tab.ragged_ = true;
    if (tra->dtype() != v1::U16 || array_shape(*tra) != std::vector<int64_t>{rows, m - 1})
      throw FormatError(who + ": 'token_ranks' must be u16 of shape (" + std::to_string(rows) + ", " + std::to_string(m - 1) + ")");
    tab.token_ranks_ = unpack<uint16_t>(*tra);
    const v1::Array& oa = find_array(t, "offsets");
    if (array_shape(oa) != std::vector<int64_t>{rows + 1} || (oa.dtype() != v1::U32 && oa.dtype() != v1::I64))
      throw FormatError(who + ": 'offsets' must be u32 or i64 of shape (" + std::to_string(rows + 1) + ")");
    if (oa.dtype() == v1::U32) {
      auto o = unpack<uint32_t>(oa);
      tab.offsets_.assign(o.begin(), o.end());
    } else {
      tab.offsets_ = unpack<int64_t>(oa);
    }
    const v1::Array& ca = find_array(t, "cores");
    tab.dtype_ = check_dtype(ca);
    const auto cshape = array_shape(ca);
    if (cshape.size() != 1) throw FormatError(who + ": 'cores' must be 1-D");
    if (tab.offsets_[0] != 0) throw FormatError(who + ": offsets[0] must be 0");
    std::vector<int64_t> r(m + 1, 1);
    for (int64_t i = 0; i < rows; ++i) {
      for (int k = 1; k < m; ++k) {
        r[k] = tab.token_ranks_[i * (m - 1) + k - 1];
        if (r[k] < 1) throw FormatError(who + ": token " + std::to_string(i) + " has a rank 0");
      }
      const int64_t e = token_elems(tab.modes_, r);
      if (tab.offsets_[i + 1] - tab.offsets_[i] != e || tab.offsets_[i + 1] > cshape[0])
        throw FormatError(who + ": offsets of token " + std::to_string(i) + " (" + std::to_string(tab.offsets_[i]) + ".." +
                          std::to_string(tab.offsets_[i + 1]) + ") disagree with its ranks (" + std::to_string(e) +
                          " values) or run past 'cores' (" + std::to_string(cshape[0]) + ")");
      max_elems = std::max(max_elems, e);
      max_inter = std::max(max_inter, workspace_for(r));
    }
    if (tab.offsets_[rows] != cshape[0])
      throw FormatError(who + ": 'cores' has " + std::to_string(cshape[0]) + " values, offsets account for " + std::to_string(tab.offsets_[rows]));
    take_cores(ca);
  } else {
    throw FormatError(who + ": has neither 'ranks' (fixed) nor 'token_ranks' (per-token) arrays");
  }
  if (tab.dtype_ == DType::I8) {
    const v1::Array& sa = find_array(t, "scales");
    if (sa.dtype() != v1::F32 || array_shape(sa) != std::vector<int64_t>{rows, m})
      throw FormatError(who + ": int8 cores need 'scales' f32 of shape (" + std::to_string(rows) + ", " + std::to_string(m) + ")");
    tab.scales_ = unpack<float>(sa);
    for (float s : tab.scales_)
      if (!std::isfinite(s)) throw FormatError(who + ": 'scales' holds a non-finite value");
  }
  const int64_t ws = (tab.dtype_ == DType::F32 ? 0 : max_elems) + 2 * max_inter;
  if (ws > kMaxWorkspace) throw FormatError(who + ": ranks too large to decode (" + std::to_string(ws) + " floats of scratch)");
  tab.workspace_floats_ = static_cast<size_t>(std::max<int64_t>(ws, 1));
  tab.stored_bytes_ = TtTokenCodec().stored_bytes(t);
  return tab;
}

std::vector<int64_t> TokenTrainTable::token_ranks(int64_t id) const {
  if (id < 0 || id >= rows_) throw Error("token id " + std::to_string(id) + " out of range 0.." + std::to_string(rows_ - 1));
  if (!ragged_) return ranks_;
  const int m = order();
  std::vector<int64_t> r(m + 1, 1);
  for (int k = 1; k < m; ++k) r[k] = token_ranks_[id * (m - 1) + k - 1];
  return r;
}

void TokenTrainTable::decode_row(int64_t id, float* out, float* work) const {
  if (id < 0 || id >= rows_) throw Error("token id " + std::to_string(id) + " out of range 0.." + std::to_string(rows_ - 1));
  const int m = order();
  int64_t r[kMaxOrder + 1];
  const float* core[kMaxOrder];
  float* w = work;
  if (!ragged_) {
    for (int k = 0; k <= m; ++k) r[k] = ranks_[k];
  } else {
    r[0] = r[m] = 1;
    for (int k = 1; k < m; ++k) r[k] = token_ranks_[id * (m - 1) + k - 1];
  }
  // locate (and for f16 / bf16 / int8: convert) the token's cores
  int64_t at = ragged_ ? offsets_[id] : 0;
  for (int k = 0; k < m; ++k) {
    const int64_t n = r[k] * modes_[k] * r[k + 1];
    const int64_t src = ragged_ ? at : id * core_stride_[k];
    const int ci = ragged_ ? 0 : k;
    switch (dtype_) {
      case DType::F32: core[k] = cores_f32_[ci].data() + src; break;
      case DType::I8: {
        const float s = scales_[id * m + k];
        const int8_t* q = cores_i8_[ci].data() + src;
        for (int64_t i = 0; i < n; ++i) w[i] = s * q[i];
        core[k] = w; w += n;
        break;
      }
      default:
        to_f32(dtype_, cores_u16_[ci].data() + src, w, n);
        core[k] = w; w += n;
        break;
    }
    at += n;
  }
  if (m == 1) {
    std::copy_n(core[0], cols_, out);
    return;
  }
  // T: (P, r_k) partial product of cores 0..k, P = n_1..n_{k+1}
  const float* T = core[0];
  int64_t P = modes_[0];
  float* buf[2] = {w, w + (workspace_floats_ - (w - work)) / 2};
  for (int k = 1; k < m; ++k) {
    float* dst = k == m - 1 ? out : buf[k & 1];
    contract(T, P, r[k], core[k], modes_[k] * r[k + 1], dst);
    T = dst;
    P *= modes_[k];
  }
}

void TokenTrainTable::decode_row(int64_t id, float* out) const {
  thread_local std::vector<float> w;  // grows to the largest table decoded on this thread, then reused
  if (w.size() < workspace_floats_) w.resize(workspace_floats_);
  decode_row(id, out, w.data());
}

void TokenTrainTable::decode_rows(std::span<const int32_t> ids, float* out) const {
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= rows_) throw Error("token id " + std::to_string(ids[i]) + " out of range 0.." + std::to_string(rows_ - 1));
  // Large batches use the OpenMP threads (one scratch each, allocated once per call).
  const int threads = n >= kMinParallelDecode && !omp_in_parallel() ? omp_get_max_threads() : 1;
  std::vector<float> w(workspace_floats_ * threads);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t i = 0; i < n; ++i) decode_row(ids[i], out + i * cols_, w.data() + workspace_floats_ * omp_get_thread_num());
}

void TokenTrainTable::decode_range(int64_t begin, int64_t end, float* out) const {
  if (begin < 0 || end > rows_ || begin > end)
    throw Error("token range " + std::to_string(begin) + ".." + std::to_string(end) + " out of 0.." + std::to_string(rows_));
  const int64_t n = end - begin;
  const int threads = n >= kMinParallelDecode && !omp_in_parallel() ? omp_get_max_threads() : 1;
  std::vector<float> w(workspace_floats_ * threads);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t i = 0; i < n; ++i) decode_row(begin + i, out + i * cols_, w.data() + workspace_floats_ * omp_get_thread_num());
}

void TokenTrainTable::decode_all(float* out) const { decode_range(0, rows_, out); }

}  // namespace tsm
