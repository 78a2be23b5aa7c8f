#include "common/thin_svd.h"

#include <Eigen/SVD>
#include <algorithm>

namespace tsm {

ThinSvd thin_svd(const Eigen::Ref<const Eigen::MatrixXd>& A) {
  ThinSvd s;
  if (std::min(A.rows(), A.cols()) > 16) {
    Eigen::BDCSVD<Eigen::MatrixXd> bdc(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const double err = (bdc.matrixU() * bdc.singularValues().asDiagonal() * bdc.matrixV().transpose() - A).norm();
    if (bdc.info() == Eigen::Success && err <= 1e-10 * std::max(A.norm(), 1e-300)) {
      s.U = bdc.matrixU();
      s.S = bdc.singularValues();
      s.V = bdc.matrixV();
      return s;
    }
  }
  Eigen::JacobiSVD<Eigen::MatrixXd> jac(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
  s.U = jac.matrixU();
  s.S = jac.singularValues();
  s.V = jac.matrixV();
  return s;
}

}  // namespace tsm
