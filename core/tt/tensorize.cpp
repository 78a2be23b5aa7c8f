#include "tt/tensorize.h"

#include <algorithm>
#include <string>
#include <tuple>

#include "common/error.h"

namespace tsm {

namespace {

// Enumerates non-decreasing factor lists of `n` with exactly `left` factors, each >= lo.
void enumerate(int64_t n, int left, int64_t lo, std::vector<int64_t>& cur, std::vector<std::vector<int64_t>>& out) {
  if (left == 1) {
    if (n >= lo) {
      cur.push_back(n);
      out.push_back(cur);
      cur.pop_back();
    }
    return;
  }
  for (int64_t f = lo; f <= n; ++f) {
    // f^left <= n is needed for a non-decreasing list
    int64_t p = 1;
    bool over = false;
    for (int i = 0; i < left; ++i) {
      p *= f;
      if (p > n) { over = true; break; }
    }
    if (over) break;
    if (n % f) continue;
    cur.push_back(f);
    enumerate(n / f, left - 1, f, cur, out);
    cur.pop_back();
  }
}

}  // namespace

// "Balanced" ranks the candidates by: the largest smallest factor, then the most factors equal to that
// smallest factor, then the smallest largest factor. This gives the shapes used by TensorSLM
// (768 -> 8x8x12, 4x4x4x12): many equal small modes keep the TT ranks of the leading bonds small.
std::vector<int64_t> balanced_factorization(int64_t n, int order) {
  if (n < 1) throw ParamError("shape", "cannot factor a length of " + std::to_string(n));
  if (order < 1) throw ParamError("order", "must be >= 1, got " + std::to_string(order));
  if (order == 1) return {n};
  std::vector<std::vector<int64_t>> cands;
  std::vector<int64_t> cur;
  enumerate(n, order, 2, cur, cands);
  if (cands.empty()) {
    // fewer prime factors than `order` (e.g. a prime): pad with ones, keep every factor >= 2 that exists
    std::vector<int64_t> primes;
    int64_t m = n;
    for (int64_t p = 2; p * p <= m; ++p)
      while (m % p == 0) { primes.push_back(p); m /= p; }
    if (m > 1) primes.push_back(m);
    std::vector<int64_t> f(order, 1);
    // primes (<= order-1 of them) fill the last slots
    for (size_t i = 0; i < primes.size(); ++i) f[order - primes.size() + i] = primes[i];
    std::sort(f.begin(), f.end());
    return f;
  }
  auto key = [](const std::vector<int64_t>& f) {
    int64_t mn = f.front();
    int64_t eq = std::count(f.begin(), f.end(), mn);
    return std::tuple<int64_t, int64_t, int64_t>(-mn, -eq, f.back());
  };
  return *std::min_element(cands.begin(), cands.end(), [&](const auto& a, const auto& b) { return key(a) < key(b); });
}

void validate_shape(std::span<const int64_t> shape, int64_t n, const char* field) {
  if (shape.empty()) throw ParamError(field, "must list at least one mode");
  int64_t p = 1;
  std::string s;
  for (int64_t m : shape) {
    if (m < 1) throw ParamError(field, "every mode must be >= 1, got " + std::to_string(m));
    if (p > (int64_t{1} << 40) / m) throw ParamError(field, "product of modes is too large");
    p *= m;
    s += (s.empty() ? "" : "x") + std::to_string(m);
  }
  if (p != n)
    throw ParamError(field, "modes " + s + " multiply to " + std::to_string(p) + ", but the row length is " + std::to_string(n));
}

}  // namespace tsm
