#include "methods/saten/sparse_residual.h"

#include <algorithm>
#if defined(__AVX2__)
#include <immintrin.h>
#endif
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace tsm {

SparsitySpec SparsitySpec::parse(const std::string& text, double density) {
  SparsitySpec s;
  if (text == "none") {
    s.kind = SparsityKind::None;
    return s;
  }
  if (text == "unstructured") {
    if (!(density >= 0.0 && density <= 1.0)) throw ParamError("density", "must lie in [0, 1], got " + std::to_string(density));
    s.kind = density > 0 ? SparsityKind::Unstructured : SparsityKind::None;
    s.density = density;
    return s;
  }
  const auto colon = text.find(':');
  if (colon == std::string::npos)
    throw ParamError("sparsity", "must be \"none\", \"unstructured\" or \"N:M\" such as \"2:4\", got \"" + text + "\"");
  try {
    size_t p1 = 0, p2 = 0;
    s.n = std::stoi(text.substr(0, colon), &p1);
    s.m = std::stoi(text.substr(colon + 1), &p2);
    if (p1 != colon || p2 != text.size() - colon - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw ParamError("sparsity", "\"" + text + "\" is not of the form N:M with integers");
  }
  if (s.n < 1 || s.m < 2 || s.n > s.m || s.m > 256)
    throw ParamError("sparsity", "N:M needs 1 <= N <= M and 2 <= M <= 256, got " + text);
  s.kind = SparsityKind::NM;
  s.density = double(s.n) / s.m;
  return s;
}

std::string SparsitySpec::str() const {
  switch (kind) {
    case SparsityKind::None: return "none";
    case SparsityKind::Unstructured: return "unstructured";
    case SparsityKind::NM: return std::to_string(n) + ":" + std::to_string(m);
  }
  return "none";
}

double SparsitySpec::kept_fraction() const {
  switch (kind) {
    case SparsityKind::None: return 0.0;
    case SparsityKind::Unstructured: return density;
    case SparsityKind::NM: return double(n) / m;
  }
  return 0.0;
}

SparseResidual SparseResidual::empty(int64_t rows, int64_t cols) {
  SparseResidual s;
  s.rows = rows;
  s.cols = cols;
  s.row_ptr.assign(size_t(rows + 1), 0);
  return s;
}

void SparseResidual::add_to(Eigen::Ref<MatrixRM> W) const {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) W(r, col[p]) += values[p];
}

MatrixRM SparseResidual::dense() const {
  MatrixRM W = MatrixRM::Zero(rows, cols);
  add_to(W);
  return W;
}

namespace {

/// sum_p values[p] * x[col[p]] over p in [b, e): eight partial sums (AVX2 gathers where the build
/// has them) instead of one dependent chain of adds.
float row_dot(const float* values, const int32_t* col, int64_t b, int64_t e, const float* x) {
  int64_t p = b;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc = _mm256_setzero_ps();
  for (; p + 8 <= e; p += 8) {
    const __m256i idx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + p));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(values + p), _mm256_i32gather_ps(x, idx, 4), acc);
  }
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float sum = _mm_cvtss_f32(h);
#else
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (; p + 8 <= e; p += 8)
    for (int k = 0; k < 8; ++k) a[k] += values[p + k] * x[col[p + k]];
  float sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
#endif
  for (; p < e; ++p) sum += values[p] * x[col[p]];
  return sum;
}

}  // namespace

void SparseResidual::apply_add(const float* x, int64_t n, float* y) const {
  if (nnz() == 0 || n <= 0) return;
  const bool par = nnz() * n > (int64_t(1) << 16);
  if (n == 1) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < rows; ++r) y[r] += row_dot(values.data(), col.data(), row_ptr[r], row_ptr[r + 1], x);
    return;
  }
  // Batches: x transposed to (cols, n) once, so every kept entry is one contiguous n-wide
  // multiply-add (vectorised) instead of n scattered loads.
  std::vector<float> xt(size_t(cols * n));  // (cols, n)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < cols; ++c) xt[size_t(c * n + t)] = x[t * cols + c];
#pragma omp parallel if (par)
  {
    std::vector<float> acc(static_cast<size_t>(n));  // (n) one output row for every batch row
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
        const float v = values[size_t(p)];
        const float* src = xt.data() + int64_t(col[size_t(p)]) * n;
        for (int64_t t = 0; t < n; ++t) acc[size_t(t)] += v * src[t];
      }
      for (int64_t t = 0; t < n; ++t) y[t * rows + r] += acc[size_t(t)];
    }
  }
}

void SparseResidual::refill(ConstMatrixRef E) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) values[p] = E(r, col[p]);
}

void SparseResidual::validate() const {
  if (rows < 0 || cols < 0) throw FormatError("sparse residual: negative shape");
  if (int64_t(row_ptr.size()) != rows + 1)
    throw FormatError("sparse residual: row_ptr has " + std::to_string(row_ptr.size()) + " entries, expected " +
                      std::to_string(rows + 1));
  if (col.size() != values.size())
    throw FormatError("sparse residual: " + std::to_string(col.size()) + " column indices but " +
                      std::to_string(values.size()) + " values");
  if (row_ptr[0] != 0 || row_ptr[rows] != nnz())
    throw FormatError("sparse residual: row_ptr must start at 0 and end at nnz = " + std::to_string(nnz()));
  for (int64_t r = 0; r < rows; ++r) {
    if (row_ptr[r + 1] < row_ptr[r]) throw FormatError("sparse residual: row_ptr decreases at row " + std::to_string(r));
    for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
      if (col[p] < 0 || col[p] >= cols)
        throw FormatError("sparse residual: column " + std::to_string(col[p]) + " out of range [0, " +
                          std::to_string(cols) + ") in row " + std::to_string(r));
      if (p > row_ptr[r] && col[p] <= col[p - 1])
        throw FormatError("sparse residual: columns not strictly increasing in row " + std::to_string(r));
    }
  }
}

bool SparseResidual::satisfies_nm(int n, int m) const {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t group = -1, count = 0;
    for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
      const int64_t g = col[p] / m;
      if (g != group) { group = g; count = 0; }
      if (++count > n) return false;
    }
  }
  return true;
}

SparseResidual select_sparse(ConstMatrixRef E, const SparsitySpec& spec, std::span<const float> col_weight) {
  const int64_t rows = E.rows(), cols = E.cols();
  if (!col_weight.empty() && int64_t(col_weight.size()) != cols)
    throw ParamError("col_weight", "has " + std::to_string(col_weight.size()) + " entries, matrix has " +
                                       std::to_string(cols) + " columns");
  auto score = [&](int64_t r, int64_t c) {
    const float a = std::abs(E(r, c));
    return col_weight.empty() ? a : a * col_weight[c];
  };
  SparseResidual S = SparseResidual::empty(rows, cols);
  if (spec.kind == SparsityKind::None) return S;

  if (spec.kind == SparsityKind::Unstructured) {
    const int64_t total = rows * cols;
    const int64_t k = std::clamp<int64_t>(std::llround(spec.density * double(total)), 0, total);
    if (k == 0) return S;
    // Threshold = k-th largest score; keep everything above it and enough of the ties.
    std::vector<float> sc(static_cast<size_t>(total));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) sc[r * cols + c] = score(r, c);
    std::vector<float> tmp = sc;
    std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), std::greater<float>());
    const float thr = tmp[k - 1];
    tmp.clear();
    tmp.shrink_to_fit();
    int64_t above = 0;
    for (float v : sc) above += v > thr;
    int64_t ties_left = k - above;
    S.col.reserve(size_t(k));
    S.values.reserve(size_t(k));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const float v = sc[r * cols + c];
        if (v > thr || (v == thr && ties_left-- > 0)) {
          S.col.push_back(int32_t(c));
          S.values.push_back(E(r, c));
        }
      }
      S.row_ptr[r + 1] = int64_t(S.values.size());
    }
    return S;
  }

  // N:M along the input dimension of every row.
  const int n = spec.n, m = spec.m;
  if (cols % m != 0)
    throw ParamError("sparsity", std::to_string(n) + ":" + std::to_string(m) + " needs the input dimension (" +
                                     std::to_string(cols) + ") to be a multiple of " + std::to_string(m));
  S.col.reserve(size_t(rows * (cols / m) * n));
  S.values.reserve(S.col.capacity());
  std::vector<int> idx(static_cast<size_t>(m));
  std::vector<float> gs(static_cast<size_t>(m));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols / m; ++g) {
      for (int j = 0; j < m; ++j) gs[j] = score(r, g * m + j);
      std::iota(idx.begin(), idx.end(), 0);
      // stable: among equal scores the lower index wins, so the mask is deterministic
      std::partial_sort(idx.begin(), idx.begin() + n, idx.end(),
                        [&](int a, int b) { return gs[a] > gs[b] || (gs[a] == gs[b] && a < b); });
      std::sort(idx.begin(), idx.begin() + n);
      for (int j = 0; j < n; ++j) {
        S.col.push_back(int32_t(g * m + idx[j]));
        S.values.push_back(E(r, g * m + idx[j]));
      }
    }
    S.row_ptr[r + 1] = int64_t(S.values.size());
  }
  return S;
}

}  // namespace tsm
