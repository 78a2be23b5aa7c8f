#include "tt/small_tt_svd.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "tt/sym_eig_small.h"

namespace tsm {

namespace {

typedef double Vec4d __attribute__((vector_size(32)));  // 4 lanes (AVX); loaded and stored with memcpy (unaligned)

// out (M, N) row-major = A (M, K) * B (K, N) with A(m, k) = A[m * am + k * ak] (any strides, so a
// transpose or a reversed row order is free) and B row-major with leading dimension ldb. Each output
// block of 8 / 4 columns is accumulated in registers over k and stored once.
void small_gemm(int64_t M, int64_t N, int64_t K, const double* A, int64_t am, int64_t ak, const double* __restrict B,
                int64_t ldb, double* __restrict out) {
  for (int64_t m = 0; m < M; ++m) {
    const double* a = A + m * am;
    double* o = out + m * N;
    int64_t n = 0;
    for (; n + 8 <= N; n += 8) {
      Vec4d acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0};
      for (int64_t k = 0; k < K; ++k) {
        Vec4d b0, b1;
        std::memcpy(&b0, B + k * ldb + n, sizeof(Vec4d));
        std::memcpy(&b1, B + k * ldb + n + 4, sizeof(Vec4d));
        const double f = a[k * ak];
        acc0 += f * b0;
        acc1 += f * b1;
      }
      std::memcpy(o + n, &acc0, sizeof(Vec4d));
      std::memcpy(o + n + 4, &acc1, sizeof(Vec4d));
    }
    for (; n + 4 <= N; n += 4) {
      Vec4d acc = {0, 0, 0, 0};
      for (int64_t k = 0; k < K; ++k) {
        Vec4d b;
        std::memcpy(&b, B + k * ldb + n, sizeof(Vec4d));
        acc += a[k * ak] * b;
      }
      std::memcpy(o + n, &acc, sizeof(Vec4d));
    }
    for (; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += a[k * ak] * B[k * ldb + n];
      o[n] = acc;
    }
  }
}

}  // namespace

SmallTtSvd::SmallTtSvd(std::span<const int64_t> modes) : modes_(modes.begin(), modes.end()) {
  const int d = static_cast<int>(modes_.size());
  if (d < 1) throw ParamError("shape", "a tensor train needs at least one mode");
  int64_t numel = 1;
  for (int64_t m : modes_) numel *= m;
  full_ranks_.assign(d + 1, 1);
  int64_t left = 1;
  for (int k = 0; k < d - 1; ++k) {
    left *= modes_[k];
    full_ranks_[k + 1] = std::min(left, numel / left);
  }
  ranks_ = full_ranks_;
  cores_.resize(d);
  int64_t cap = numel;
  for (int k = 0; k < d; ++k) {
    cores_[k].resize(static_cast<size_t>(full_ranks_[k] * modes_[k] * full_ranks_[k + 1]));
    cap = std::max(cap, full_ranks_[k] * modes_[k] * full_ranks_[k + 1]);
  }
  // an unfolding never holds more than r_{k-1} * prod(n_k..n_d) <= max(numel, core sizes) * max rank
  int64_t maxr = *std::max_element(full_ranks_.begin(), full_ranks_.end());
  c_.resize(static_cast<size_t>(std::max(numel, cap) * std::max<int64_t>(1, maxr)));
  next_.resize(c_.size());
  int64_t gmax = 1;  // largest Gram matrix: min(rows, cols) of any unfolding at full ranks
  for (int k = 0; k < d; ++k) gmax = std::max(gmax, full_ranks_[k] * modes_[k]);
  gram_.resize(static_cast<size_t>(gmax * gmax));
  eval_.resize(static_cast<size_t>(gmax));
  scratch_.resize(static_cast<size_t>(gmax));
}

double SmallTtSvd::run(const float* x, std::span<const int64_t> caps, double delta2) {
  const int d = static_cast<int>(modes_.size());
  int64_t numel = 1;
  for (int64_t m : modes_) numel *= m;
  ranks_.assign(d + 1, 1);
  if (d == 1) {
    std::copy(x, x + numel, cores_[0].begin());
    return 0.0;
  }
  std::copy(x, x + numel, c_.begin());
  double err2 = 0;
  int64_t rest = numel;
  for (int k = 0; k < d - 1; ++k) {
    const int64_t rows = ranks_[k] * modes_[k];
    rest /= modes_[k];
    const double* C = c_.data();  // (rows, rest)
    const bool last = k == d - 2;
    const bool right = last && rest < rows;  // final step with a tall unfolding: Gram of the columns
    const int64_t g = right ? rest : rows;
    double* G = gram_.data();  // (g, g)
    if (right) {
      // G = C^T C (A = C^T: row stride 1, column stride rest)
      small_gemm(g, g, rows, C, 1, rest, C, rest, G);
    } else {
      // G = C C^T: dot products of the rows of C (length rest), lower triangle mirrored
      for (int64_t a = 0; a < g; ++a)
        for (int64_t b = 0; b <= a; ++b) {
          const double* ca = C + a * rest;
          const double* cb = C + b * rest;
          double s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t j = 0; j < rest; ++j) s += ca[j] * cb[j];
          G[a * g + b] = G[b * g + a] = s;
        }
    }
    sym_eig_small(static_cast<int>(g), gram_.data(), eval_.data(), scratch_.data());
    const double* ev = eval_.data();  // ascending; eigenvector j is row j of gram_
    int64_t r = g;
    double tail = 0;
    while (delta2 > 0 && r > 1 && tail + std::max(0.0, ev[g - r]) <= delta2) {
      tail += std::max(0.0, ev[g - r]);
      --r;
    }
    int64_t cap = caps.empty() ? full_ranks_[k + 1] : std::min(caps[k], full_ranks_[k + 1]);
    r = std::max<int64_t>(1, std::min({r, cap, g}));
    for (int64_t i = 0; i < g - r; ++i) err2 += std::max(0.0, ev[i]);
    ranks_[k + 1] = r;
    // top r eigenvectors, largest first: E row j = eigenvector row g-1-j of gram_, each (g)
    auto E = [&](int64_t j) { return gram_.data() + (g - 1 - j) * g; };
    if (!right) {
      // core k = U_r: (rows, r); next C = U_r^T C: (r, rest)
      double* core = cores_[k].data();
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < r; ++j) core[i * r + j] = E(j)[i];
      // E's rows run backwards through gram_ (row stride -g)
      small_gemm(r, rest, rows, E(0), -g, 1, C, rest, next_.data());
      std::swap(c_, next_);
    } else {
      // core k = C V_r: (rows, r); last core = V_r^T: (r, rest)
      double* core = cores_[k].data();
      for (int64_t i = 0; i < rows; ++i) {
        const double* ci = C + i * rest;
        for (int64_t j = 0; j < r; ++j) {
          const double* e = E(j);
          double s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t c = 0; c < rest; ++c) s += ci[c] * e[c];
          core[i * r + j] = s;
        }
      }
      double* last_core = cores_[k + 1].data();
      for (int64_t j = 0; j < r; ++j) std::copy(E(j), E(j) + rest, last_core + j * rest);
      return err2;
    }
  }
  // left-only path: the last core is the remaining C (r_{d-1}, n_d)
  std::copy(c_.begin(), c_.begin() + ranks_[d - 1] * modes_[d - 1], cores_[d - 1].begin());
  return err2;
}

}  // namespace tsm
