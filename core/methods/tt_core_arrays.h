// Tensor-train cores stored at low precision, shared by the methods that store a TT of a matrix
// (saten, qtt). Core k (r_{k-1}, n_k, r_k) is viewed as a matrix (r_{k-1} n_k, r_k) and quantized
// symmetrically per column, one f32 scale per index of r_k: a column holds one direction of the
// bond to the next core, whose magnitude TT-SVD leaves unequal across columns.
//
// Arrays of core k (k = 0..d-1), little-endian:
//   bits 32: "core_k" f32 `shape` (as the caller gives it, prod = r_{k-1} n_k r_k);
//   bits  8: "core_k" i8 `shape`, "core_scales_k" f32 (r_k); value = scale[c] * q;
//   bits  4: "core_k" u8 (ceil(numel / 2)): element e in byte e / 2, low nibble first, stored as
//            q + 8 with q in [-7, 7]; "core_scales_k" f32 (r_k).
// Invariant: decode(encode(core)) differs from core by at most scale[c] / 2 in column c.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "artifact.pb.h"

namespace tsm {

namespace v1 = ::tensorslm::v1;

/// Bits per stored core element: 32 (f32, exact), 8 or 4. Throws ParamError(field) otherwise.
int checked_core_bits(int64_t bits, const char* field = "core_bits");

/// The values decode will return for `core` (prod = rows * cols floats, last axis cols = r_k)
/// stored at `bits`: the fit uses them to re-fit what depends on the cores (saten's sparse part).
std::vector<float> round_core(std::span<const float> core, int64_t cols, int bits);

/// Appends core k's arrays to `t`. core: prod(shape) floats, row-major, whose last axis is r_k.
void add_core_arrays(v1::CompressedTensor& t, int k, std::span<const int64_t> shape, std::span<const float> core, int bits);

/// Reads core k back as f32 (prod(shape) floats). Throws tsm::FormatError naming `who` and the
/// array when its dtype, shape or scales disagree with `bits` and `shape`.
std::vector<float> read_core_arrays(const v1::CompressedTensor& t, int k, std::span<const int64_t> shape, int bits,
                                    const std::string& who);

/// Stored bytes of core k's arrays without array metadata (the payload and the scales).
uint64_t core_payload_bytes(std::span<const int64_t> shape, int bits);

}  // namespace tsm
