// Token embedding lookups (see embedding.h).
#include "model/embedding.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace tsm {

void TokenEmbedding::check_ids(std::span<const int32_t> ids) const {
  for (int32_t id : ids)
    if (id < 0 || id >= vocab())
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab()) + ")");
}

void DenseEmbedding::lookup(std::span<const int32_t> ids, float* out) const {
  check_ids(ids);
  const int64_t d = dim();
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(out + i * d, table_->row(ids[i]).data(), d * sizeof(float));
}

void DenseEmbedding::decode_range(int64_t begin, int64_t end, float* out) const {
  if (end > begin) std::memcpy(out, table_->row(begin).data(), size_t((end - begin) * dim()) * sizeof(float));
}

}  // namespace tsm
