// Choosing tensor shapes for a vector length: balanced factorizations (768 -> 8x8x12, 4x4x4x12).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace tsm {

/// The factorization of n into `order` factors (each >= 2 where possible) that is most balanced,
/// sorted ascending: largest smallest factor, then most factors equal to it, then smallest largest
/// factor. 768, 3 -> {8, 8, 12}; 768, 4 -> {4, 4, 4, 12}; a prime n -> {1, .., 1, n}.
/// Throws tsm::ParamError when n < 1 or order < 1.
std::vector<int64_t> balanced_factorization(int64_t n, int order);

/// Checks a user-given shape: every mode >= 1 and the product equals n. Throws tsm::ParamError
/// (field `field`) naming the product and n when it does not.
void validate_shape(std::span<const int64_t> shape, int64_t n, const char* field = "shape");

}  // namespace tsm
