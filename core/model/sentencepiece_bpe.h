// SentencePiece-style BPE from a Hugging Face tokenizer.json (Llama, TinyLlama, Mistral, llama2.c
// "stories" models): the `tokenizers` pipeline for what these files use. Encode: added and special
// tokens are split out of the raw text first (leftmost-longest, honouring lstrip/rstrip); each other
// piece goes through the normalizer (Sequence / Prepend / Replace), is split again on normalized added
// tokens, pre-tokenized (none, or Metaspace with its prepend_scheme and split), and each word is cut
// into code points, looked up, sent to <0xNN> byte tokens (byte_fallback) or <unk> (fused when
// fuse_unk), then merged lowest merge rank first, leftmost first (tokenizers' Word::merge_all).
// Decode: ids -> token strings -> the decoder chain (Replace, ByteFallback, Fuse, Strip, Metaspace).
// Anything else a file asks for (other normalizers / pre-tokenizers / decoders, regex patterns,
// single_word tokens, dropout, subword prefixes, truncation, padding) throws tsm::FormatError naming it.
// Invariant: on valid UTF-8 text, encode() gives HF tokenizers' ids (add_special_tokens=False) and
// encode_with_special_tokens() its ids with add_special_tokens=True; decode() is HF decode with
// skip_special_tokens=False (tokenizers >= 0.23: a normalized added token decodes from its normalized
// form; older versions decode its content). decode(encode(t)) == t holds when the decoder undoes the normalizer
// (Llama: the prepended "▁" is stripped by the decoder's Strip) and every character has a token or a
// byte token; it does not hold for characters sent to <unk>, and HF drops characters that have
// neither (no unk_token, no byte_fallback): so does this. Bytes that are not UTF-8 (text HF cannot
// receive) are treated as one-byte characters, so they reach byte fallback.
// Memory: the vocabulary as id -> token string (size vocab_size, "" for ids without a token) and
// string -> id; merges as (left id, right id) -> (rank, merged id); added tokens as a list.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"

namespace tsm {

class SentencePieceBpeTokenizer final : public Tokenizer {
 public:
  /// From a parsed tokenizer.json (nlohmann::json) with model.type "BPE" and no ByteLevel
  /// pre-tokenizer. Throws tsm::FormatError naming the field at fault or the feature not implemented.
  static std::unique_ptr<SentencePieceBpeTokenizer> from_json(const void* parsed_json);

  std::vector<int32_t> encode(std::string_view text) const override;
  /// encode() inside the post_processor's single-sequence template (Llama: <s> first).
  std::vector<int32_t> encode_with_special_tokens(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int64_t vocab_size() const override { return int64_t(id_to_token_.size()); }
  std::optional<int32_t> token_id(std::string_view token) const override;

  /// The model alone on one pre-tokenized word: code points -> ids (vocabulary, byte fallback, unk),
  /// then the merges. Appends to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  /// One added token as tokenizer.json describes it.
  struct AddedToken {
    std::string content;  ///< the text matched
    std::string pattern;  ///< what is searched for and decoded: content, or the normalizer's output of it when normalized
    int32_t id = 0;
    bool special = false, normalized = true, lstrip = false, rstrip = false;
  };
  /// One normalizer step: Prepend (a = text) or Replace (a = pattern string, b = content).
  struct NormalizeStep {
    enum Kind { kPrepend, kReplace } kind;
    std::string a, b;
  };
  /// One Metaspace pre-tokenizer: spaces -> replacement, the prepend scheme, split before each replacement.
  struct MetaspaceStep {
    enum Prepend { kAlways, kFirst, kNever };
    std::string replacement;  ///< UTF-8 of one code point, "▁" in every known file
    Prepend prepend = kAlways;
    bool split = true;
  };
  /// One decoder step of the chain.
  struct DecodeStep {
    enum Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
    std::string a, b;          ///< Replace: pattern, content; Strip: the character; Metaspace: replacement
    size_t start = 0, stop = 0;  ///< Strip: how many leading / trailing characters at most
    bool metaspace_strip_first = true;  ///< Metaspace: prepend_scheme != never (the first token loses its replacement)
  };

 private:
  /// A part of a text: byte range [begin, end) and the added token it is (-1: ordinary text).
  struct Split {
    size_t begin, end;
    int32_t added_id;
  };
  /// Added tokens searched for in one pass: indices into added_, bucketed by first byte, longest first.
  struct Matcher {
    std::vector<std::vector<size_t>> by_first_byte = std::vector<std::vector<size_t>>(256);
    bool empty = true;
  };

  std::vector<Split> split_added(std::string_view s, const Matcher& m) const;
  std::string normalize(std::string_view piece) const;
  void append_words(std::string_view piece, bool at_text_start, std::vector<std::string>& words) const;
  static void build_matcher(const std::vector<AddedToken>& added, bool normalized, Matcher& m);

  std::vector<std::string> id_to_token_;                ///< (vocab_size) token string as decode reads it; "" for holes
  std::vector<uint8_t> has_token_;                      ///< (vocab_size) 1 where an id has a token
  std::unordered_map<std::string, int32_t> vocab_;      ///< model vocabulary: token -> id
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  ///< (left << 32 | right) -> (rank, merged id)
  int32_t byte_id_[256] = {};                           ///< byte fallback: byte -> id of <0xNN> (byte_fallback_ only)
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_id_ = -1;                                 ///< -1: no unk_token
  std::vector<AddedToken> added_;                       ///< in file order
  Matcher raw_matcher_, normalized_matcher_;            ///< non-normalized / normalized added tokens
  std::vector<NormalizeStep> normalizer_;               ///< applied in order; empty: none
  std::vector<MetaspaceStep> pre_tokenizer_;            ///< applied in order; empty: the piece is one word
  bool has_decoder_ = false;                            ///< false: tokens joined by " " (HF without a decoder)
  std::vector<DecodeStep> decoder_;                     ///< applied in order to the token list
  /// One item of a TemplateProcessing "single" template: special token ids, or the sequence ($A).
  struct TemplateItem {
    bool sequence;
    std::vector<int32_t> ids;
  };
  std::vector<std::vector<TemplateItem>> templates_;    ///< post-processors, applied in order; empty: none
};

}  // namespace tsm
