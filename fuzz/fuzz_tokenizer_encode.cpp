// Fuzz target: encoding with the GPT-2 tokenizer (tests/fixtures/gpt2-tokenizer/tokenizer.json,
// core/model/tokenizer encode / decode). Any bytes must encode to ids inside the vocabulary; for
// valid UTF-8 text decode(encode(text)) == text (the invariant tokenizer.h states).
#include <fstream>
#include <iterator>

#include "support/test_paths.h"
#include "common/error.h"
#include "common/utf8.h"
#include "fuzz_util.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  static const std::unique_ptr<Tokenizer> tok = [] {
    std::ifstream f(std::string(TSM_FIXTURES_DIR) + "/gpt2-tokenizer/tokenizer.json", std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return load_tokenizer(s);
  }();
  const auto text = fuzz::text(data, size);
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text);
  } catch (const Error&) {
    return 0;
  }
  for (int32_t id : ids)
    if (id < 0 || id >= tok->vocab_size()) fuzz::finding("tokenizer_encode: id " + std::to_string(id) + " outside the vocabulary");
  if (is_valid_utf8(text) && tok->decode(ids) != text) fuzz::finding("tokenizer_encode: decode(encode(text)) != text");
  return 0;
}
