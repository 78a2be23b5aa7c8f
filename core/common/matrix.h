// Dense f32 matrices used across core. Layout: row-major (C order), the layout of .npy and
// safetensors files and of embedding tables (one token = one contiguous row).
#pragma once
#include <Eigen/Core>

namespace tsm {

using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixRMd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorF = Eigen::VectorXf;
using ConstMatrixRef = Eigen::Ref<const MatrixRM>;
using MapMatrix = Eigen::Map<MatrixRM>;
using ConstMapMatrix = Eigen::Map<const MatrixRM>;

}  // namespace tsm
