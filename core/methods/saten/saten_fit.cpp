#include "methods/saten/saten_fit.h"

#include <cmath>

#include "common/error.h"
#include "tt/tt_svd.h"

namespace tsm {

namespace {
void zero_mask(const SparseResidual& S, MatrixRM& E) {
  for (int64_t r = 0; r < S.rows; ++r)
    for (int64_t p = S.row_ptr[r]; p < S.row_ptr[r + 1]; ++p) E(r, S.col[p]) = 0.f;
}
}  // namespace

TensorTrain layout_tt_svd(const SatenLayout& L, ConstMatrixRef W, double eps, std::span<const int64_t> ranks) {
  const auto t = to_layout_tensor(L, W);
  const auto modes = L.tensor_modes();
  TtSvdOptions o;
  o.eps = eps;
  o.max_ranks.assign(ranks.begin(), ranks.end());
  if (!o.max_ranks.empty() && o.max_ranks.size() != modes.size() - 1)
    throw ParamError("ranks", "needs " + std::to_string(modes.size() - 1) + " entries (order - 1), got " +
                                  std::to_string(o.max_ranks.size()));
  return tt_svd(t, modes, o);
}

SatenFactors saten_fit(ConstMatrixRef W, const SatenFitOptions& opt, SatenFitReport* report) {
  const SatenLayout& L = opt.layout;
  L.validate();
  if (W.rows() != L.d_out || W.cols() != L.d_in) throw ParamError("W", "matrix shape does not match the layout");
  const double wn = W.norm();
  const double denom = wn > 0 ? wn : 1.0;
  SatenFitReport local;
  SatenFitReport& rep = report ? *report : local;
  rep = {};

  SatenFactors best;
  best.layout = L;
  if (opt.on_round) opt.on_round(0);
  best.tt = layout_tt_svd(L, W, opt.eps, opt.ranks);
  MatrixRM E = W - best.tt_dense();
  best.sparse = select_sparse(E, opt.sparsity, opt.col_weight);
  zero_mask(best.sparse, E);  // S holds E's values on the mask, so W - TT - S is E off the mask
  double err = E.norm() / denom;
  rep.history.push_back(err);
  if (opt.sparsity.kind == SparsityKind::None || err == 0.0) return best;

  // The ranks of the first fit stay fixed: later rounds only re-distribute the same bytes.
  const std::vector<int64_t> fixed(best.tt.ranks.begin() + 1, best.tt.ranks.end() - 1);
  for (int round = 1; round <= opt.refine_rounds; ++round) {
    if (opt.on_round) opt.on_round(round);
    ++rep.rounds_tried;
    MatrixRM target = W - best.sparse.dense();  // W - S
    SatenFactors cand;
    cand.layout = L;
    cand.tt = layout_tt_svd(L, target, 0.0, fixed);
    MatrixRM E1 = W - cand.tt_dense();
    cand.sparse = select_sparse(E1, opt.sparsity, opt.col_weight);
    zero_mask(cand.sparse, E1);
    const double err1 = E1.norm() / denom;
    if (!(err1 < err)) break;  // never accept a worse iterate
    const bool stalled = err1 > err * (1.0 - opt.stall_tol);
    best = std::move(cand);
    err = err1;
    rep.history.push_back(err);
    if (stalled) break;
  }
  return best;
}

}  // namespace tsm
