#include "tt/tensor_train.h"

#include <stdexcept>

#include "common/error.h"

namespace tsm {

int64_t TensorTrain::numel() const {
  int64_t n = 1;
  for (int64_t m : modes) n *= m;
  return n;
}

int64_t TensorTrain::params() const {
  int64_t n = 0;
  for (const auto& c : cores) n += static_cast<int64_t>(c.size());
  return n;
}

std::vector<float> TensorTrain::full() const {
  // T: (P, r_k) row-major, P = n_1..n_k; T * G_{k+1} viewed as (P, n_{k+1} r_{k+1}) = (P n_{k+1}, r_{k+1}).
  const int d = order();
  if (d == 0) return {};
  std::vector<double> t(cores[0].begin(), cores[0].end());  // (n_1, r_1)
  int64_t P = modes[0];
  for (int k = 1; k < d; ++k) {
    const int64_t a = ranks[k], L = modes[k] * ranks[k + 1];
    const float* g = cores[k].data();  // (a, L)
    std::vector<double> next(static_cast<size_t>(P * L), 0.0);
    for (int64_t p = 0; p < P; ++p) {
      double* o = next.data() + p * L;
      for (int64_t i = 0; i < a; ++i) {
        const double tpi = t[p * a + i];
        const float* gi = g + i * L;
        for (int64_t j = 0; j < L; ++j) o[j] += tpi * gi[j];
      }
    }
    t.swap(next);
    P *= modes[k];
  }
  return std::vector<float>(t.begin(), t.end());
}

float TensorTrain::element(std::span<const int64_t> index) const {
  const int d = order();
  if (static_cast<int>(index.size()) != d) throw Error("TensorTrain::element: index has " + std::to_string(index.size()) + " entries, order is " + std::to_string(d));
  std::vector<double> v{1.0}, w;
  for (int k = 0; k < d; ++k) {
    if (index[k] < 0 || index[k] >= modes[k]) throw Error("TensorTrain::element: index out of range in mode " + std::to_string(k));
    const int64_t a = ranks[k], n = modes[k], b = ranks[k + 1];
    w.assign(static_cast<size_t>(b), 0.0);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) w[j] += v[i] * cores[k][(i * n + index[k]) * b + j];
    v.swap(w);
  }
  return static_cast<float>(v[0]);
}

std::vector<float> TensorTrain::fiber(std::span<const int64_t> index, int mode) const {
  const int d = order();
  if (static_cast<int>(index.size()) != d || mode < 0 || mode >= d) throw Error("TensorTrain::fiber: bad index or mode");
  // left: (1, r_mode) product of the cores before `mode`; right: (r_{mode+1}) product of those after.
  std::vector<double> left{1.0}, tmp;
  for (int k = 0; k < mode; ++k) {
    const int64_t a = ranks[k], n = modes[k], b = ranks[k + 1];
    if (index[k] < 0 || index[k] >= n) throw Error("TensorTrain::fiber: index out of range in mode " + std::to_string(k));
    tmp.assign(static_cast<size_t>(b), 0.0);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) tmp[j] += left[i] * cores[k][(i * n + index[k]) * b + j];
    left.swap(tmp);
  }
  std::vector<double> right{1.0};
  for (int k = d - 1; k > mode; --k) {
    const int64_t a = ranks[k], n = modes[k], b = ranks[k + 1];
    if (index[k] < 0 || index[k] >= n) throw Error("TensorTrain::fiber: index out of range in mode " + std::to_string(k));
    tmp.assign(static_cast<size_t>(a), 0.0);
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) tmp[i] += cores[k][(i * n + index[k]) * b + j] * right[j];
    right.swap(tmp);
  }
  const int64_t a = ranks[mode], n = modes[mode], b = ranks[mode + 1];
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t x = 0; x < n; ++x) {
    double s = 0;
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j) s += left[i] * cores[mode][(i * n + x) * b + j] * right[j];
    out[x] = static_cast<float>(s);
  }
  return out;
}

}  // namespace tsm
