// Fuzz target: tokenizer.json loading (core/model/tokenizer load_tokenizer). A tokenizer that
// loads must encode and decode a fixed text without failing, and decode(encode(text)) == text
// (the invariant tokenizer.h states), for text the input itself ends with (its last 64 bytes,
// when they are valid UTF-8).
#include "common/error.h"
#include "common/utf8.h"
#include "fuzz_util.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  const auto text = fuzz::text(data, size);
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = load_tokenizer(text);
  } catch (const Error&) {
    return 0;
  }
  if (!tok) fuzz::finding("tokenizer_json: load_tokenizer returned null");
  std::string sample = "Hello world, it's 2024!\n  tabs\tand <|endoftext|> \xc3\xa9t\xc3\xa9";
  const auto tail = text.substr(text.size() > 64 ? text.size() - 64 : 0);
  if (is_valid_utf8(tail)) sample += std::string(tail);
  try {
    const auto ids = tok->encode(sample);
    for (int32_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) fuzz::finding("tokenizer_json: encode produced id " + std::to_string(id) + " outside the vocabulary");
    if (tok->decode(ids) != sample) fuzz::finding("tokenizer_json: decode(encode(text)) != text");
  } catch (const Error&) {
    // a vocabulary without a byte it needs: a documented error
  }
  return 0;
}
