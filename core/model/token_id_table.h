// The id -> token table of a tokenizer.json: model.vocab (token -> id) and its added tokens, checked
// once for both tokenizer families (byte-level BPE, SentencePiece-style BPE).
// Invariant: one token per id (a second one would make decode(encode(text)) differ from text); an
// added token's id is >= 0 and, where model.vocab has that id, names the same token; ids are dense
// enough (the largest below 4 * tokens + 1024) that the table stays the vocabulary's size, however
// large an id a file claims.
// Layout: three arrays of shape (max_id + 1): token[id] ("" for a hole), has[id] (1 where an id
// has a token), added[id] (1 where it is an added token).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tsm {

struct TokenIdTable {
  std::vector<std::string> token;  ///< (max_id + 1)
  std::vector<uint8_t> has;        ///< (max_id + 1)
  std::vector<uint8_t> added;      ///< (max_id + 1)
};

/// `vocab`: model.vocab's ids (each >= 0); `added`: (content, id) of the added tokens. Throws
/// FormatError ("tokenizer.json: ...") naming the offending token and id.
TokenIdTable build_token_id_table(const std::unordered_map<std::string, int32_t>& vocab,
                                  const std::vector<std::pair<std::string, int32_t>>& added);

}  // namespace tsm
