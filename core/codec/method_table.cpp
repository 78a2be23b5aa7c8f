// The method table: one row per codec, in the order `tensorslm methods` lists them.
#include "codec/method_table.h"

#include <string>

#include "codec/quant_codec.h"
#include "codec/saten_codec.h"
#include "codec/svd_codec.h"
#include "codec/tt_token_codec.h"

namespace tsm {

namespace {

struct MethodRow {
  std::string_view name;
  const Codec* codec;
};

const TtTokenCodec kTtToken;
const SvdCodec kSvd;
const Fp16Codec kFp16;
const Int8RowCodec kInt8;
const SatenCodec kSaten;

const MethodRow kMethods[] = {
    {"tt-token", &kTtToken},
    {"svd",      &kSvd},
    {"fp16",     &kFp16},
    {"int8",     &kInt8},
    {"saten",    &kSaten},
};

}  // namespace

const Codec* try_find_codec(std::string_view method) {
  for (const auto& row : kMethods)
    if (row.name == method) return row.codec;
  return nullptr;
}

const Codec& find_codec(std::string_view method) {
  if (const Codec* c = try_find_codec(method)) return *c;
  std::string known;
  for (const auto& row : kMethods) known += (known.empty() ? "" : ", ") + std::string(row.name);
  throw Error("unknown method '" + std::string(method) + "' (known: " + known + ")");
}

std::vector<const Codec*> all_codecs() {
  std::vector<const Codec*> out;
  for (const auto& row : kMethods) out.push_back(row.codec);
  return out;
}

}  // namespace tsm
