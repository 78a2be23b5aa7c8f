// Text <-> token ids. The interface fits several tokenizer families; load_tokenizer() reads an HF
// tokenizer.json and builds the implementation its "model"/"pre_tokenizer" ask for. Implemented:
// byte-level BPE (GPT-2, OPT, Cerebras-GPT): added/special tokens are split out first, the rest is
// pre-tokenized by the GPT-2 regex, each piece's UTF-8 bytes are mapped to printable code points
// (bytes_to_unicode) and merged by BPE in merge-rank order; and SentencePiece-style BPE (Llama,
// TinyLlama, stories models: model/sentencepiece_bpe.h).
// Invariant (byte-level BPE): decode(encode(text)) == text for every valid UTF-8 text.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tsm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// The text's ids alone (HF add_special_tokens=False).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  /// The ids of a prompt: encode() inside the special tokens the tokenizer.json's post_processor puts
  /// around one sequence (HF add_special_tokens=True; Llama: <s> first). The byte-level BPE reads no
  /// post_processor, so there it is encode().
  virtual std::vector<int32_t> encode_with_special_tokens(std::string_view text) const { return encode(text); }
  /// Ids outside the vocabulary throw tsm::Error naming the id.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  /// The id of a token string (vocabulary or added token), if any.
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;
};

class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  /// From a parsed tokenizer.json with model.type "BPE" and a ByteLevel pre-tokenizer.
  /// Throws tsm::FormatError naming the field at fault.
  static std::unique_ptr<ByteLevelBpeTokenizer> from_json(const void* parsed_json);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int64_t vocab_size() const override { return int64_t(id_to_token_.size()); }
  std::optional<int32_t> token_id(std::string_view token) const override;

  /// The GPT-2 pre-tokenizer: splits text into pieces (byte offsets into `text`).
  static std::vector<std::string_view> pre_tokenize(std::string_view text);

 private:
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;          ///< byte-mapped token string -> id
  std::vector<std::string> id_to_token_;                    ///< (vocab) id -> token string ("" for holes)
  std::unordered_map<std::string, int32_t> merge_rank_;     ///< "left right" -> rank (lower merges first)
  std::vector<std::pair<std::string, int32_t>> added_;      ///< added tokens (content, id), longest first
  std::vector<bool> is_added_;                              ///< (vocab) id is an added token (decoded verbatim)
  std::string byte_to_cp_[256];                             ///< byte -> UTF-8 of its printable code point
  std::unordered_map<char32_t, uint8_t> cp_to_byte_;        ///< inverse of byte_to_cp_
  bool add_prefix_space_ = false;
};

/// Parses tokenizer.json text and builds its tokenizer: model BPE with a ByteLevel pre-tokenizer ->
/// ByteLevelBpeTokenizer, any other BPE -> SentencePieceBpeTokenizer. Throws tsm::FormatError for
/// malformed JSON and for tokenizer kinds or features not implemented (e.g. Unigram or WordPiece
/// models; such models run from token ids).
std::unique_ptr<Tokenizer> load_tokenizer(std::string_view tokenizer_json);

/// The text that `ids` add after `prefix`: decode(prefix + ids) less decode(prefix) when the latter is
/// a prefix of the former, else decode(ids). For generated continuations: a decoder that strips a
/// leading space (SentencePiece's Strip) or joins bytes across tokens gives the continuation's own
/// text only in context.
std::string decode_continuation(const Tokenizer& tok, std::span<const int32_t> prefix, std::span<const int32_t> ids);

}  // namespace tsm
