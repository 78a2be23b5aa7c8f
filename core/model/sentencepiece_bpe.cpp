// SentencePiece-style BPE as in HF tokenizers (see sentencepiece_bpe.h). Each step follows the
// tokenizers crate: AddedVocabulary::find_matches, normalizers::{Prepend, Replace},
// pre_tokenizers::Metaspace, models::bpe::{BPE::merge_word, Word::merge_all}, decoders::{Replace,
// ByteFallback, Fuse, Strip, Metaspace}, processors::TemplateProcessing.
#include "model/sentencepiece_bpe.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "common/error.h"
#include "model/token_id_table.h"
#include "model/unicode_text.h"

namespace tsm {

using json = nlohmann::json;

namespace {

const char kNotImplemented[] = " is not implemented (give the prompt as token ids with --ids)";

[[noreturn]] void bad(const std::string& what) { throw FormatError("tokenizer.json: " + what); }

/// obj[key] when present and not null.
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool bool_field(const json& obj, const char* key, bool dflt, const std::string& where) {
  const json* v = field(obj, key);
  if (!v) return dflt;
  if (!v->is_boolean()) bad(where + "." + key + " must be true or false");
  return v->get<bool>();
}

std::string string_field(const json& obj, const char* key, const std::string& where) {
  const json* v = field(obj, key);
  if (!v || !v->is_string()) bad(where + "." + key + " must be a string");
  return v->get<std::string>();
}

std::string type_of(const json& obj, const std::string& where) {
  if (!obj.is_object()) bad(where + " must be an object");
  return string_field(obj, "type", where);
}

/// A JSON string holding exactly one code point (Rust `char` fields: Metaspace.replacement, Strip.content).
std::string char_field(const json& obj, const char* key, const std::string& where) {
  std::string s = string_field(obj, key, where);
  if (s.empty() || utf8_at(s, 0).len != s.size() || (utf8_at(s, 0).cp == 0xFFFD && s.size() == 1))
    bad(where + "." + key + " must be one character");
  return s;
}

size_t count_field(const json& obj, const char* key, const std::string& where) {
  const json* v = field(obj, key);
  if (!v) return 0;
  if (!v->is_number_unsigned() || v->get<uint64_t>() > (uint64_t(1) << 32)) bad(where + "." + key + " must be a non-negative integer");
  return size_t(v->get<uint64_t>());
}

/// Replace pattern: {"String": "..."} is implemented, {"Regex": "..."} is not.
std::string string_pattern(const json& obj, const std::string& where) {
  const json* p = field(obj, "pattern");
  if (!p || !p->is_object() || p->size() != 1) bad(where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
  if (p->contains("Regex")) bad(where + ".pattern Regex" + kNotImplemented);
  if (!p->contains("String") || !(*p)["String"].is_string()) bad(where + ".pattern must be {\"String\": ...}");
  std::string s = (*p)["String"].get<std::string>();
  if (s.empty()) bad(where + ".pattern.String must not be empty");
  return s;
}

/// Every non-overlapping occurrence of `pattern` (non-empty) replaced by `content`, leftmost first.
std::string replace_all(std::string_view s, std::string_view pattern, std::string_view content) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (true) {
    size_t k = s.find(pattern, i);
    if (k == std::string_view::npos) break;
    out.append(s.substr(i, k - i));
    out.append(content);
    i = k + pattern.size();
  }
  out.append(s.substr(i));
  return out;
}

std::string byte_token(unsigned b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

/// ByteFallback decoder's test: "<0xHH>" (6 bytes) whose HH Rust's u8::from_str_radix(_, 16) reads.
std::optional<uint8_t> byte_of_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  if (t[3] == '+' && lo >= 0) return uint8_t(lo);  // from_str_radix accepts a leading '+'
  if (hi < 0 || lo < 0) return std::nullopt;
  return uint8_t(hi * 16 + lo);
}

uint64_t pair_key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

using Prepend = SentencePieceBpeTokenizer::MetaspaceStep::Prepend;

/// Metaspace's prepend_scheme, with the older add_prefix_space (false means never).
Prepend prepend_scheme(const json& obj, const std::string& where) {
  Prepend p = Prepend::kAlways;
  if (const json* s = field(obj, "prepend_scheme")) {
    if (!s->is_string()) bad(where + ".prepend_scheme must be a string");
    const std::string v = s->get<std::string>();
    if (v == "always") p = Prepend::kAlways;
    else if (v == "first") p = Prepend::kFirst;
    else if (v == "never") p = Prepend::kNever;
    else bad(where + ".prepend_scheme '" + v + "' is not always, first or never");
  }
  if (!bool_field(obj, "add_prefix_space", true, where)) {
    if (p != Prepend::kNever && field(obj, "prepend_scheme")) bad(where + ": add_prefix_space false does not match prepend_scheme");
    p = Prepend::kNever;
  }
  return p;
}

}  // namespace

// ---- loading -----------------------------------------------------------------------------------

namespace {

void parse_normalizer(const json& n, const std::string& where, std::vector<SentencePieceBpeTokenizer::NormalizeStep>& out) {
  using Step = SentencePieceBpeTokenizer::NormalizeStep;
  const std::string type = type_of(n, where);
  if (type == "Sequence") {
    const json* list = field(n, "normalizers");
    if (!list || !list->is_array()) bad(where + ".normalizers must be an array");
    for (size_t k = 0; k < list->size(); ++k) parse_normalizer((*list)[k], where + ".normalizers[" + std::to_string(k) + "]", out);
  } else if (type == "Prepend") {
    out.push_back({Step::kPrepend, string_field(n, "prepend", where), {}});
  } else if (type == "Replace") {
    out.push_back({Step::kReplace, string_pattern(n, where), string_field(n, "content", where)});
  } else {
    bad(where + " of type '" + type + "'" + kNotImplemented);
  }
}

void parse_pre_tokenizer(const json& p, const std::string& where, std::vector<SentencePieceBpeTokenizer::MetaspaceStep>& out) {
  const std::string type = type_of(p, where);
  if (type == "Sequence") {
    const json* list = field(p, "pretokenizers");
    if (!list || !list->is_array()) bad(where + ".pretokenizers must be an array");
    for (size_t k = 0; k < list->size(); ++k) parse_pre_tokenizer((*list)[k], where + ".pretokenizers[" + std::to_string(k) + "]", out);
  } else if (type == "Metaspace") {
    SentencePieceBpeTokenizer::MetaspaceStep m;
    m.replacement = char_field(p, "replacement", where);
    m.prepend = prepend_scheme(p, where);
    m.split = bool_field(p, "split", true, where);
    out.push_back(std::move(m));
  } else {
    bad(where + " of type '" + type + "'" + kNotImplemented);
  }
}

void parse_decoder(const json& d, const std::string& where, std::vector<SentencePieceBpeTokenizer::DecodeStep>& out) {
  using Step = SentencePieceBpeTokenizer::DecodeStep;
  const std::string type = type_of(d, where);
  Step s{Step::kFuse, {}, {}};
  if (type == "Sequence") {
    const json* list = field(d, "decoders");
    if (!list || !list->is_array()) bad(where + ".decoders must be an array");
    for (size_t k = 0; k < list->size(); ++k) parse_decoder((*list)[k], where + ".decoders[" + std::to_string(k) + "]", out);
    return;
  } else if (type == "Replace") {
    s = {Step::kReplace, string_pattern(d, where), string_field(d, "content", where)};
  } else if (type == "ByteFallback") {
    s.kind = Step::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = Step::kFuse;
  } else if (type == "Strip") {
    s.kind = Step::kStrip;
    s.a = char_field(d, "content", where);
    s.start = count_field(d, "start", where);
    s.stop = count_field(d, "stop", where);
  } else if (type == "Metaspace") {
    s.kind = Step::kMetaspace;
    s.a = char_field(d, "replacement", where);
    s.metaspace_strip_first = prepend_scheme(d, where) != Prepend::kNever;
  } else {
    bad(where + " of type '" + type + "'" + kNotImplemented);
  }
  out.push_back(std::move(s));
}

}  // namespace

std::unique_ptr<SentencePieceBpeTokenizer> SentencePieceBpeTokenizer::from_json(const void* parsed) {
  const json& j = *static_cast<const json*>(parsed);
  auto t = std::make_unique<SentencePieceBpeTokenizer>();
  if (!j.is_object()) bad("not a JSON object");
  const json* model = field(j, "model");
  if (!model || !model->is_object()) bad("no \"model\" object");
  if (const json* ty = field(*model, "type"); ty && (!ty->is_string() || ty->get<std::string>() != "BPE"))
    bad("model.type must be \"BPE\" for a SentencePiece-style BPE");

  // The model: vocabulary, options, merges.
  const json* vocab = field(*model, "vocab");
  if (!vocab || !vocab->is_object()) bad("model.vocab must be an object of token -> id");
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= INT32_MAX)
      bad("model.vocab['" + it.key() + "'] is not a token id");
    t->vocab_[it.key()] = it.value().get<int32_t>();
  }
  if (const json* d = field(*model, "dropout")) {
    if (!d->is_number() || d->get<double>() < 0 || d->get<double>() > 1) bad("model.dropout must be a number in [0, 1]");
    if (d->get<double>() > 0) bad("model.dropout (BPE-dropout sampling)" + std::string(kNotImplemented));
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = field(*model, k)) {
      if (!v->is_string()) bad(std::string("model.") + k + " must be a string or null");
      if (!v->get<std::string>().empty()) bad(std::string("model.") + k + kNotImplemented);
    }
  t->fuse_unk_ = bool_field(*model, "fuse_unk", false, "model");
  t->byte_fallback_ = bool_field(*model, "byte_fallback", false, "model");
  t->ignore_merges_ = bool_field(*model, "ignore_merges", false, "model");
  if (const json* u = field(*model, "unk_token")) {
    if (!u->is_string()) bad("model.unk_token must be a string or null");
    auto it = t->vocab_.find(u->get<std::string>());
    if (it == t->vocab_.end()) bad("model.unk_token '" + u->get<std::string>() + "' is not in model.vocab");
    t->unk_id_ = it->second;
  }
  if (t->byte_fallback_)
    for (unsigned b = 0; b < 256; ++b) {
      auto it = t->vocab_.find(byte_token(b));
      if (it == t->vocab_.end()) bad("model.byte_fallback is set but model.vocab has no " + byte_token(b));
      t->byte_id_[b] = it->second;
    }

  const json* merges = field(*model, "merges");
  if (!merges || !merges->is_array()) bad("model.merges must be an array");
  int kind = 0;  // 1: "a b" strings, 2: ["a", "b"] pairs; tokenizers reads one kind or the other
  int32_t rank = 0;
  for (size_t k = 0; k < merges->size(); ++k) {
    const json& m = (*merges)[k];
    const std::string where = "model.merges[" + std::to_string(k) + "]";
    std::string a, b;
    if (m.is_string() && kind != 2) {
      kind = 1;
      const std::string line = m.get<std::string>();
      if (line.rfind("#version", 0) == 0) continue;  // a merges.txt header kept in the list
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) bad(where + " \"" + line + "\" is not \"left right\"");
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string() && kind != 1) {
      kind = 2;
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      bad(where + " is neither \"a b\" nor [\"a\", \"b\"] (nor of the kind of the merges before it)");
    }
    auto ia = t->vocab_.find(a), ib = t->vocab_.find(b), iab = t->vocab_.find(a + b);
    if (ia == t->vocab_.end()) bad(where + " references '" + a + "', which is not in model.vocab");
    if (ib == t->vocab_.end()) bad(where + " references '" + b + "', which is not in model.vocab");
    if (iab == t->vocab_.end()) bad(where + " makes '" + a + b + "', which is not in model.vocab");
    t->merges_[pair_key(ia->second, ib->second)] = {rank++, iab->second};  // a repeated pair keeps its last rank, as in tokenizers
  }

  // Added tokens: the id of a content already in the vocabulary is the vocabulary's.
  if (const json* a = field(j, "added_tokens")) {
    if (!a->is_array()) bad("added_tokens must be an array");
    for (size_t k = 0; k < a->size(); ++k) {
      const json& at = (*a)[k];
      const std::string where = "added_tokens[" + std::to_string(k) + "]";
      if (!at.is_object() || !at.contains("content") || !at["content"].is_string() || !at.contains("id") ||
          !at["id"].is_number_integer() || at["id"].get<int64_t>() < 0 || at["id"].get<int64_t>() >= INT32_MAX)
        bad(where + " needs a string 'content' and a non-negative integer 'id'");
      AddedToken tok;
      tok.content = at["content"].get<std::string>();
      tok.id = at["id"].get<int32_t>();
      tok.special = bool_field(at, "special", false, where);
      tok.normalized = bool_field(at, "normalized", !tok.special, where);
      tok.lstrip = bool_field(at, "lstrip", false, where);
      tok.rstrip = bool_field(at, "rstrip", false, where);
      if (bool_field(at, "single_word", false, where)) bad(where + ".single_word" + kNotImplemented);
      if (tok.content.empty()) continue;  // tokenizers ignores empty added tokens
      if (auto it = t->vocab_.find(tok.content); it != t->vocab_.end() && it->second != tok.id)
        bad(where + " '" + tok.content + "' has id " + std::to_string(tok.id) + " but model.vocab gives it " + std::to_string(it->second));
      t->added_.push_back(std::move(tok));
    }
  }
  std::vector<std::pair<std::string, int32_t>> added_ids;
  for (const auto& a : t->added_) added_ids.emplace_back(a.content, a.id);
  TokenIdTable ids = build_token_id_table(t->vocab_, added_ids);
  t->id_to_token_ = std::move(ids.token);
  t->has_token_ = std::move(ids.has);

  // The pipeline around the model.
  if (const json* n = field(j, "normalizer")) parse_normalizer(*n, "normalizer", t->normalizer_);
  if (const json* p = field(j, "pre_tokenizer")) parse_pre_tokenizer(*p, "pre_tokenizer", t->pre_tokenizer_);
  if (const json* d = field(j, "decoder")) {
    t->has_decoder_ = true;
    parse_decoder(*d, "decoder", t->decoder_);
  }
  for (const char* k : {"truncation", "padding"})
    if (field(j, k)) bad(std::string(k) + kNotImplemented);
  if (const json* pp = field(j, "post_processor")) {
    std::vector<const json*> procs{pp};
    if (type_of(*pp, "post_processor") == "Sequence") {
      const json* list = field(*pp, "processors");
      if (!list || !list->is_array()) bad("post_processor.processors must be an array");
      procs.clear();
      for (const auto& p : *list) procs.push_back(&p);
    }
    for (const json* p : procs) {
      const std::string type = type_of(*p, "post_processor");
      if (type != "TemplateProcessing") bad("post_processor of type '" + type + "'" + kNotImplemented);
      const json* single = field(*p, "single");
      const json* specials = field(*p, "special_tokens");
      if (!single || !single->is_array()) bad("post_processor.single must be an array");
      std::vector<TemplateItem> items;
      for (const auto& it : *single) {
        if (it.is_object() && it.contains("Sequence")) {
          if (!it["Sequence"].is_object() || it["Sequence"].value("id", "") != "A")
            bad("post_processor.single: a single sequence template can only hold sequence A");
          items.push_back({true, {}});
        } else if (it.is_object() && it.contains("SpecialToken") && it["SpecialToken"].is_object() && it["SpecialToken"].contains("id") &&
                   it["SpecialToken"]["id"].is_string()) {
          const std::string name = it["SpecialToken"]["id"].get<std::string>();
          if (!specials || !specials->is_object() || !specials->contains(name) || !(*specials)[name].is_object() ||
              !(*specials)[name].contains("ids") || !(*specials)[name]["ids"].is_array())
            bad("post_processor.special_tokens has no ids for '" + name + "'");
          TemplateItem item{false, {}};
          for (const auto& id : (*specials)[name]["ids"]) {
            if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= int64_t(t->id_to_token_.size()) ||
                !t->has_token_[id.get<size_t>()])
              bad("post_processor.special_tokens['" + name + "'].ids holds an id outside the vocabulary");
            item.ids.push_back(id.get<int32_t>());
          }
          items.push_back(std::move(item));
        } else {
          bad("post_processor.single items must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": {\"id\": \"A\"}}");
        }
      }
      t->templates_.push_back(std::move(items));
    }
  }

  // Normalized added tokens are searched for as the normalizer writes them.
  // tokenizers >= 0.23 also decodes them from that form, so that the decoder undoes the normalizer.
  for (auto& a : t->added_) {
    a.pattern = a.normalized ? t->normalize(a.content) : a.content;
    if (a.pattern.empty()) bad("added token '" + a.content + "' normalizes to nothing");
    t->id_to_token_[a.id] = a.pattern;
  }
  build_matcher(t->added_, false, t->raw_matcher_);
  build_matcher(t->added_, true, t->normalized_matcher_);
  return t;
}

void SentencePieceBpeTokenizer::build_matcher(const std::vector<AddedToken>& added, bool normalized, Matcher& m) {
  for (size_t k = 0; k < added.size(); ++k)
    if (added[k].normalized == normalized) {
      m.by_first_byte[uint8_t(added[k].pattern[0])].push_back(k);
      m.empty = false;
    }
  for (auto& bucket : m.by_first_byte)
    std::stable_sort(bucket.begin(), bucket.end(), [&](size_t x, size_t y) { return added[x].pattern.size() > added[y].pattern.size(); });
}

// ---- encoding ----------------------------------------------------------------------------------

// AddedVocabulary::find_matches: leftmost-longest matches, scanning on after each match's end; lstrip
// takes the whitespace before a match (not what an earlier match took), rstrip the whitespace after.
std::vector<SentencePieceBpeTokenizer::Split> SentencePieceBpeTokenizer::split_added(std::string_view s, const Matcher& m) const {
  std::vector<Split> out;
  size_t start_offset = 0;
  if (!m.empty)
    for (size_t i = 0; i < s.size();) {
      const AddedToken* hit = nullptr;
      for (size_t k : m.by_first_byte[uint8_t(s[i])])
        if (s.compare(i, added_[k].pattern.size(), added_[k].pattern) == 0) {
          hit = &added_[k];
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      size_t start = i, stop = i + hit->pattern.size();
      i = stop;
      if (hit->lstrip) {
        // The whitespace run that ends at `start`, but not before what an earlier match took.
        size_t b = start_offset;
        for (size_t k = start_offset; k < start;) {
          Utf8Char c = utf8_at(s, k);
          k += c.len;
          if (!is_unicode_space(c.cp)) b = k;
        }
        start = b;
      }
      if (hit->rstrip)
        while (stop < s.size() && is_unicode_space(utf8_at(s, stop).cp)) stop += utf8_at(s, stop).len;
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, hit->id});
      start_offset = stop;
    }
  if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
  return out;
}

std::string SentencePieceBpeTokenizer::normalize(std::string_view piece) const {
  std::string s(piece);
  for (const auto& n : normalizer_) {
    if (n.kind == NormalizeStep::kPrepend) {
      if (!s.empty()) s = n.a + s;
    } else {
      s = replace_all(s, n.a, n.b);
    }
  }
  return s;
}

// The Metaspace pre-tokenizers in order; `at_text_start`: the piece begins the original text (the
// prepend scheme "first" prepends only there).
void SentencePieceBpeTokenizer::append_words(std::string_view piece, bool at_text_start, std::vector<std::string>& words) const {
  struct Word {
    std::string text;
    bool first;
  };
  std::vector<Word> cur{{std::string(piece), at_text_start}};
  for (const auto& m : pre_tokenizer_) {
    std::vector<Word> next;
    for (auto& w : cur) {
      std::string s = replace_all(w.text, " ", m.replacement);
      const bool starts = s.compare(0, m.replacement.size(), m.replacement) == 0;
      if (!starts && (m.prepend == MetaspaceStep::kAlways || (m.prepend == MetaspaceStep::kFirst && w.first))) s = m.replacement + s;
      if (!m.split) {
        next.push_back({std::move(s), w.first});
        continue;
      }
      // Split before each replacement (MergedWithNext): "▁a▁▁b" -> "▁a", "▁", "▁b".
      size_t b = 0;
      bool first = w.first;
      for (size_t k = m.replacement.size() > 0 ? s.find(m.replacement, 1) : std::string::npos; k != std::string::npos;
           k = s.find(m.replacement, k + 1)) {
        if (k > b) next.push_back({s.substr(b, k - b), first});
        first = false;
        b = k;
      }
      if (b < s.size()) next.push_back({s.substr(b), first});
    }
    cur = std::move(next);
  }
  for (auto& w : cur)
    if (!w.text.empty()) words.push_back(std::move(w.text));
}

void SentencePieceBpeTokenizer::encode_word(std::string_view w, std::vector<int32_t>& out) const {
  if (w.empty()) return;
  if (ignore_merges_)
    if (auto it = vocab_.find(std::string(w)); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  // BPE::merge_word: one symbol per character (a byte that is not UTF-8 counts as one character).
  struct Symbol {
    int32_t id, prev, next;
    bool live;
  };
  std::vector<Symbol> sym;
  sym.reserve(w.size());
  auto add = [&](int32_t id) {
    const int32_t n = int32_t(sym.size());
    if (n) sym.back().next = n;
    sym.push_back({id, n - 1, -1, true});
  };
  int32_t pending_unk = -1;  // an <unk> not yet added (fuse_unk joins the next unknown characters into it)
  std::string ch;
  for (size_t i = 0; i < w.size();) {
    const size_t len = utf8_at(w, i).len;
    ch.assign(w.substr(i, len));
    i += len;
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(it->second);
    } else if (byte_fallback_) {
      for (unsigned char b : ch) add(byte_id_[b]);  // every <0xNN> is in the vocabulary (checked at load)
    } else if (unk_id_ >= 0) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = unk_id_;
    }  // else: no unk_token, so tokenizers drops the character
  }
  if (pending_unk >= 0) add(pending_unk);

  // Word::merge_all: a min-heap of (rank, position); entries whose pair changed since are skipped.
  struct Merge {
    int32_t rank, pos, new_id;
  };
  auto later = [](const Merge& x, const Merge& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
  std::priority_queue<Merge, std::vector<Merge>, decltype(later)> queue(later);
  auto lookup = [&](int32_t a, int32_t b) -> const std::pair<int32_t, int32_t>* {
    auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int32_t k = 0; k + 1 < int32_t(sym.size()); ++k)
    if (auto m = lookup(sym[k].id, sym[k + 1].id)) queue.push({m->first, k, m->second});
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& cur = sym[top.pos];
    if (!cur.live || cur.next < 0) continue;
    const Symbol right = sym[cur.next];
    auto m = lookup(cur.id, right.id);
    if (!m || m->second != top.new_id) continue;  // expired entry
    sym[cur.next].live = false;
    cur.id = top.new_id;
    cur.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (cur.prev >= 0)
      if (auto p = lookup(sym[cur.prev].id, cur.id)) queue.push({p->first, cur.prev, p->second});
    if (cur.next >= 0)
      if (auto n = lookup(cur.id, sym[cur.next].id)) queue.push({n->first, top.pos, n->second});
  }
  for (const auto& s : sym)
    if (s.live) out.push_back(s.id);
}

std::vector<int32_t> SentencePieceBpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  std::vector<std::string> words;
  for (const Split& raw : split_added(text, raw_matcher_)) {
    if (raw.added_id >= 0) {
      out.push_back(raw.added_id);
      continue;
    }
    const std::string norm = normalize(text.substr(raw.begin, raw.end - raw.begin));
    for (const Split& part : split_added(norm, normalized_matcher_)) {
      if (part.added_id >= 0) {
        out.push_back(part.added_id);
        continue;
      }
      words.clear();
      append_words(std::string_view(norm).substr(part.begin, part.end - part.begin), raw.begin == 0 && part.begin == 0, words);
      for (const auto& w : words) encode_word(w, out);
    }
  }
  return out;
}

std::vector<int32_t> SentencePieceBpeTokenizer::encode_with_special_tokens(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  for (const auto& items : templates_) {
    std::vector<int32_t> wrapped;
    for (const auto& item : items) {
      const auto& part = item.sequence ? ids : item.ids;
      wrapped.insert(wrapped.end(), part.begin(), part.end());
    }
    ids = std::move(wrapped);
  }
  return ids;
}

// ---- decoding ----------------------------------------------------------------------------------

std::string SentencePieceBpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= int32_t(id_to_token_.size()) || !has_token_[id])
      throw Error("tokenizer: token id " + std::to_string(id) + " is not in the vocabulary");
    tokens.push_back(id_to_token_[id]);
  }
  if (!has_decoder_) {  // tokenizers without a decoder joins the tokens with spaces
    std::string out;
    for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
    return out;
  }
  for (const auto& d : decoder_) {
    switch (d.kind) {
      case DecodeStep::kReplace:
        for (auto& t : tokens) t = replace_all(t, d.a, d.b);
        break;
      case DecodeStep::kByteFallback: {
        // Runs of <0xNN> tokens become their bytes when those are UTF-8, else one U+FFFD per byte.
        std::vector<std::string> next;
        std::string bytes;
        size_t n_bytes = 0;
        auto flush = [&] {
          if (!n_bytes) return;
          bool valid = true;
          for (size_t k = 0; k < bytes.size();) {
            Utf8Char c = utf8_at(bytes, k);
            if (c.cp == 0xFFFD && c.len == 1) valid = false;
            k += c.len;
          }
          if (valid) next.push_back(bytes);
          else next.insert(next.end(), n_bytes, "\xEF\xBF\xBD");
          bytes.clear();
          n_bytes = 0;
        };
        for (auto& t : tokens) {
          if (auto b = byte_of_token(t)) {
            bytes += char(*b);
            ++n_bytes;
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(next);
        break;
      }
      case DecodeStep::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecodeStep::kStrip:
        for (auto& t : tokens) {
          std::vector<size_t> at;  // byte offset of each character
          for (size_t k = 0; k < t.size(); k += utf8_at(t, k).len) at.push_back(k);
          auto is_content = [&](size_t c) {
            size_t e = c + 1 < at.size() ? at[c + 1] : t.size();
            return t.compare(at[c], e - at[c], d.a) == 0;
          };
          size_t begin = 0, end = at.size();
          while (begin < d.start && begin < end && is_content(begin)) ++begin;
          for (size_t k = 0; k < d.stop && end > begin && is_content(end - 1); ++k) --end;
          const size_t b = begin < at.size() ? at[begin] : t.size(), e = end < at.size() ? at[end] : t.size();
          t = t.substr(b, e - b);
        }
        break;
      case DecodeStep::kMetaspace:
        for (size_t k = 0; k < tokens.size(); ++k) tokens[k] = replace_all(tokens[k], d.a, k == 0 && d.metaspace_strip_first ? "" : " ");
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::optional<int32_t> SentencePieceBpeTokenizer::token_id(std::string_view token) const {
  for (const auto& a : added_)
    if (a.content == token) return a.id;
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

}  // namespace tsm
