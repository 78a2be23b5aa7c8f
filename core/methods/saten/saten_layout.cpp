#include "methods/saten/saten_layout.h"

#include <numeric>

#include "common/error.h"
#include "tt/tensorize.h"

namespace tsm {

namespace {

int64_t product(std::span<const int64_t> v) {
  return std::accumulate(v.begin(), v.end(), int64_t(1), std::multiplies<>());
}

std::string modes_str(std::span<const int64_t> v) {
  std::string s = "[";
  for (size_t k = 0; k < v.size(); ++k) s += (k ? "," : "") + std::to_string(v[k]);
  return s + "]";
}

// Offsets of each flat index of a mode group, given the stride of every mode (row-major digits).
std::vector<int64_t> digit_offsets(std::span<const int64_t> modes, std::span<const int64_t> strides) {
  const int64_t n = product(modes);
  std::vector<int64_t> off(n);
  std::vector<int64_t> digit(modes.size(), 0);
  int64_t cur = 0;
  for (int64_t f = 0; f < n; ++f) {
    off[f] = cur;
    // increment the row-major digit counter
    for (int k = int(modes.size()) - 1; k >= 0; --k) {
      cur += strides[k];
      if (++digit[k] < modes[k]) break;
      cur -= strides[k] * modes[k];
      digit[k] = 0;
    }
  }
  return off;
}

}  // namespace

std::string_view layout_name(SatenLayoutKind k) { return k == SatenLayoutKind::Saten ? "saten" : "mpo"; }

SatenLayoutKind parse_layout(std::string_view s) {
  if (s == "saten") return SatenLayoutKind::Saten;
  if (s == "mpo") return SatenLayoutKind::Mpo;
  throw ParamError("layout", "must be \"saten\" or \"mpo\", got \"" + std::string(s) + "\"");
}

std::vector<int64_t> SatenLayout::tensor_modes() const {
  std::vector<int64_t> m;
  if (kind == SatenLayoutKind::Saten) {
    m = in_modes;
    m.insert(m.end(), out_modes.begin(), out_modes.end());
  } else {
    for (size_t k = 0; k < in_modes.size(); ++k) m.push_back(out_modes[k] * in_modes[k]);
  }
  return m;
}

void SatenLayout::validate() const {
  for (int64_t m : in_modes)
    if (m < 1) throw ParamError("in_modes", "every mode must be >= 1, got " + modes_str(in_modes));
  for (int64_t m : out_modes)
    if (m < 1) throw ParamError("out_modes", "every mode must be >= 1, got " + modes_str(out_modes));
  if (in_modes.empty() || out_modes.empty()) throw ParamError("order", "need at least one input and one output mode");
  if (product(in_modes) != d_in)
    throw ParamError("in_modes", modes_str(in_modes) + " multiplies to " + std::to_string(product(in_modes)) +
                                     ", the matrix has " + std::to_string(d_in) + " input features");
  if (product(out_modes) != d_out)
    throw ParamError("out_modes", modes_str(out_modes) + " multiplies to " + std::to_string(product(out_modes)) +
                                      ", the matrix has " + std::to_string(d_out) + " output features");
  if (kind == SatenLayoutKind::Mpo && in_modes.size() != out_modes.size())
    throw ParamError("in_modes", "mpo layout needs as many input modes as output modes (" +
                                     std::to_string(in_modes.size()) + " vs " + std::to_string(out_modes.size()) + ")");
}

std::vector<int64_t> SatenLayout::out_offsets() const {
  std::vector<int64_t> strides(out_modes.size());
  if (kind == SatenLayoutKind::Saten) {
    int64_t s = 1;
    for (int k = int(out_modes.size()) - 1; k >= 0; --k) { strides[k] = s; s *= out_modes[k]; }
  } else {
    const auto tm = tensor_modes();
    int64_t s = 1;
    for (int k = int(tm.size()) - 1; k >= 0; --k) { strides[k] = s * in_modes[k]; s *= tm[k]; }
  }
  return digit_offsets(out_modes, strides);
}

std::vector<int64_t> SatenLayout::in_offsets() const {
  std::vector<int64_t> strides(in_modes.size());
  if (kind == SatenLayoutKind::Saten) {
    int64_t s = d_out;
    for (int k = int(in_modes.size()) - 1; k >= 0; --k) { strides[k] = s; s *= in_modes[k]; }
  } else {
    const auto tm = tensor_modes();
    int64_t s = 1;
    for (int k = int(tm.size()) - 1; k >= 0; --k) { strides[k] = s; s *= tm[k]; }
  }
  return digit_offsets(in_modes, strides);
}

SatenLayout make_saten_layout(SatenLayoutKind kind, int64_t d_out, int64_t d_in, int order) {
  if (d_out < 1 || d_in < 1) throw ParamError("shape", "matrix must be non-empty");
  SatenLayout L;
  L.kind = kind;
  L.d_out = d_out;
  L.d_in = d_in;
  if (kind == SatenLayoutKind::Saten) {
    if (order < 2 || order > 16) throw ParamError("order", "saten layout needs 2..16 cores, got " + std::to_string(order));
    const int a = order / 2;
    L.in_modes = balanced_factorization(d_in, a);
    L.out_modes = balanced_factorization(d_out, order - a);
  } else {
    if (order < 1 || order > 8) throw ParamError("order", "mpo layout needs 1..8 cores, got " + std::to_string(order));
    L.in_modes = balanced_factorization(d_in, order);
    L.out_modes = balanced_factorization(d_out, order);
  }
  L.validate();
  return L;
}

SatenLayout make_saten_layout(SatenLayoutKind kind, std::vector<int64_t> out_modes, std::vector<int64_t> in_modes) {
  SatenLayout L;
  L.kind = kind;
  L.out_modes = std::move(out_modes);
  L.in_modes = std::move(in_modes);
  L.d_out = product(L.out_modes);
  L.d_in = product(L.in_modes);
  L.validate();
  return L;
}

std::vector<float> to_layout_tensor(const SatenLayout& L, ConstMatrixRef W) {
  if (W.rows() != L.d_out || W.cols() != L.d_in)
    throw ParamError("W", "matrix is " + std::to_string(W.rows()) + "x" + std::to_string(W.cols()) + ", layout expects " +
                              std::to_string(L.d_out) + "x" + std::to_string(L.d_in));
  const auto oo = L.out_offsets(), io = L.in_offsets();
  std::vector<float> t(size_t(L.d_out * L.d_in));
  for (int64_t o = 0; o < L.d_out; ++o)
    for (int64_t i = 0; i < L.d_in; ++i) t[oo[o] + io[i]] = W(o, i);
  return t;
}

MatrixRM from_layout_tensor(const SatenLayout& L, std::span<const float> t) {
  if (int64_t(t.size()) != L.d_out * L.d_in)
    throw FormatError("saten tensor has " + std::to_string(t.size()) + " values, expected " +
                      std::to_string(L.d_out * L.d_in));
  const auto oo = L.out_offsets(), io = L.in_offsets();
  MatrixRM W(L.d_out, L.d_in);
  for (int64_t o = 0; o < L.d_out; ++o)
    for (int64_t i = 0; i < L.d_in; ++i) W(o, i) = t[oo[o] + io[i]];
  return W;
}

}  // namespace tsm
