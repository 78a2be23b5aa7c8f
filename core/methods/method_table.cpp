// The method table: one row per method, in the order `tensorslm methods` lists them.
#include "methods/method_table.h"

#include "methods/block_quant/block_linear.h"
#include "methods/block_quant/block_quant_codec.h"
#include "methods/correction/qlr_codec.h"
#include "methods/correction/qtt_codec.h"
#include "methods/fp16/fp16_codec.h"
#include "methods/fp16/fp16_linear.h"
#include "methods/int8/int8_codec.h"
#include "methods/int8/int8_linear.h"
#include "methods/saten/saten_codec.h"
#include "methods/saten/saten_linear.h"
#include "methods/svd/svd_codec.h"
#include "methods/tt_token/tt_embedding.h"
#include "methods/tt_token/tt_token_codec.h"

namespace tsm {

namespace {

const TtTokenCodec kTtToken;
const SvdCodec kSvd;
const Fp16Codec kFp16;
const Int8RowCodec kInt8;
const SatenCodec kSaten;
const BlockQuantCodec kQ8_0{BlockType::kQ8_0};
const BlockQuantCodec kQ4_0{BlockType::kQ4_0};
const BlockQuantCodec kQ4_1{BlockType::kQ4_1};
const BlockQuantCodec kQ5_0{BlockType::kQ5_0};
const BlockQuantCodec kQ5_1{BlockType::kQ5_1};
const BlockQuantCodec kQ6_K{BlockType::kQ6_K};
const BlockQuantCodec kQ5_K{BlockType::kQ5_K};
const BlockQuantCodec kQ4_K{BlockType::kQ4_K};
const BlockQuantCodec kQ3_K{BlockType::kQ3_K};
const BlockQuantCodec kQ2_K{BlockType::kQ2_K};
const QlrCodec kQlr;
const QttCodec kQtt;

//                    codec       LinearOp            TokenEmbedding      default for            LinearOp, stored (in, out)
const std::vector<Method> kMethods = {
    {&kTtToken, nullptr,            &make_tt_embedding, DefaultFor::kEmbedding},
    {&kSvd,     nullptr,            nullptr,            DefaultFor::kNone},
    {&kFp16,    &make_fp16_linear,  nullptr,            DefaultFor::kNone,     &make_fp16_linear_in_out},
    {&kInt8,    &make_int8_linear,  nullptr,            DefaultFor::kNone,     &make_int8_linear_in_out},
    {&kSaten,   &make_saten_linear, nullptr,            DefaultFor::kWholeModel},
    {&kQ8_0,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ4_0,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ4_1,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ5_0,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ5_1,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ6_K,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ5_K,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ4_K,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ3_K,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQ2_K,    &make_block_linear, nullptr,            DefaultFor::kNone},
    {&kQlr,     nullptr,            nullptr,            DefaultFor::kNone},
    {&kQtt,     nullptr,            nullptr,            DefaultFor::kNone},
};

/// The names of the rows that `keep`, comma-separated.
std::string names_where(bool (*keep)(const Method&)) {
  std::string s;
  for (const auto& m : kMethods)
    if (keep(m)) s += (s.empty() ? "" : ", ") + std::string(m.name());
  return s;
}

}  // namespace

const Method* try_find_method(std::string_view method) {
  for (const auto& m : kMethods)
    if (m.name() == method) return &m;
  return nullptr;
}

const Method& find_method(std::string_view method) {
  if (const Method* m = try_find_method(method)) return *m;
  throw Error("unknown method '" + std::string(method) + "' (known: " + names_where([](const Method&) { return true; }) + ")");
}

const std::vector<Method>& all_methods() { return kMethods; }

const Method& default_method(DefaultFor what) {
  for (const auto& m : kMethods)
    if (m.default_for == what) return m;
  throw Error("the method table has no default for this input");  // a broken table, caught by tests
}

std::string methods_with_embedding_op() {
  return names_where([](const Method& m) { return m.make_embedding != nullptr; });
}

std::string calibrating_methods() {
  return names_where([](const Method& m) { return m.codec->calibrates(); });
}

const Codec* try_find_codec(std::string_view method) {
  const Method* m = try_find_method(method);
  return m ? m->codec : nullptr;
}

const Codec& find_codec(std::string_view method) { return *find_method(method).codec; }

std::vector<const Codec*> all_codecs() {
  std::vector<const Codec*> out;
  for (const auto& m : kMethods) out.push_back(m.codec);
  return out;
}

std::vector<const Codec*> reference_codecs() {
  // Casts and block quantization: data-free, fast, and what users compare everything with.
  std::vector<const Codec*> out{&kFp16, &kInt8};
  for (const auto& m : kMethods)
    if (dynamic_cast<const BlockQuantCodec*>(m.codec)) out.push_back(m.codec);
  return out;
}

std::unique_ptr<LinearOp> make_compressed_linear(const v1::CompressedTensor& t, bool stored_in_out) {
  const Method* m = try_find_method(t.method());
  if (!m) return nullptr;
  const auto make = stored_in_out && !m->codec->takes_orientation() ? m->make_linear_in_out : m->make_linear;
  return make ? make(t) : nullptr;
}

std::shared_ptr<const TokenEmbedding> make_compressed_embedding(const v1::CompressedTensor& t) {
  const Method* m = try_find_method(t.method());
  return m && m->make_embedding ? m->make_embedding(t) : nullptr;
}

}  // namespace tsm
