#include "model/token_id_table.h"

#include <algorithm>

#include "common/error.h"

namespace tsm {

namespace {
[[noreturn]] void bad(const std::string& what) { throw FormatError("tokenizer.json: " + what); }
}  // namespace

TokenIdTable build_token_id_table(const std::unordered_map<std::string, int32_t>& vocab,
                                  const std::vector<std::pair<std::string, int32_t>>& added) {
  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab) max_id = std::max(max_id, id);
  for (const auto& [tok, id] : added) {
    if (id < 0) bad("added token '" + tok + "' has a negative id");
    max_id = std::max(max_id, id);
  }
  const size_t n_tokens = vocab.size() + added.size();
  if (max_id >= 0 && size_t(max_id) >= 4 * n_tokens + 1024)
    bad("token id " + std::to_string(max_id) + " is far beyond the " + std::to_string(n_tokens) + " tokens (a sparse vocabulary)");
  TokenIdTable t;
  t.token.assign(size_t(max_id + 1), "");
  t.has.assign(size_t(max_id + 1), 0);
  t.added.assign(size_t(max_id + 1), 0);
  for (const auto& [tok, id] : vocab) {
    if (t.has[size_t(id)]) bad("model.vocab gives id " + std::to_string(id) + " to both '" + t.token[id] + "' and '" + tok + "'");
    t.token[id] = tok;
    t.has[id] = 1;
  }
  for (const auto& [tok, id] : added) {
    if (t.has[id] && t.token[id] != tok)
      bad("added token '" + tok + "' has id " + std::to_string(id) + ", which " + (t.added[id] ? "another added token" : "model.vocab") +
          " gives to '" + t.token[id] + "'");
    t.token[id] = tok;
    t.has[id] = 1;
    t.added[id] = 1;
  }
  return t;
}

}  // namespace tsm
