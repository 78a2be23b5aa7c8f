// Calibration-aware Saten: fit W (d_out, d_in) in the activation-weighted norm
//   loss(W_hat) = ||X (W - W_hat)^T||_F^2 / n = tr(D C D^T),  D = W - W_hat,  C = X^T X / n  (d_in, d_in),
// given activations X (n, d_in) of the layer. Whitening C + lambda I = L L^T (Cholesky) or its diagonal
// turns it into a Frobenius problem ||D L||_F^2: the saten layout's input/output bond (rank r_a) is
// then chosen by the SVD of (W - S) L, the mask by |E_ij| sqrt(C_jj); finally the cores and the kept
// values are fine-tuned with Adam on the loss (mask fixed). Invariant: every stage keeps its input
// when it would raise the training loss, so the result is never worse than the data-free fit.
#pragma once
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/matrix.h"
#include "methods/saten/saten_fit.h"

namespace tsm {

enum class Whitening : uint8_t { None, Diagonal, Cholesky };
/// "none", "diag" or "cholesky"; throws ParamError("whitening") otherwise.
Whitening parse_whitening(std::string_view s);

struct CalibrationOptions {
  Whitening whitening = Whitening::Cholesky;
  double damping = 0.01;      ///< lambda = damping * mean(diag C), keeps the whitening invertible
  int adam_steps = 100;       ///< 0 = no fine-tuning
  double lr = 1e-2;           ///< Adam step relative to each parameter group's RMS at the start
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  std::function<void(int)> on_step;  ///< called every step (cancellation / progress); may be empty
};

struct CalibrationReport {
  double loss_data_free = 0;   ///< relative training loss (loss / tr(W C W^T)) of the data-free fit
  double loss_whitened = 0;    ///< after the whitened re-fit (== data-free when it was not better)
  double loss_final = 0;       ///< after Adam
  std::vector<double> adam_history;  ///< relative training loss every step
};

/// C = X^T X / n for X (n, d_in), in double precision.
MatrixRMd activation_covariance(ConstMatrixRef X);
/// Relative layer loss tr(D C D^T) / tr(W C W^T) with D = W - W_hat.
double relative_layer_loss(ConstMatrixRef W, ConstMatrixRef W_hat, const MatrixRMd& C);

/// The full calibration-aware fit (data-free fit, whitened re-fit, Adam).
SatenFactors saten_fit_calibrated(ConstMatrixRef W, const MatrixRMd& C, const SatenFitOptions& fit,
                                  const CalibrationOptions& cal, CalibrationReport* report = nullptr);

/// Adam on the cores and kept values of `f` (mask fixed), minimising the loss with covariance C.
/// Returns the relative training loss of the best iterate, which is left in `f`.
double saten_finetune(SatenFactors& f, ConstMatrixRef W, const MatrixRMd& C, const CalibrationOptions& cal,
                      std::vector<double>* history = nullptr);

}  // namespace tsm
