// IEEE half-precision fields inside ggml blocks (d, dmin): unaligned little-endian uint16 at a byte
// pointer, and f32 values rounded through half as the stored scales are. Shared by block_formats
// and k_quants.
#pragma once
#include <cstdint>
#include <cstring>

#include "common/dtype.h"

namespace tsm::block_half {

inline float round_f16(float v) { return half_to_float(float_to_half(v)); }

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = float_to_half(v);
  std::memcpy(p, &h, 2);
}

inline float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

}  // namespace tsm::block_half
