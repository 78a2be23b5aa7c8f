// qlr (block-quantized base + low-rank int8 correction): the correction lowers the error of its base
// by at least what its rank captures of a residual with structure, never raises it much on a
// residual without any, fits the inputs' norm when calibrated, respects orientation, stores what
// it says, and refuses corrupted tensors and bad params.
#include <gtest/gtest.h>

#include <Eigen/SVD>
#include <random>

#include "common/error.h"
#include "formats/array_pack.h"
#include "methods/method_table.h"
#include "support/param_error.h"

using namespace tsm;

namespace {

MatrixRM random_matrix(int64_t r, int64_t c, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n;
  MatrixRM M(r, c);
  for (int64_t i = 0; i < M.size(); ++i) M.data()[i] = n(g);
  return M;
}

double rel(const MatrixRM& A, const MatrixRM& B) { return double((A - B).norm() / A.norm()); }

}  // namespace

TEST(Qlr, CorrectionIsTheBestRankKOfTheResidualAndCountsItsBytes) {
  // A weight with a few strong directions on top of noise, as trained weights have.
  MatrixRM W = random_matrix(96, 256, 1) * 0.05f;
  W += random_matrix(96, 4, 2) * random_matrix(4, 256, 3);
  const Codec& q = find_codec("q3_k");
  const Codec& c = find_codec("qlr");
  const json p = c.resolve({{"base", "q3_k"}, {"rank", 8}}, W.rows(), W.cols());
  const auto base = q.encode(W, q.resolve({}, W.rows(), W.cols()), {});
  const auto corr = c.encode(W, p, {});
  // The optimum for rank 8: the residual's energy beyond its 8 largest singular values (Eckart-Young);
  // the int8 factors may add 2% to it.
  const Eigen::MatrixXd R = (W - q.decode(base)).cast<double>();
  const Eigen::VectorXd s = Eigen::JacobiSVD<Eigen::MatrixXd>(R).singularValues();
  const double optimum = s.tail(s.size() - 8).squaredNorm();
  const double got = (W - c.decode(corr)).cast<double>().squaredNorm();
  EXPECT_LE(got, 1.02 * optimum);
  EXPECT_GE(got, 0.999 * optimum);
  EXPECT_LT(got, R.squaredNorm());
  // stored: the base's blocks plus int8 factors (96*8 + 8*256) and their f32 scales (96 + 8)
  EXPECT_EQ(c.stored_bytes(corr), q.stored_bytes(base) + 96 * 8 + 8 * 256 + 4 * (96 + 8) + 8 * (2 + 1 + 2 + 1));
}

TEST(Qlr, WhiteResidualGainsLittleAndLosesNothing) {
  const MatrixRM W = random_matrix(64, 256, 4);
  const Codec& c = find_codec("qlr");
  const auto t = c.encode(W, c.resolve({{"base", "q4_k"}, {"rank", 4}}, 64, 256), {});
  const Codec& q = find_codec("q4_k");
  const double eb = rel(W, q.decode(q.encode(W, q.resolve({}, 64, 256), {}))), ec = rel(W, c.decode(t));
  EXPECT_LE(ec, eb * 1.001);
  EXPECT_GT(ec, eb * 0.85);  // i.i.d. noise has no dominant direction for 4 ranks of 64 to take
}

TEST(Qlr, CalibratedFitsTheInputsNorm) {
  // Inputs with very unequal energies: the calibrated factor spends its rank where inputs are large.
  const int64_t out = 48, in = 128;
  MatrixRM W = random_matrix(out, in, 5);
  MatrixRMd C = MatrixRMd::Zero(in, in);
  for (int64_t i = 0; i < in; ++i) C(i, i) = i < 8 ? 100.0 : 0.01;
  const Codec& c = find_codec("qlr");
  const json plain = c.resolve({{"base", "q2_k"}, {"rank", 8}}, out, in);
  const json gptq = c.resolve({{"base", "q2_k"}, {"rank", 8}, {"calibration", "gptq"}}, out, in);
  EXPECT_TRUE(c.needs_calibration(gptq));
  EXPECT_THROW(c.encode(W, gptq, {}), ParamError);
  const Calibration cal{&C, 0, "cholesky"};
  auto loss = [&](const MatrixRM& Wh) {
    const Eigen::MatrixXd E = (W - Wh).cast<double>();
    return (E * C * E.transpose()).trace();
  };
  const double lp = loss(c.decode(c.encode(W, plain, {}))), lc = loss(c.decode(c.encode_calibrated(W, gptq, cal, {})));
  EXPECT_LT(lc, 0.5 * lp) << "plain " << lp << " calibrated " << lc;
}

TEST(Qlr, InOutOrientationCorrectsTheSameWeight) {
  MatrixRM W = random_matrix(64, 256, 6) * 0.05f;
  W += random_matrix(64, 2, 7) * random_matrix(2, 256, 8);
  const Codec& c = find_codec("qlr");
  const MatrixRM Wt = W.transpose();  // stored (in, out)
  const auto a = c.encode(W, c.resolve({{"rank", 4}}, 64, 256), {});
  const auto b = c.encode(Wt, c.resolve({{"rank", 4}, {"orientation", "in_out"}}, 256, 64), {});
  const MatrixRM Da = c.decode(a), Db = c.decode(b);
  ASSERT_EQ(Db.rows(), 256);
  EXPECT_LT((MatrixRM(Db.transpose()) - Da).norm(), 1e-5 * W.norm());
}

TEST(Qlr, BadParamsAndCorruptedTensors) {
  const Codec& c = find_codec("qlr");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"rank", 0}}, 8, 32); }), "rank");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"rank", 9}}, 8, 32); }), "rank");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"base", "q9"}}, 8, 32); }), "base");
  EXPECT_EQ(test::param_error_field([&] { c.resolve({{"ranks", 2}}, 8, 32); }), "ranks");
  const MatrixRM W = random_matrix(8, 64, 9);
  const auto good = c.encode(W, c.resolve({{"rank", 2}}, 8, 64), {});
  {
    auto t = good;
    t.mutable_arrays(1)->mutable_data()->pop_back();  // "left" one byte short
    EXPECT_THROW(c.decode(t), FormatError);
  }
  {
    auto t = good;
    t.set_params_json(R"({"base":"q4_k","rank":5,"orientation":"out_in","calibration":"none"})");  // rank disagrees with arrays
    EXPECT_THROW(c.decode(t), FormatError);
  }
  {
    auto t = good;
    t.set_params_json("{not json");
    EXPECT_THROW(c.decode(t), FormatError);
  }
  {
    auto t = good;
    t.mutable_arrays()->erase(t.mutable_arrays()->begin() + 3);  // "right" missing
    EXPECT_THROW(c.decode(t), FormatError);
  }
}
