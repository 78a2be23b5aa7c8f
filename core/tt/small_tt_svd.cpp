#include "tt/small_tt_svd.h"

#include <algorithm>

#include "common/error.h"
#include "tt/sym_eig_small.h"

namespace tsm {

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
      // G = C^T C as a sum of outer products of the rows of C (contiguous rows of length g)
      std::fill(G, G + g * g, 0.0);
      for (int64_t i = 0; i < rows; ++i) {
        const double* ci = C + i * rest;
        for (int64_t a = 0; a < g; ++a) {
          const double f = ci[a];
          double* ga = G + a * g;
#pragma omp simd
          for (int64_t b = 0; b < g; ++b) ga[b] += f * ci[b];
        }
      }
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
      double* N = next_.data();
      for (int64_t j = 0; j < r; ++j) {
        const double* e = E(j);
        double* nj = N + j * rest;
        {
          const double f = e[0];
#pragma omp simd
          for (int64_t c = 0; c < rest; ++c) nj[c] = f * C[c];
        }
        for (int64_t i = 1; i < rows; ++i) {
          const double f = e[i];
          const double* ci = C + i * rest;
#pragma omp simd
          for (int64_t c = 0; c < rest; ++c) nj[c] += f * ci[c];
        }
      }
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
