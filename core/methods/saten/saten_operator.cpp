#include "methods/saten/saten_operator.h"

#include <algorithm>

#include "common/error.h"

namespace tsm {

namespace {
using CMap = Eigen::Map<const MatrixRM>;
using Map = Eigen::Map<MatrixRM>;
}  // namespace

SatenOperator::SatenOperator(SatenFactors f) : f_(std::move(f)) {
  f_.validate();
  if ((packed_ = Packed2of4::from(f_.sparse))) f_.sparse = SparseResidual::empty(f_.sparse.rows, f_.sparse.cols);
  const auto& tt = f_.tt;
  const auto& L = f_.layout;
  const int d = tt.order();
  perm_.resize(size_t(d));
  if (L.kind == SatenLayoutKind::Saten) {
    const int a = L.input_cores();
    const int64_t r0 = tt.ranks[a - 1], n = tt.modes[a - 1], r1 = tt.ranks[a];
    auto& P = perm_[a - 1];
    P.resize(size_t(r0 * n * r1));
    for (int64_t r = 0; r < r0; ++r)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t s = 0; s < r1; ++s) P[(i * r0 + r) * r1 + s] = tt.cores[a - 1][(r * n + i) * r1 + s];
  } else {
    for (int k = 0; k < d; ++k) {
      const int64_t r0 = tt.ranks[k], r1 = tt.ranks[k + 1], no = L.out_modes[k], ni = L.in_modes[k];
      auto& P = perm_[k];
      P.resize(size_t(r0 * no * ni * r1));
      for (int64_t r = 0; r < r0; ++r)
        for (int64_t o = 0; o < no; ++o)
          for (int64_t i = 0; i < ni; ++i)
            for (int64_t s = 0; s < r1; ++s)
              P[(o * r1 + s) * (r0 * ni) + (r * ni + i)] = tt.cores[k][((r * no + o) * ni + i) * r1 + s];
    }
  }
}

void SatenOperator::forward(const float* x, int64_t n, float* y) const {
  if (n <= 0) return;
  if (f_.layout.kind == SatenLayoutKind::Saten)
    forward_saten(x, n, y);
  else
    forward_mpo(x, n, y);
  if (packed_)
    packed_->apply_add(x, n, y);
  else
    f_.sparse.apply_add(x, n, y);
}

void SatenOperator::forward_saten(const float* x, int64_t n, float* y) const {
  const auto& tt = f_.tt;
  const int a = f_.layout.input_cores(), d = tt.order();
  const int64_t ra = tt.ranks[a];
  // Input side. Step with core a-1: (outer, i_a) x (i_a, r_{a-1} r_a).
  int64_t outer = n * f_.layout.d_in / tt.modes[a - 1];
  std::vector<float> cur(size_t(outer * tt.ranks[a - 1] * ra)), nxt;
  Map(cur.data(), outer, tt.ranks[a - 1] * ra).noalias() =
      CMap(x, outer, tt.modes[a - 1]) * CMap(perm_[a - 1].data(), tt.modes[a - 1], tt.ranks[a - 1] * ra);
  // Cores a-2 .. 0: for every outer block, (r_{k-1}, i_k r_k) x (i_k r_k, r_a).
  for (int k = a - 2; k >= 0; --k) {
    const int64_t rk0 = tt.ranks[k], nk = tt.modes[k], rk1 = tt.ranks[k + 1];
    outer /= nk;
    nxt.resize(size_t(outer * rk0 * ra));
    CMap G(tt.cores[k].data(), rk0, nk * rk1);
#pragma omp parallel for schedule(static) if (outer > 64 && outer * rk0 * nk * rk1 * ra > (int64_t(1) << 18))
    for (int64_t o = 0; o < outer; ++o)
      Map(nxt.data() + o * rk0 * ra, rk0, ra).noalias() = G * CMap(cur.data() + o * nk * rk1 * ra, nk * rk1, ra);
    cur.swap(nxt);
  }
  // cur: (n, r_a). Output side: (rows, r_{k-1}) x (r_{k-1}, o_k r_k).
  int64_t rows = n;
  for (int k = a; k < d; ++k) {
    const int64_t rk0 = tt.ranks[k], nk = tt.modes[k], rk1 = tt.ranks[k + 1];
    float* dst = (k == d - 1) ? y : nullptr;
    if (!dst) {
      nxt.resize(size_t(rows * nk * rk1));
      dst = nxt.data();
    }
    Map(dst, rows, nk * rk1).noalias() = CMap(cur.data(), rows, rk0) * CMap(tt.cores[k].data(), rk0, nk * rk1);
    rows *= nk;
    if (k != d - 1) cur.swap(nxt);
  }
}

void SatenOperator::forward_mpo(const float* x, int64_t n, float* y) const {
  const auto& tt = f_.tt;
  const auto& L = f_.layout;
  const int d = tt.order();
  // State (P, r_{k-1}, i_k, R): P = n * o_1..o_{k-1}, R = i_{k+1}..i_d.
  int64_t P = n, R = L.d_in;
  std::vector<float> cur(x, x + n * L.d_in), nxt;
  for (int k = 0; k < d; ++k) {
    const int64_t r0 = tt.ranks[k], r1 = tt.ranks[k + 1], no = L.out_modes[k], ni = L.in_modes[k];
    R /= ni;
    CMap G(perm_[k].data(), no * r1, r0 * ni);
    float* dst;
    if (k == d - 1) {
      dst = y;
    } else {
      nxt.resize(size_t(P * no * r1 * R));
      dst = nxt.data();
    }
#pragma omp parallel for schedule(static) if (P > 16 && P * no * r1 * r0 * ni * R > (int64_t(1) << 18))
    for (int64_t p = 0; p < P; ++p)
      Map(dst + p * no * r1 * R, no * r1, R).noalias() = G * CMap(cur.data() + p * r0 * ni * R, r0 * ni, R);
    P *= no;
    if (k != d - 1) cur.swap(nxt);
  }
}

uint64_t SatenOperator::resident_bytes() const {
  uint64_t b = 0;
  for (const auto& c : f_.tt.cores) b += c.size() * sizeof(float);
  for (const auto& c : perm_) b += c.size() * sizeof(float);
  b += f_.sparse.values.size() * (sizeof(float) + sizeof(int32_t)) + f_.sparse.row_ptr.size() * sizeof(int64_t);
  if (packed_) b += packed_->resident_bytes();
  return b;
}

double SatenOperator::flops_per_row() const {
  const auto& tt = f_.tt;
  const auto& L = f_.layout;
  const int d = tt.order();
  double fl = packed_ ? double(packed_->macs_per_row()) : double(f_.sparse.nnz());
  if (L.kind == SatenLayoutKind::Saten) {
    const int a = L.input_cores();
    const int64_t ra = tt.ranks[a];
    double outer = double(L.d_in) / tt.modes[a - 1];
    fl += outer * tt.modes[a - 1] * tt.ranks[a - 1] * ra;
    for (int k = a - 2; k >= 0; --k) {
      outer /= tt.modes[k];
      fl += outer * tt.ranks[k] * tt.modes[k] * tt.ranks[k + 1] * ra;
    }
    double rows = 1;
    for (int k = a; k < d; ++k) {
      fl += rows * tt.ranks[k] * tt.modes[k] * tt.ranks[k + 1];
      rows *= tt.modes[k];
    }
  } else {
    double P = 1, R = double(L.d_in);
    for (int k = 0; k < d; ++k) {
      R /= L.in_modes[k];
      fl += P * L.out_modes[k] * tt.ranks[k + 1] * tt.ranks[k] * L.in_modes[k] * R;
      P *= L.out_modes[k];
    }
  }
  return fl;
}

}  // namespace tsm
