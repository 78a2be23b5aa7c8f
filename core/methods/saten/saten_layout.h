// How a weight matrix W (d_out, d_in) becomes the tensor that Saten decomposes.
//   saten: W^T (d_in, d_out) reshaped to modes (i_1..i_a, o_1..o_b): input factors, then output factors.
//   mpo  : TT-matrix, modes (o_1 i_1, o_2 i_2, ..., o_d i_d), combined index o_k * in_modes[k] + i_k.
// Invariant: prod(in_modes) == d_in, prod(out_modes) == d_out; for mpo both have `order` entries.
// Tensor layout: row-major over tensor_modes(); element W[o, i] sits at out_offset[o] + in_offset[i].
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/matrix.h"

namespace tsm {

enum class SatenLayoutKind : uint8_t { Saten, Mpo };

std::string_view layout_name(SatenLayoutKind k);
/// "saten" or "mpo"; throws ParamError("layout") otherwise.
SatenLayoutKind parse_layout(std::string_view s);

struct SatenLayout {
  SatenLayoutKind kind = SatenLayoutKind::Saten;
  int64_t d_out = 0, d_in = 0;
  std::vector<int64_t> in_modes;   ///< i_1..i_a (prod = d_in)
  std::vector<int64_t> out_modes;  ///< o_1..o_b (prod = d_out)

  /// Modes of the tensor train: saten (i_1..i_a, o_1..o_b); mpo (o_1*i_1, ..., o_d*i_d).
  std::vector<int64_t> tensor_modes() const;
  /// Number of TT cores that consume input modes only (saten: a) — the rest consume output modes.
  /// For mpo every core consumes both and this is 0.
  int input_cores() const { return kind == SatenLayoutKind::Saten ? int(in_modes.size()) : 0; }
  /// Offsets into the tensor of W[o, :] and W[:, i]: (d_out) and (d_in) entries.
  std::vector<int64_t> out_offsets() const;
  std::vector<int64_t> in_offsets() const;
  /// Checks the invariant; throws ParamError naming the bad modes.
  void validate() const;
};

/// The most balanced layout of `order` TT cores: saten splits the order into a = order / 2 input and
/// order - a output modes (order >= 2); mpo factors d_in and d_out into `order` modes each (order >= 1).
SatenLayout make_saten_layout(SatenLayoutKind kind, int64_t d_out, int64_t d_in, int order);
/// A layout from explicit modes (validated).
SatenLayout make_saten_layout(SatenLayoutKind kind, std::vector<int64_t> out_modes, std::vector<int64_t> in_modes);

/// W (d_out, d_in) -> tensor (prod(tensor_modes) floats, row-major over tensor_modes()).
std::vector<float> to_layout_tensor(const SatenLayout& L, ConstMatrixRef W);
/// Inverse of to_layout_tensor: tensor -> W (d_out, d_in).
MatrixRM from_layout_tensor(const SatenLayout& L, std::span<const float> t);

}  // namespace tsm
