#include "tt/sym_eig_small.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace tsm {

namespace {

// N > 0: the size is known at compile time (loops unrolled / vectorised); N == 0: runtime n_rt.
template <int N>
void sym_eig_impl(int n_rt, double* __restrict V, double* __restrict d, double* __restrict e) {
  const int n = N > 0 ? N : n_rt;
  // tred2 addresses JAMA's V(i, j) at V[j * n + i]: the input is symmetric, so this reads it unchanged,
  // makes every inner loop (over the row index k) contiguous, and leaves V's columns (the
  // eigenvector basis) as memory rows, the layout tql2 below rotates.
  auto v = [&](int i, int j) -> double& { return V[j * n + i]; };
  for (int j = 0; j < n; ++j) d[j] = v(n - 1, j);
  for (int i = n - 1; i > 0; --i) {
    double scale = 0, h = 0;
    for (int k = 0; k < i; ++k) scale += std::abs(d[k]);
    if (scale == 0.0) {
      e[i] = d[i - 1];
      for (int j = 0; j < i; ++j) { d[j] = v(i - 1, j); v(i, j) = 0; v(j, i) = 0; }
    } else {
      for (int k = 0; k < i; ++k) { d[k] /= scale; h += d[k] * d[k]; }
      double f = d[i - 1];
      double g = std::sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h = h - f * g;
      d[i - 1] = f - g;
      for (int j = 0; j < i; ++j) e[j] = 0.0;
      for (int j = 0; j < i; ++j) {
        f = d[j];
        v(j, i) = f;
        g = e[j] + v(j, j) * f;
        const double* vj = &v(0, j);
#pragma omp simd reduction(+ : g)
        for (int k = j + 1; k <= i - 1; ++k) { g += vj[k] * d[k]; e[k] += vj[k] * f; }
        e[j] = g;
      }
      f = 0.0;
      for (int j = 0; j < i; ++j) { e[j] /= h; f += e[j] * d[j]; }
      double hh = f / (h + h);
      for (int j = 0; j < i; ++j) e[j] -= hh * d[j];
      for (int j = 0; j < i; ++j) {
        f = d[j]; g = e[j];
        double* vj = &v(0, j);
#pragma omp simd
        for (int k = j; k <= i - 1; ++k) vj[k] -= (f * e[k] + g * d[k]);
        d[j] = v(i - 1, j);
        v(i, j) = 0.0;
      }
    }
    d[i] = h;
  }
  for (int i = 0; i < n - 1; ++i) {
    v(n - 1, i) = v(i, i);
    v(i, i) = 1.0;
    double h = d[i + 1];
    if (h != 0.0) {
      const double* vi1 = &v(0, i + 1);
      for (int k = 0; k <= i; ++k) d[k] = vi1[k] / h;
      for (int j = 0; j <= i; ++j) {
        double* vj = &v(0, j);
        double g = 0.0;
#pragma omp simd reduction(+ : g)
        for (int k = 0; k <= i; ++k) g += vi1[k] * vj[k];
#pragma omp simd
        for (int k = 0; k <= i; ++k) vj[k] -= g * d[k];
      }
    }
    for (int k = 0; k <= i; ++k) v(k, i + 1) = 0.0;
  }
  for (int j = 0; j < n; ++j) { d[j] = v(n - 1, j); v(n - 1, j) = 0.0; }
  v(n - 1, n - 1) = 1.0;
  e[0] = 0.0;
  // tql2 on the transpose (already in memory), so every Givens rotation touches two contiguous rows
  for (int i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0.0;
  double f = 0.0, tst1 = 0.0;
  const double eps = std::pow(2.0, -52.0);
  for (int l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::abs(d[l]) + std::abs(e[l]));
    int m = l;
    while (m < n) {
      if (std::abs(e[m]) <= eps * tst1) break;
      ++m;
    }
    if (m > l) {
      int iter = 0;
      do {
        ++iter;
        double g = d[l];
        double p = (d[l + 1] - g) / (2.0 * e[l]);
        double r = std::sqrt(p * p + 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        double dl1 = d[l + 1];
        double h = g - d[l];
        for (int i = l + 2; i < n; ++i) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1.0, c2 = c, c3 = c, el1 = e[l + 1], s = 0.0, s2 = 0.0;
        for (int i = m - 1; i >= l; --i) {
          c3 = c2; c2 = c; s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::sqrt(p * p + e[i] * e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          double* wi = V + i * n;
          double* wi1 = V + (i + 1) * n;
          for (int k = 0; k < n; ++k) {
            const double hk = wi1[k];
            wi1[k] = s * wi[k] + c * hk;
            wi[k] = c * wi[k] - s * hk;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::abs(e[l]) > eps * tst1 && iter < 60);
    }
    d[l] = d[l] + f;
    e[l] = 0.0;
  }
  // sort ascending
  for (int i = 0; i < n - 1; ++i) {
    int k = i; double p = d[i];
    for (int j = i + 1; j < n; ++j) if (d[j] < p) { k = j; p = d[j]; }
    if (k != i) {
      d[k] = d[i]; d[i] = p;
      for (int j = 0; j < n; ++j) std::swap(V[i * n + j], V[k * n + j]);
    }
  }
}

}  // namespace

void sym_eig_small(int n, double* V, double* d, double* e) {
  switch (n) {  // the sizes of per-token Gram matrices (modes times ranks up to 16)
    case 2: return sym_eig_impl<2>(n, V, d, e);
    case 3: return sym_eig_impl<3>(n, V, d, e);
    case 4: return sym_eig_impl<4>(n, V, d, e);
    case 6: return sym_eig_impl<6>(n, V, d, e);
    case 8: return sym_eig_impl<8>(n, V, d, e);
    case 12: return sym_eig_impl<12>(n, V, d, e);
    case 16: return sym_eig_impl<16>(n, V, d, e);
    default: return sym_eig_impl<0>(n, V, d, e);
  }
}

}  // namespace tsm
