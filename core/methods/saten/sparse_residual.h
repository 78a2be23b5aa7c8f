// The sparse part S of Saten's W ~ TT(W) + S, held as CSR over output rows (S is (rows=d_out, cols=d_in)).
// Patterns: unstructured top-k by magnitude over the whole matrix, or N:M along the input dimension
// (in every group of M consecutive input indices of a row at most N entries are kept, as 2:4 sparsity).
// Invariant: row_ptr is (rows+1), non-decreasing, row_ptr[0] = 0, row_ptr[rows] = nnz; columns strictly
// increase within a row and lie in [0, cols). Layout: col (nnz), values (nnz) in row order.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/matrix.h"

namespace tsm {

enum class SparsityKind : uint8_t { None, Unstructured, NM };

struct SparsitySpec {
  SparsityKind kind = SparsityKind::Unstructured;
  double density = 0.0;   ///< unstructured: fraction of entries kept, 0..1
  int n = 2, m = 4;       ///< N:M: keep n of every m consecutive input indices
  /// "none", "unstructured" or "N:M" (e.g. "2:4", 1 <= N <= M <= 256).
  static SparsitySpec parse(const std::string& text, double density);
  std::string str() const;
  /// Fraction of entries kept (unstructured: density; N:M: n/m; none: 0).
  double kept_fraction() const;
};

struct SparseResidual {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> row_ptr;  ///< (rows+1)
  std::vector<int32_t> col;      ///< (nnz) input index of each kept entry
  std::vector<float> values;     ///< (nnz)

  int64_t nnz() const { return int64_t(values.size()); }
  /// An empty (all-zero) residual of the given shape.
  static SparseResidual empty(int64_t rows, int64_t cols);
  /// W += S (W is (rows, cols)).
  void add_to(Eigen::Ref<MatrixRM> W) const;
  MatrixRM dense() const;
  /// y (n, rows) += x (n, cols) S^T, parallel over rows.
  void apply_add(const float* x /*(n, cols)*/, int64_t n, float* y /*(n, rows)*/) const;
  /// Sets every kept value to E at its position (the mask stays).
  void refill(ConstMatrixRef E);
  /// Checks the invariant; throws FormatError naming the violation.
  void validate() const;
  /// True when every group of m consecutive columns of every row holds at most n entries.
  bool satisfies_nm(int n, int m) const;
};

/// The mask that keeps the entries of E with the largest score |E_ij| * col_weight[j] (col_weight
/// empty = 1) under `spec`, with values E_ij. N:M needs cols % m == 0 (else ParamError).
SparseResidual select_sparse(ConstMatrixRef E, const SparsitySpec& spec, std::span<const float> col_weight = {});

}  // namespace tsm
