// Tensor-train cores at 32, 8 or 4 bits (see tt_core_arrays.h).
#include "methods/tt_core_arrays.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "common/tensor.h"
#include "formats/array_pack.h"

namespace tsm {

namespace {

int64_t numel(std::span<const int64_t> shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
}

int qmax(int bits) { return bits == 8 ? 127 : 7; }

}  // namespace

int checked_core_bits(int64_t bits, const char* field) {
  if (bits != 32 && bits != 8 && bits != 4) throw ParamError(field, "must be 32, 8 or 4 (bits per stored core element)");
  return int(bits);
}

uint64_t core_payload_bytes(std::span<const int64_t> shape, int bits) {
  const uint64_t n = uint64_t(numel(shape)), cols = uint64_t(shape.back());
  if (bits == 32) return 4 * n;
  return (bits == 8 ? n : (n + 1) / 2) + 4 * cols;
}

namespace {

struct Quantized {
  std::vector<int8_t> q;     // (n) in [-qmax, qmax]
  std::vector<float> scales; // (cols)
};

Quantized quantize(std::span<const float> core, int64_t cols, int bits) {
  const int64_t n = int64_t(core.size()), rows = n / cols;
  const int qm = qmax(bits);
  Quantized out{std::vector<int8_t>(size_t(n)), std::vector<float>(size_t(cols), 0.f)};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out.scales[size_t(c)] = std::max(out.scales[size_t(c)], std::abs(core[size_t(r * cols + c)]));
  for (float& s : out.scales) s = s > 0.f ? s / float(qm) : 1.f;
  for (int64_t e = 0; e < n; ++e) {
    const float x = std::nearbyint(core[size_t(e)] / out.scales[size_t(e % cols)]);
    out.q[size_t(e)] = int8_t(std::clamp(x, float(-qm), float(qm)));
  }
  return out;
}

}  // namespace

std::vector<float> round_core(std::span<const float> core, int64_t cols, int bits) {
  if (bits == 32) return {core.begin(), core.end()};
  const Quantized z = quantize(core, cols, bits);
  std::vector<float> out(core.size());
  for (size_t e = 0; e < out.size(); ++e) out[e] = z.scales[e % size_t(cols)] * float(z.q[e]);
  return out;
}

void add_core_arrays(v1::CompressedTensor& t, int k, std::span<const int64_t> shape, std::span<const float> core, int bits) {
  const std::string name = "core_" + std::to_string(k);
  const int64_t n = numel(shape), cols = shape.back();
  if (int64_t(core.size()) != n) throw Error("tt core " + std::to_string(k) + ": " + std::to_string(core.size()) + " values for " + shape_str(shape));
  if (bits == 32) {
    t.add_arrays()->CopyFrom(make_array<float>(name, shape, core));
    return;
  }
  const Quantized z = quantize(core, cols, bits);
  if (bits == 8) {
    t.add_arrays()->CopyFrom(make_array<int8_t>(name, shape, std::span<const int8_t>(z.q)));
  } else {
    std::vector<uint8_t> packed(size_t((n + 1) / 2), 0);
    for (int64_t e = 0; e < n; ++e) packed[size_t(e / 2)] |= uint8_t((z.q[size_t(e)] + 8) << (4 * (e % 2)));
    const std::vector<int64_t> ps{int64_t(packed.size())};
    t.add_arrays()->CopyFrom(make_array<uint8_t>(name, ps, std::span<const uint8_t>(packed)));
  }
  const std::vector<int64_t> ss{cols};
  t.add_arrays()->CopyFrom(make_array<float>("core_scales_" + std::to_string(k), ss, std::span<const float>(z.scales)));
}

std::vector<float> read_core_arrays(const v1::CompressedTensor& t, int k, std::span<const int64_t> shape, int bits,
                                    const std::string& who) {
  const std::string name = "core_" + std::to_string(k);
  const v1::Array& a = find_array(t, name);
  const auto s = array_shape(a);
  const int64_t n = numel(shape), cols = shape.back();
  auto bad = [&](const std::string& want) {
    return FormatError(who + "'" + name + "' must be " + want + ", found " + shape_str(s));
  };
  if (bits == 32) {
    if (a.dtype() != v1::F32 || !std::equal(s.begin(), s.end(), shape.begin(), shape.end())) throw bad("f32 " + shape_str(shape));
    return unpack<float>(a);
  }
  const v1::Array& sa = find_array(t, "core_scales_" + std::to_string(k));
  if (sa.dtype() != v1::F32 || array_shape(sa) != std::vector<int64_t>{cols})
    throw FormatError(who + "'core_scales_" + std::to_string(k) + "' must be f32 (" + std::to_string(cols) + ")");
  const auto scales = unpack<float>(sa);
  for (float x : scales)
    if (!std::isfinite(x)) throw FormatError(who + "'core_scales_" + std::to_string(k) + "' holds a non-finite scale");
  std::vector<float> out(static_cast<size_t>(n));
  if (bits == 8) {
    if (a.dtype() != v1::I8 || !std::equal(s.begin(), s.end(), shape.begin(), shape.end())) throw bad("i8 " + shape_str(shape));
    const auto q = unpack<int8_t>(a);
    for (int64_t e = 0; e < n; ++e) out[size_t(e)] = scales[size_t(e % cols)] * float(q[size_t(e)]);
  } else {
    if (a.dtype() != v1::U8 || s != std::vector<int64_t>{(n + 1) / 2}) throw bad("u8 (" + std::to_string((n + 1) / 2) + ")");
    const auto p = unpack<uint8_t>(a);
    for (int64_t e = 0; e < n; ++e) {
      const int q = int((p[size_t(e / 2)] >> (4 * (e % 2))) & 0xF) - 8;
      out[size_t(e)] = scales[size_t(e % cols)] * float(q);
    }
  }
  return out;
}

}  // namespace tsm
