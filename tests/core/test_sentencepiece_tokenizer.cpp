// The SentencePiece-style BPE tokenizer against the HF tokenizers library on the trained Llama
// fixture (fixtures/llama-man: Prepend + Replace normalizer, byte fallback, <s> template): every
// tokenizer case id for id, the prompt with its <s>, the greedy continuation's text; round trips on
// the held-out documents; the pipeline variants other Llama files use (Metaspace pre-tokenizer and
// decoder, "a b" merges); corrupted tokenizer.json files; and `tensorslm run --prompt` end to end.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "model/sentencepiece_bpe.h"
#include "model/tokenizer.h"
#include "support/cli_fixture.h"

using nlohmann::json;
using namespace tsm;

namespace {

const std::string kDir = std::string(TSM_FIXTURES_DIR) + "/llama-man";

const json& tokenizer_json() {
  static const json j = json::parse(read_file(kDir + "/tokenizer.json"));
  return j;
}
const json& reference() {
  static const json r = json::parse(read_file(kDir + "/reference.json"));
  return r;
}
const Tokenizer& llama() {
  static std::unique_ptr<Tokenizer> t = load_tokenizer(read_file(kDir + "/tokenizer.json"));
  return *t;
}
std::unique_ptr<Tokenizer> load(const json& j) { return load_tokenizer(j.dump()); }
int32_t id_of(const std::string& token) { return llama().token_id(token).value(); }
std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(SentencePieceTokenizer, LoadsAsSentencePieceStyle) {
  EXPECT_NE(dynamic_cast<const SentencePieceBpeTokenizer*>(&llama()), nullptr);
  EXPECT_EQ(llama().vocab_size(), 4096);
  EXPECT_EQ(llama().token_id("<s>"), 1);
  EXPECT_EQ(llama().token_id("</s>"), 2);
  EXPECT_EQ(llama().token_id("<unk>"), 0);
  EXPECT_EQ(llama().token_id("<0x41>"), 68);
  EXPECT_FALSE(llama().token_id("not a token").has_value());
}

// Every reference case id for id (HF add_special_tokens=False), and decode gives the text back: the
// normalizer's prepended "▁" becomes a space that the decoder's Strip removes again.
TEST(SentencePieceTokenizer, ReferenceCasesIdForId) {
  const json& cases = reference()["tokenizer_cases"];
  ASSERT_GE(cases.size(), 15u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(llama().encode(text), expected) << "text: " << text;
    EXPECT_EQ(llama().decode(expected), text) << "text: " << text;
  }
}

TEST(SentencePieceTokenizer, PromptGetsBosAndTheContinuationDecodesInContext) {
  const json& r = reference();
  const std::string prompt = r["prompt_text"].get<std::string>();
  const auto ids = r["prompt_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(llama().encode_with_special_tokens(prompt), ids);
  EXPECT_EQ(cat({1}, llama().encode(prompt)), ids);
  const auto gen = r["greedy"]["generated_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(decode_continuation(llama(), ids, gen), r["greedy"]["text"].get<std::string>());
  // Decoded alone, a continuation that starts with "▁word" would lose its space; in context it keeps it.
  const auto hello = llama().encode("Hello");
  const auto world = llama().encode(" world");  // "▁▁world": the first "▁" stands for the prepended space
  EXPECT_EQ(decode_continuation(llama(), hello, llama().encode("world")), " world");
  EXPECT_EQ(llama().decode(llama().encode("world")), "world");
  EXPECT_EQ(llama().decode(cat(hello, world)), "Hello  world");
}

// The held-out documents (separated by </s>) encode back to the same ids after a decode: 8,192 ids
// of text the tokenizer did not see in its cases.
TEST(SentencePieceTokenizer, HeldOutDocumentsRoundTrip) {
  const auto eval = reference()["eval_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> doc;
  int docs = 0;
  size_t tokens = 0;
  auto check = [&] {
    if (doc.empty()) return;
    const std::string text = llama().decode(doc);
    EXPECT_EQ(llama().encode(text), doc) << "document " << docs << ": " << text.substr(0, 80);
    ++docs;
    tokens += doc.size();
    doc.clear();
  };
  for (int32_t id : eval) {
    if (id == 2) check();
    else doc.push_back(id);
  }
  check();
  EXPECT_GE(docs, 10);
  EXPECT_GE(tokens, 8000u);
}

TEST(SentencePieceTokenizer, UnicodeWhitespaceAndByteFallback) {
  // A character absent from the vocabulary goes out as the byte tokens of its UTF-8 (no merge joins
  // "▁" or a byte token in this file).
  ASSERT_FALSE(llama().token_id("\xC7\x85").has_value());  // U+01C5
  EXPECT_EQ(llama().encode("\xC7\x85"), (std::vector<int32_t>{id_of("\xE2\x96\x81"), id_of("<0xC7>"), id_of("<0x85>")}));
  // Bytes that are not UTF-8 reach byte fallback one by one; decode writes U+FFFD for each.
  EXPECT_EQ(llama().encode("\xFF"), (std::vector<int32_t>{id_of("\xE2\x96\x81"), id_of("<0xFF>")}));
  EXPECT_EQ(llama().decode(llama().encode("a\xFF\xFE")), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  // A run of byte tokens that is valid UTF-8 decodes to its character; an invalid one to U+FFFD per byte.
  EXPECT_EQ(llama().decode(std::vector<int32_t>{id_of("<0xE6>"), id_of("<0x97>"), id_of("<0xA5>")}), "\xE6\x97\xA5");
  EXPECT_EQ(llama().decode(std::vector<int32_t>{id_of("<0xE6>"), id_of("<0x97>")}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Round trips of whitespace runs, tabs, newlines and text from several scripts.
  for (std::string text : {std::string("a    b"), std::string("\t\t\n  \n"), std::string("   "), std::string("x \n \t y  "),
                           std::string("\xC2\xA0\xE3\x80\x80 \xE2\x80\x83"), std::string("\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5"),
                           std::string("\xF0\x9F\xA4\x96\xF0\x9F\xA4\x96 \xE2\x80\x94 robots"), std::string(2000, ' ')}) {
    const auto ids = llama().encode(text);
    EXPECT_EQ(llama().decode(ids), text) << text;
    for (int32_t id : ids) EXPECT_NE(id, 0) << "no <unk> with byte fallback: " << text;
  }
  // By design no round trip for a literal "▁" in the text: it is the space symbol, so decodes as " ".
  EXPECT_EQ(llama().decode(llama().encode("a \xE2\x96\x81 b")), "a   b");
  // Spaces become "▁" and the normalizer prepends one more: n spaces are n + 1 "▁".
  std::string eight;
  for (int k = 0; k < 8; ++k) eight += "\xE2\x96\x81";
  EXPECT_EQ(llama().encode("       "), llama().encode(eight.substr(3)));
}

TEST(SentencePieceTokenizer, SpecialTokensInText) {
  // Added tokens are split out of the raw text first; each piece around them is normalized on its
  // own (so gets its own "▁"), as tokenizers' AddedVocabulary does.
  EXPECT_EQ(llama().encode("<s>"), std::vector<int32_t>{1});
  EXPECT_EQ(llama().encode("<s>Hello</s>"), cat(cat({1}, llama().encode("Hello")), {2}));
  EXPECT_EQ(llama().encode("a<s>b"), cat(cat(llama().encode("a"), {1}), llama().encode("b")));
  EXPECT_EQ(llama().encode("</s></s>"), (std::vector<int32_t>{2, 2}));
  EXPECT_NE(llama().encode("<s ")[0], 1);  // no match: ordinary text
  // This file lists the byte tokens as added special tokens too, so their text is matched as well.
  EXPECT_EQ(llama().encode("<0x41>"), std::vector<int32_t>{68});
  EXPECT_EQ(llama().decode(std::vector<int32_t>{68}), "A");
  // Special tokens decode to their text (skip_special_tokens=False).
  EXPECT_EQ(llama().decode(llama().encode("<s>Hello</s>")), "<s> Hello</s>");
  EXPECT_EQ(llama().decode(std::vector<int32_t>{1}), "<s>");
  EXPECT_THROW(llama().decode(std::vector<int32_t>{4096}), Error);
  EXPECT_THROW(llama().decode(std::vector<int32_t>{-1}), Error);
}

// The texts reference.json does not cover, on the fixture and on the variants below, against ids that
// HF tokenizers gave (fixtures/llama-man/hf_tokenizer_cases.json, from gen_hf_tokenizer_cases.js,
// which builds the same variants): encode id for id, with special tokens, and decode.
json variant_json(const std::string& name) {
  json j = tokenizer_json();
  auto metaspace = [&](const char* scheme, bool split) {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme}, {"split", split}};
  };
  auto added = [&](int id, const char* content, const char* option) {
    json a = {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}};
    if (std::string(option) == "normalized") a["normalized"] = true, a["special"] = false;
    else a[option] = true;
    j["added_tokens"].push_back(a);
  };
  if (name == "fixture") {
  } else if (name == "metaspace_always") {
    metaspace("always", false);
  } else if (name == "metaspace_first") {
    metaspace("first", false);
  } else if (name == "metaspace_never") {
    metaspace("never", false);
  } else if (name == "metaspace_always_split") {
    metaspace("always", true);
  } else if (name == "unk_fused" || name == "unk_unfused") {
    j["model"]["byte_fallback"] = false;
    j["model"]["fuse_unk"] = name == "unk_fused";
  } else if (name == "added_options") {
    added(4096, "<L>", "lstrip");
    added(4097, "<R>", "rstrip");
    added(4098, "a b", "normalized");
  } else if (name == "metaspace_decoder") {
    j["decoder"] = {{"type", "Sequence"},
                    {"decoders", json::array({{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}},
                                              {{"type", "ByteFallback"}},
                                              {{"type", "Fuse"}}})}};
  } else {
    ADD_FAILURE() << "unknown variant " << name;
  }
  return j;
}

TEST(SentencePieceTokenizer, HfCasesOnTheFixtureAndVariants) {
  const json cases = json::parse(read_file(kDir + "/hf_tokenizer_cases.json"))["cases"];
  ASSERT_GE(cases.size(), 400u);
  std::map<std::string, std::unique_ptr<Tokenizer>> tok;
  int round_trips = 0;
  for (const auto& c : cases) {
    const std::string v = c["variant"].get<std::string>(), text = c["text"].get<std::string>();
    if (!tok.count(v)) tok[v] = load(variant_json(v));
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok[v]->encode(text), ids) << v << ": " << text;
    EXPECT_EQ(tok[v]->encode_with_special_tokens(text), c["ids_with_special"].get<std::vector<int32_t>>()) << v << ": " << text;
    EXPECT_EQ(tok[v]->decode(ids), c["decoded"].get<std::string>()) << v << ": " << text;
    round_trips += c["decoded"] == c["text"];
  }
  EXPECT_EQ(tok.size(), 9u);
  EXPECT_GT(round_trips, 200);  // the rest: <unk>, a literal "▁", what the prepend schemes add or the decoder strips
}

// Added-token options: lstrip / rstrip take the whitespace beside the token; normalized tokens are
// matched after the normalizer ran (so against "▁" for a space).
TEST(SentencePieceTokenizer, AddedTokenOptions) {
  json j = tokenizer_json();
  j["added_tokens"].push_back({{"id", 4096}, {"content", "<L>"}, {"lstrip", true}, {"rstrip", false}, {"normalized", false}, {"special", true}, {"single_word", false}});
  j["added_tokens"].push_back({{"id", 4097}, {"content", "<R>"}, {"lstrip", false}, {"rstrip", true}, {"normalized", false}, {"special", true}, {"single_word", false}});
  j["added_tokens"].push_back({{"id", 4098}, {"content", "a b"}, {"lstrip", false}, {"rstrip", false}, {"normalized", true}, {"special", false}, {"single_word", false}});
  auto t = load(j);
  EXPECT_EQ(t->vocab_size(), 4099);
  EXPECT_EQ(t->encode("x  <L>y"), cat(cat(llama().encode("x"), {4096}), llama().encode("y")));
  EXPECT_EQ(t->encode("x<R> \t y"), cat(cat(llama().encode("x"), {4097}), llama().encode("y")));
  // "a b" normalized is "▁a▁b": found at the text's start, where the normalizer put the "▁".
  EXPECT_EQ(t->encode("a b"), std::vector<int32_t>{4098});
  // What follows a normalized match is not normalized again (no second "▁").
  EXPECT_EQ(t->encode("a bc"), (std::vector<int32_t>{4098, id_of("c")}));
  // A normalized added token decodes from its normalized form "▁a▁b" (tokenizers >= 0.23).
  EXPECT_EQ(t->decode(std::vector<int32_t>{4096, 4098}), "<L> a b");
}

// The Metaspace pre-tokenizer (newer Llama files: no normalizer) gives the Prepend + Replace ids
// where both mean the same: "always" prepends "▁" unless the piece starts with one; "first" only at
// the start of the text; split cuts before each "▁".
TEST(SentencePieceTokenizer, MetaspacePreTokenizerVariants) {
  auto variant = [](const std::string& scheme, bool split) {
    json j = tokenizer_json();
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme}, {"split", split}};
    return load(j);
  };
  auto always = variant("always", false), first = variant("first", false), never = variant("never", false);
  for (const auto& c : reference()["tokenizer_cases"]) {
    const std::string text = c["text"].get<std::string>();
    if (!text.empty() && text[0] == ' ') continue;
    EXPECT_EQ(always->encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(first->encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
  }
  EXPECT_EQ(always->encode(" x"), llama().encode("x"));  // no second "▁"
  EXPECT_EQ(never->encode(" x"), llama().encode("x"));
  EXPECT_EQ(never->encode("x"), std::vector<int32_t>{id_of("x")});  // nothing prepended
  EXPECT_EQ(first->encode("<s>Hello"), cat({1}, never->encode("Hello")));
  EXPECT_EQ(always->encode("<s>Hello"), cat({1}, always->encode("Hello")));
  // With split, no token spans a "▁" that is not its first character ("s▁" merges no more).
  auto split = variant("always", true);
  const auto ids = split->encode("leading spaces and   runs   of spaces");
  EXPECT_EQ(split->decode(ids), "leading spaces and   runs   of spaces");
  for (int32_t id : ids) {
    const std::string tok = split->decode(std::vector<int32_t>{id_of("a"), id});  // "a" + token, to keep the token's space
    EXPECT_EQ(tok.find(' ', 2), std::string::npos) << tok;
  }
  EXPECT_NE(ids, always->encode("leading spaces and   runs   of spaces"));
  EXPECT_EQ(split->encode("ab cd"), cat(split->encode("ab"), split->encode("cd")));
}

// The Metaspace decoder: "▁" -> " ", and the first token loses its "▁" unless prepend_scheme is never.
TEST(SentencePieceTokenizer, MetaspaceDecoderAndNoDecoder) {
  json j = tokenizer_json();
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", json::array({{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}},
                                            {{"type", "ByteFallback"}},
                                            {{"type", "Fuse"}}})}};
  auto t = load(j);
  EXPECT_EQ(t->decode(t->encode("Hello, world! \xE6\x97\xA5")), "Hello, world! \xE6\x97\xA5");
  j["decoder"]["decoders"][0]["prepend_scheme"] = "never";
  EXPECT_EQ(load(j)->decode(t->encode("Hello")), " Hello");
  j["decoder"] = nullptr;  // tokenizers joins the tokens with spaces
  EXPECT_EQ(load(j)->decode(std::vector<int32_t>{id_of("H"), id_of("el")}), "H el");
}

// Merges as "a b" strings (older files) give the same ids as [a, b] pairs.
TEST(SentencePieceTokenizer, StringMergesEqualPairMerges) {
  json j = tokenizer_json();
  json strings = json::array();
  for (const auto& m : j["model"]["merges"]) strings.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  j["model"]["merges"] = strings;
  auto t = load(j);
  for (const auto& c : reference()["tokenizer_cases"])
    EXPECT_EQ(t->encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>());
}

// Without byte fallback, characters outside the vocabulary become <unk>, fused into one when fuse_unk.
TEST(SentencePieceTokenizer, UnkWithoutByteFallback) {
  json j = tokenizer_json();
  j["model"]["byte_fallback"] = false;
  j["model"]["fuse_unk"] = true;
  const auto fused = load(j)->encode("\xE6\x97\xA5\xE6\x97\xA5");
  j["model"]["fuse_unk"] = false;
  const auto unfused = load(j)->encode("\xE6\x97\xA5\xE6\x97\xA5");
  EXPECT_EQ(fused, (std::vector<int32_t>{id_of("\xE2\x96\x81"), 0}));
  EXPECT_EQ(unfused, (std::vector<int32_t>{id_of("\xE2\x96\x81"), 0, 0}));
  // With no unk_token either, tokenizers drops the character (and so does this).
  j["model"]["unk_token"] = nullptr;
  EXPECT_EQ(load(j)->encode("\xE6\x97\xA5x"), (std::vector<int32_t>{id_of("\xE2\x96\x81"), id_of("x")}));
}

// Every corrupted or unimplemented variant is a FormatError that names what is wrong.
TEST(SentencePieceTokenizer, CorruptedFilesAreFormatErrors) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"missing model", [](json& j) { j.erase("model"); }, "model"},
      {"model not an object", [](json& j) { j["model"] = "BPE"; }, "model"},
      {"no vocab", [](json& j) { j["model"].erase("vocab"); }, "model.vocab"},
      {"vocab an array", [](json& j) { j["model"]["vocab"] = json::array({"a"}); }, "model.vocab"},
      {"vocab id a string", [](json& j) { j["model"]["vocab"]["H"] = "7"; }, "model.vocab['H']"},
      {"vocab id negative", [](json& j) { j["model"]["vocab"]["H"] = -3; }, "model.vocab['H']"},
      {"sparse ids", [](json& j) { j["model"]["vocab"]["zz-new"] = 2000000000; }, "sparse"},
      {"two tokens one id", [](json& j) { j["model"]["vocab"]["zz-new"] = 300; }, "id 300"},
      {"no merges", [](json& j) { j["model"].erase("merges"); }, "model.merges"},
      {"merges an object", [](json& j) { j["model"]["merges"] = json::object(); }, "model.merges"},
      {"merge a number", [](json& j) { j["model"]["merges"][5] = 7; }, "model.merges[5]"},
      {"merge of three", [](json& j) { j["model"]["merges"][5] = json::array({"a", "b", "c"}); }, "model.merges[5]"},
      {"merge unknown left", [](json& j) { j["model"]["merges"][3] = json::array({"no-such-token", "e"}); }, "no-such-token"},
      {"merge unknown result", [](json& j) { j["model"]["merges"].push_back(json::array({"<s>", "</s>"})); }, "<s></s>"},
      {"mixed merge kinds", [](json& j) { j["model"]["merges"][4] = "t h"; }, "model.merges[4]"},
      {"byte fallback lacks <0x41>", [](json& j) { j["model"]["vocab"].erase("<0x41>"); }, "<0x41>"},
      {"byte_fallback not a bool", [](json& j) { j["model"]["byte_fallback"] = "yes"; }, "byte_fallback"},
      {"unk not in vocab", [](json& j) { j["model"]["unk_token"] = "<nope>"; }, "<nope>"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "dropout"},
      {"subword prefix", [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "continuing_subword_prefix"},
      {"model type", [](json& j) { j["model"]["type"] = "WordPiece"; }, "WordPiece"},
      {"added id a string", [](json& j) { j["added_tokens"][1]["id"] = "1"; }, "added_tokens[1]"},
      {"added id disagrees", [](json& j) { j["added_tokens"][1]["id"] = 7; }, "added_tokens[1]"},
      {"added single_word", [](json& j) { j["added_tokens"][2]["single_word"] = true; }, "single_word"},
      {"added lstrip a number", [](json& j) { j["added_tokens"][2]["lstrip"] = 1; }, "lstrip"},
      {"normalizer NFKC", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "NFKC"},
      {"normalizer regex", [](json& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}}; }, "Regex"},
      {"normalizer no type", [](json& j) { j["normalizer"]["normalizers"][0].erase("type"); }, "normalizer.normalizers[0].type"},
      {"prepend not a string", [](json& j) { j["normalizer"]["normalizers"][0]["prepend"] = 5; }, "prepend"},
      {"pre_tokenizer Whitespace", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "Whitespace"},
      {"metaspace two chars", [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}}; }, "replacement"},
      {"metaspace scheme", [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "sometimes"}}; }, "sometimes"},
      {"decoder WordPiece", [](json& j) { j["decoder"]["decoders"][1] = {{"type", "WordPiece"}}; }, "WordPiece"},
      {"strip start negative", [](json& j) { j["decoder"]["decoders"][3]["start"] = -1; }, "start"},
      {"post_processor Bert", [](json& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }, "BertProcessing"},
      {"template unknown special", [](json& j) { j["post_processor"]["special_tokens"].erase("<s>"); }, "<s>"},
      {"template id outside", [](json& j) { j["post_processor"]["special_tokens"]["<s>"]["ids"][0] = 99999; }, "<s>"},
      {"template sequence B", [](json& j) { j["post_processor"]["single"][1]["Sequence"]["id"] = "B"; }, "sequence A"},
      {"truncation", [](json& j) { j["truncation"] = {{"max_length", 8}}; }, "truncation"},
  };
  for (const auto& c : cases) {
    json j = tokenizer_json();
    c.edit(j);
    try {
      load(j);
      ADD_FAILURE() << c.what << ": no error";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << c.what << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.what << ": not a FormatError: " << e.what();
    }
  }
  EXPECT_THROW(load_tokenizer("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"normalizer\": 3}"), FormatError);
  EXPECT_THROW(load_tokenizer(read_file(kDir + "/tokenizer.json").substr(0, 5000)), FormatError);
}

// `tensorslm run DIR --prompt TEXT` on the Llama fixture: the prompt becomes the reference ids (with
// <s>), the greedy continuation is the transformers one, and its text is decoded in context.
class SentencePieceCli : public test::CliTest {};

TEST_F(SentencePieceCli, RunWithPromptTextMatchesTheReference) {
  const json& g = reference()["greedy"];
  const std::string prompt = reference()["prompt_text"].get<std::string>();
  ASSERT_EQ(prompt.find('\''), std::string::npos);
  const std::string n = std::to_string(g["generated_ids"].size());
  json out = run_json("run " + fixture("llama-man") + " --prompt '" + prompt + "' --max-new-tokens " + n + " --ignore-eos --threads 1 --json");
  EXPECT_EQ(out["prompt_ids"], reference()["prompt_ids"]);
  EXPECT_EQ(out["generated_ids"], g["generated_ids"]);
  EXPECT_EQ(out["text"], g["text"]);
  // Plain output: the prompt, then the continuation's text.
  test::CliResult r = run("run " + fixture("llama-man") + " --prompt '" + prompt + "' --max-new-tokens " + n + " --ignore-eos --threads 1");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, prompt + g["text"].get<std::string>() + "\n");
}

}  // namespace
