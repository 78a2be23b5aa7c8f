#include "methods/svd/svd_codec.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/array_pack.h"
#include "methods/param_spec.h"

namespace tsm {

GramSvd gram_svd(ConstMatrixRef A) {
  const int64_t rows = A.rows(), cols = A.cols();
  GramSvd g;
  g.wide = rows < cols;
  const int64_t p = std::min(rows, cols);
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(p, p);
  // accumulate the Gram matrix in double, a block of rows (or columns) at a time
  constexpr int64_t kBlock = 2048;
  if (!g.wide) {
    for (int64_t i0 = 0; i0 < rows; i0 += kBlock) {
      const int64_t n = std::min(kBlock, rows - i0);
      Eigen::MatrixXd B = A.middleRows(i0, n).cast<double>();  // (n, cols)
      G.selfadjointView<Eigen::Lower>().rankUpdate(B.transpose());
    }
  } else {
    for (int64_t j0 = 0; j0 < cols; j0 += kBlock) {
      const int64_t n = std::min(kBlock, cols - j0);
      Eigen::MatrixXd B = A.middleCols(j0, n).cast<double>();  // (rows, n)
      G.selfadjointView<Eigen::Lower>().rankUpdate(B);
    }
  }
  G = G.selfadjointView<Eigen::Lower>();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(G);
  g.sigma = es.eigenvalues().reverse().cwiseMax(0.0).cwiseSqrt();
  g.basis = es.eigenvectors().rowwise().reverse();
  return g;
}

void svd_factors(ConstMatrixRef A, const GramSvd& g, int64_t k, MatrixRM& left, MatrixRM& right) {
  k = std::clamp<int64_t>(k, 1, g.sigma.size());
  if (!g.wide) {
    Eigen::MatrixXf V = g.basis.leftCols(k).cast<float>();  // (cols, k)
    left.noalias() = A * V;
    right = V.transpose();
  } else {
    Eigen::MatrixXf U = g.basis.leftCols(k).cast<float>();  // (rows, k)
    left = U;
    right.noalias() = U.transpose() * A;
  }
}

int64_t rank_for_eps(const Eigen::VectorXd& sigma, double eps) {
  const double total = sigma.squaredNorm();
  double tail = 0;
  int64_t k = sigma.size();
  while (k > 1 && tail + sigma[k - 1] * sigma[k - 1] <= eps * eps * total) {
    tail += sigma[k - 1] * sigma[k - 1];
    --k;
  }
  return std::max<int64_t>(k, 1);
}

// ---- parameters ---------------------------------------------------------------------------------

namespace {

const ParamSpec<SvdParams>& svd_param_spec() {
  static const ParamSpec<SvdParams> spec(std::string(kSvdMethod), {
      integer_param("rank", &SvdParams::rank, 1, std::numeric_limits<int64_t>::max(),
                    "kept singular values (default min(rows, cols) / 8)"),
      number_param("eps", &SvdParams::eps, {0, 1}, "relative Frobenius error bound; picks the rank"),
  });
  return spec;
}

}  // namespace

SvdParams resolve_svd_params(const json& params, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) throw ParamError("shape", "svd needs a non-empty matrix");
  SvdParams p = svd_param_spec().parse(params);
  const int64_t p_max = std::min(rows, cols);
  if (p.rank && p.eps) throw ParamError("rank", "give either rank or eps, not both");
  if (p.rank && *p.rank > p_max) throw ParamError("rank", "must be an integer in 1.." + std::to_string(p_max));
  if (!p.rank && !p.eps) p.rank = std::max<int64_t>(1, p_max / 8);
  return p;
}

json svd_params_json(const SvdParams& p) { return svd_param_spec().to_json(p); }

json SvdCodec::param_schema() const { return svd_param_spec().schema(); }

json SvdCodec::resolve(const json& p, int64_t rows, int64_t cols) const {
  return svd_params_json(resolve_svd_params(p, rows, cols));
}

v1::CompressedTensor SvdCodec::encode(ConstMatrixRef W, const json& r, const CodecContext& ctx) const {
  ctx.check_cancel();
  GramSvd g = gram_svd(W);
  ctx.report(0.7);
  ctx.check_cancel();
  const SvdParams P = resolve_svd_params(r, W.rows(), W.cols());
  const int64_t k = P.rank ? *P.rank : rank_for_eps(g.sigma, *P.eps);
  MatrixRM L, R;
  svd_factors(W, g, k, L, R);
  v1::CompressedTensor t;
  t.set_method(std::string(kSvdMethod));
  t.add_shape(W.rows());
  t.add_shape(W.cols());
  t.set_params_json(svd_params_json({L.cols(), P.eps}).dump());
  const std::vector<int64_t> ls{L.rows(), L.cols()}, rs{R.rows(), R.cols()};
  t.add_arrays()->CopyFrom(make_array("left", DType::F32, ls, L.data(), L.size() * 4));
  t.add_arrays()->CopyFrom(make_array("right", DType::F32, rs, R.data(), R.size() * 4));
  ctx.report(1.0);
  return t;
}

MatrixRM SvdCodec::decode(const v1::CompressedTensor& t) const {
  if (t.shape_size() != 2 || t.shape(0) > (uint64_t{1} << 40) || t.shape(1) > (uint64_t{1} << 40))
    throw FormatError("svd tensor '" + t.name() + "': shape must be (rows, cols)");
  const int64_t rows = t.shape(0), cols = t.shape(1);
  const v1::Array& l = find_array(t, "left");
  const v1::Array& r = find_array(t, "right");
  auto ls = array_shape(l), rs = array_shape(r);
  if (l.dtype() != v1::F32 || r.dtype() != v1::F32 || ls.size() != 2 || rs.size() != 2 || ls[0] != rows || rs[1] != cols ||
      ls[1] != rs[0] || ls[1] < 1)
    throw FormatError("svd tensor '" + t.name() + "': 'left' must be f32 (rows, k) and 'right' f32 (k, cols) for (" +
                      std::to_string(rows) + ", " + std::to_string(cols) + ")");
  auto L = unpack<float>(l);
  auto R = unpack<float>(r);
  return ConstMapMatrix(L.data(), rows, ls[1]) * ConstMapMatrix(R.data(), rs[0], cols);
}

// The Gram matrix of the smaller side and its eigen-decomposition in double (n^2 each, a few
// copies), the factors, and the f32 copies of the default.
uint64_t SvdCodec::working_set_bytes(int64_t rows, int64_t cols, const json& r, bool cal) const {
  const uint64_t mn = uint64_t(rows) * uint64_t(cols), n = uint64_t(std::min(rows, cols));
  return Codec::working_set_bytes(rows, cols, r, cal) + 8 * mn + 40 * n * n;
}

}  // namespace tsm
