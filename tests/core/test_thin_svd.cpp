// thin_svd (common/thin_svd.h) and the TT-SVD built on it must be exact on real weights: Eigen
// 3.4.0's BDCSVD alone returns a wrong factorization of an unfolding of this GPT-2 fixture weight.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include "support/test_paths.h"
#include "common/thin_svd.h"
#include "formats/hf_model_dir.h"
#include "tt/tt_svd.h"

using namespace tsm;

TEST(ThinSvd, ReconstructsRandomAndRankDeficientMatrices) {
  Eigen::MatrixXd A = Eigen::MatrixXd::Random(70, 40);
  Eigen::MatrixXd B = Eigen::MatrixXd::Random(64, 3) * Eigen::MatrixXd::Random(3, 64);
  for (const Eigen::MatrixXd& M : {A, B}) {
    ThinSvd s = thin_svd(M);
    const double err = (s.U * s.S.asDiagonal() * s.V.transpose() - M).norm() / M.norm();
    EXPECT_LT(err, 1e-12);
    for (int i = 1; i < s.S.size(); ++i) EXPECT_GE(s.S[i - 1], s.S[i]);
  }
}

TEST(ThinSvd, TtSvdExactOnEveryGpt2FixtureWeight) {
  HfModelDir m = HfModelDir::open(std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny");
  for (const auto& name : m.tensor_names()) {
    const Tensor& t = m.at(name);
    if (t.shape.size() != 2 || t.numel() != 4096) continue;  // the 64 x 64 weights: 8x8x8x8
    MatrixRM W = t.to_matrix();
    const std::vector<int64_t> modes{8, 8, 8, 8};
    TensorTrain tt = tt_svd(std::span<const float>(W.data(), W.size()), modes, {});
    std::vector<float> full = tt.full();
    const double err = (Eigen::Map<const Eigen::VectorXf>(full.data(), 4096) - Eigen::Map<const Eigen::VectorXf>(W.data(), 4096)).norm() / W.norm();
    EXPECT_LT(err, 1e-5) << name;
  }
}
