#include "codec/codec.h"

namespace tsm {

uint64_t Codec::stored_bytes(const v1::CompressedTensor& t) const {
  uint64_t n = 8ull * static_cast<uint64_t>(t.shape_size());
  for (const auto& a : t.arrays()) n += a.data().size() + 8ull * static_cast<uint64_t>(a.shape_size());
  return n;
}

}  // namespace tsm
