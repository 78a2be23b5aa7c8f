// Byte-level BPE as in HF tokenizers / OpenAI GPT-2 (see tokenizer.h).
#include "model/tokenizer.h"

#include <algorithm>
#include <climits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "model/sentencepiece_bpe.h"
#include "model/token_id_table.h"
#include "model/unicode_text.h"

namespace tsm {

using json = nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& what) { throw FormatError("tokenizer.json: " + what); }

}  // namespace

// The GPT-2 regex, written out as a scanner so that \p{L} / \p{N} / \s follow Unicode:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// The alternatives are tried in order at each position (leftmost-first, as the regex engine does).
std::vector<std::string_view> ByteLevelBpeTokenizer::pre_tokenize(std::string_view s) {
  std::vector<std::string_view> out;
  enum Cls { kLetter, kNumber, kSpace, kOther };
  auto cls_at = [&](size_t i) {
    char32_t c = utf8_at(s, i).cp;
    return is_unicode_letter(c) ? kLetter : is_unicode_number(c) ? kNumber : is_unicode_space(c) ? kSpace : kOther;
  };
  auto run = [&](size_t i, Cls c) {  // end of the run of class c starting at i
    while (i < s.size() && cls_at(i) == c) i += utf8_at(s, i).len;
    return i;
  };
  size_t i = 0;
  while (i < s.size()) {
    size_t end = 0;
    // 's 't 're 've 'm 'll 'd
    if (s[i] == '\'') {
      for (std::string_view suf : {"s", "t", "re", "ve", "m", "ll", "d"})
        if (s.substr(i + 1, suf.size()) == suf) {
          end = i + 1 + suf.size();
          break;
        }
    }
    if (!end) {
      // ' ?X+' for X in letters, numbers, other (not space/letter/number)
      size_t j = (s[i] == ' ' && i + 1 < s.size()) ? i + 1 : i;
      Cls c = cls_at(j);
      if (c != kSpace && (j == i + 1 || s[i] != ' ')) end = run(j, c);
      else if (c != kSpace && j == i) end = run(j, c);
    }
    if (!end) {
      // \s+(?!\S) then \s+: a whitespace run, leaving its last char to the next piece when a
      // non-space follows (so " word" keeps its space).
      size_t e = run(i, kSpace);
      if (e < s.size()) {
        size_t last = e;  // start of the last whitespace char of the run
        for (size_t k = i; k < e; k += utf8_at(s, k).len) last = k;
        end = last > i ? last : e;
      } else {
        end = e;
      }
    }
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

std::unique_ptr<ByteLevelBpeTokenizer> ByteLevelBpeTokenizer::from_json(const void* parsed) {
  const json& j = *static_cast<const json*>(parsed);
  auto t = std::make_unique<ByteLevelBpeTokenizer>();
  // bytes_to_unicode(): printable bytes map to themselves, the rest to 256, 257, ...
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    char32_t cp = printable ? char32_t(b) : char32_t(next++);
    append_utf8(t->byte_to_cp_[b], cp);
    t->cp_to_byte_[cp] = uint8_t(b);
  }
  const json& model = j.at("model");
  const json& vocab = model.at("vocab");
  if (!vocab.is_object()) bad("model.vocab must be an object of token -> id");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX)
      bad("model.vocab['" + it.key() + "'] is not a token id");
    t->vocab_[it.key()] = it.value().get<int32_t>();
  }
  std::vector<std::pair<std::string, int32_t>> added;
  if (auto a = j.find("added_tokens"); a != j.end() && a->is_array())
    for (const auto& at : *a) {
      if (!at.contains("content") || !at["content"].is_string() || !at.contains("id") || !at["id"].is_number_integer() ||
          at["id"].get<int64_t>() < INT32_MIN || at["id"].get<int64_t>() > INT32_MAX)
        bad("added_tokens entries need a string 'content' and a 32-bit integer 'id'");  // a negative one: token_id_table
      added.emplace_back(at["content"].get<std::string>(), at["id"].get<int32_t>());
    }
  TokenIdTable ids = build_token_id_table(t->vocab_, added);
  t->id_to_token_ = std::move(ids.token);
  t->is_added_.assign(ids.added.begin(), ids.added.end());
  std::sort(added.begin(), added.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  t->added_ = std::move(added);

  const json& merges = model.at("merges");
  if (!merges.is_array()) bad("model.merges must be an array");
  int32_t rank = 0;
  for (const auto& m : merges) {
    std::string key;
    if (m.is_string()) key = m.get<std::string>();  // "left right" (older files)
    else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
      key = m[0].get<std::string>() + " " + m[1].get<std::string>();
    else
      bad("model.merges[" + std::to_string(rank) + "] is neither \"a b\" nor [\"a\", \"b\"]");
    t->merge_rank_.emplace(std::move(key), rank++);
  }
  if (auto p = j.find("pre_tokenizer"); p != j.end() && p->is_object())
    t->add_prefix_space_ = p->value("add_prefix_space", false);
  return t;
}

void ByteLevelBpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  // Symbols: one per byte, as the mapped code point's UTF-8.
  std::vector<std::string> sym;
  sym.reserve(piece.size());
  for (unsigned char b : piece) sym.push_back(byte_to_cp_[b]);
  // Merge the adjacent pair of lowest rank until none is left in the merge table.
  while (sym.size() > 1) {
    int32_t best = INT32_MAX;
    size_t at = 0;
    for (size_t k = 0; k + 1 < sym.size(); ++k) {
      auto it = merge_rank_.find(sym[k] + " " + sym[k + 1]);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        at = k;
      }
    }
    if (best == INT32_MAX) break;
    // Merge every occurrence of that pair, left to right.
    const std::string left = sym[at], right = sym[at + 1];
    std::vector<std::string> merged;
    merged.reserve(sym.size());
    for (size_t k = 0; k < sym.size(); ++k) {
      if (k + 1 < sym.size() && sym[k] == left && sym[k + 1] == right) {
        merged.push_back(left + right);
        ++k;
      } else {
        merged.push_back(std::move(sym[k]));
      }
    }
    sym = std::move(merged);
  }
  for (const auto& s : sym) {
    auto it = vocab_.find(s);
    if (it == vocab_.end()) throw Error("tokenizer: symbol '" + s + "' has no id in the vocabulary");
    out.push_back(it->second);
  }
}

std::vector<int32_t> ByteLevelBpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  auto encode_plain = [&](std::string_view part) {
    if (part.empty()) return;
    std::string with_space;
    if (add_prefix_space_ && part.front() != ' ') {
      with_space = " " + std::string(part);
      part = with_space;
    }
    for (std::string_view piece : pre_tokenize(part)) encode_piece(piece, out);
  };
  // Added tokens (e.g. <|endoftext|>) are matched verbatim first, longest first.
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& a : added_)
      if (!a.first.empty() && text.substr(i, a.first.size()) == a.first) {
        hit = &a;
        break;
      }
    if (hit) {
      encode_plain(text.substr(start, i - start));
      out.push_back(hit->second);
      i += hit->first.size();
      start = i;
    } else {
      ++i;
    }
  }
  encode_plain(text.substr(start));
  return out;
}

std::string ByteLevelBpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= int32_t(id_to_token_.size()) || (id_to_token_[id].empty() && !is_added_[id]))
      throw Error("tokenizer: token id " + std::to_string(id) + " is not in the vocabulary");
    const std::string& tok = id_to_token_[id];
    if (is_added_[id]) {
      out += tok;
      continue;
    }
    for (size_t k = 0; k < tok.size();) {
      Utf8Char c = utf8_at(tok, k);
      auto it = cp_to_byte_.find(c.cp);
      if (it != cp_to_byte_.end()) out += char(it->second);
      else out.append(tok, k, c.len);  // not a byte-level symbol: keep as is
      k += c.len;
    }
  }
  return out;
}

std::optional<int32_t> ByteLevelBpeTokenizer::token_id(std::string_view token) const {
  for (const auto& a : added_)
    if (a.first == token) return a.second;
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::unique_ptr<Tokenizer> load_tokenizer(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    bad(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) bad("no \"model\" object");
  const json& model = j["model"];
  std::string type = model.value("type", "");
  if (type.empty() && model.contains("merges")) type = "BPE";
  std::string pre;
  if (j.contains("pre_tokenizer") && j["pre_tokenizer"].is_object()) pre = j["pre_tokenizer"].value("type", "");
  if (type == "BPE" && pre == "ByteLevel") {
    try {
      return ByteLevelBpeTokenizer::from_json(&j);
    } catch (const json::exception& e) {
      bad(std::string("malformed byte-level BPE: ") + e.what());
    }
  }
  if (type == "BPE") {
    try {
      return SentencePieceBpeTokenizer::from_json(&j);
    } catch (const json::exception& e) {
      bad(std::string("malformed SentencePiece-style BPE: ") + e.what());
    }
  }
  throw FormatError("tokenizer.json: model type '" + type + "' with pre_tokenizer '" + (pre.empty() ? "none" : pre) +
                    "' is not supported yet (BPE only); give token ids instead (--ids)");
}

std::string decode_continuation(const Tokenizer& tok, std::span<const int32_t> prefix, std::span<const int32_t> ids) {
  std::vector<int32_t> all(prefix.begin(), prefix.end());
  all.insert(all.end(), ids.begin(), ids.end());
  const std::string before = tok.decode(prefix), whole = tok.decode(all);
  if (whole.compare(0, before.size(), before) == 0) return whole.substr(before.size());
  return tok.decode(ids);
}

}  // namespace tsm
