// tt-token embedding operator (see tt_embedding.h).
#include "methods/tt_token/tt_embedding.h"

namespace tsm {

void TtEmbedding::lookup(std::span<const int32_t> ids, float* out) const {
  check_ids(ids);
  table_->decode_rows(ids, out);
}

std::shared_ptr<const TokenEmbedding> make_tt_embedding(const v1::CompressedTensor& t) {
  return std::make_shared<const TtEmbedding>(std::make_shared<const TokenTrainTable>(TokenTrainTable::from_proto(t)));
}

}  // namespace tsm
