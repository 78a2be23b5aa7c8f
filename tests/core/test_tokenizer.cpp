// The byte-level BPE tokenizer against the HF tokenizers library: every case of
// fixtures/gpt2-tokenizer/reference.json must give the same ids, and decode must give the text back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "model/tokenizer.h"

using nlohmann::json;
using namespace tsm;

namespace {

const std::string kDir = std::string(TSM_FIXTURES_DIR) + "/gpt2-tokenizer";

const Tokenizer& gpt2() {
  static std::unique_ptr<Tokenizer> t = load_tokenizer(read_file(kDir + "/tokenizer.json"));
  return *t;
}

TEST(Tokenizer, ReferenceCasesIdForId) {
  json ref = json::parse(read_file(kDir + "/reference.json"));
  ASSERT_GE(ref["cases"].size(), 10u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    auto expected = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(gpt2().encode(text), expected) << "text: " << text;
    if (c.value("decoded_roundtrip", false)) EXPECT_EQ(gpt2().decode(expected), text);
  }
}

TEST(Tokenizer, RoundTripOfArbitraryText) {
  for (std::string text : {std::string(""), std::string("  \n\t x"), std::string("a\u00a0b\u3000c"),
                           std::string("<|endoftext|>Hello<|endoftext|> world"), std::string("1234567890 ''' 's's"),
                           std::string("\xf0\x9f\xa4\x96 robots \xe2\x80\x94 \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82")}) {
    auto ids = gpt2().encode(text);
    EXPECT_EQ(gpt2().decode(ids), text);
  }
  EXPECT_EQ(gpt2().encode("<|endoftext|>"), std::vector<int32_t>{50256});
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().token_id("<|endoftext|>"), 50256);
}

TEST(Tokenizer, PreTokenizerSplitsLikeTheGpt2Regex) {
  auto p = ByteLevelBpeTokenizer::pre_tokenize("Hello  world's 42x\n\n end ");
  std::vector<std::string> got(p.begin(), p.end());
  std::vector<std::string> want{"Hello", " ", " world", "'s", " 42", "x", "\n\n", " end", " "};
  EXPECT_EQ(got, want);
}

TEST(Tokenizer, BadInputs) {
  EXPECT_THROW(gpt2().decode(std::vector<int32_t>{50257}), Error);
  EXPECT_THROW(gpt2().decode(std::vector<int32_t>{-1}), Error);
  EXPECT_THROW(load_tokenizer("{not json"), FormatError);
  EXPECT_THROW(load_tokenizer("{\"model\": 3}"), FormatError);
  EXPECT_THROW(load_tokenizer(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})"),
               FormatError);
  EXPECT_THROW(load_tokenizer(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}, "pre_tokenizer": {"type": "ByteLevel"}})"),
               FormatError);
  // One token per id, ids dense, added tokens agreeing with the vocabulary (fuzzing found a file
  // with two tokens of one id: it loaded, and decode(encode(text)) was not text).
  const json good = json::parse(read_file(kDir + "/tokenizer.json"));
  auto refused = [](const json& j, const std::string& says) {
    try {
      load_tokenizer(j.dump());
      ADD_FAILURE() << "loaded; expected a FormatError saying '" << says << "'";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  json dup = good;
  dup["model"]["vocab"]["s"] = dup["model"]["vocab"]["\u0120an"];
  refused(dup, "to both");
  json sparse = good;
  sparse["model"]["vocab"]["s"] = 2000000000;
  refused(sparse, "sparse vocabulary");
  json clash = good;
  clash["added_tokens"][0]["id"] = 0;
  refused(clash, "which model.vocab gives to");
  json negative = good;
  negative["added_tokens"][0]["id"] = -5;
  refused(negative, "negative id");
  json huge = good;  // 2^32 + 1 used to be truncated to id 1
  huge["added_tokens"][0]["id"] = (int64_t(1) << 32) + 1;
  refused(huge, "32-bit integer 'id'");
  // A tokenizer kind not implemented (a Unigram model) is refused with a message that says what to do.
  try {
    load_tokenizer(R"({"model": {"type": "Unigram", "vocab": []}, "pre_tokenizer": {"type": "Metaspace"}})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--ids"), std::string::npos);
  }
}

}  // namespace
