// The method table: one row per compression method, naming its codec (methods/<name>/*_codec.h)
// and its runtime operators. Names are data: nothing outside core/methods chooses a method by a
// string literal; the CLI, the server's validation, /v1/openapi.json, the pipeline and the model
// loader all read this table.
//
// Adding a method: a folder core/methods/<name>/ with its codec (params, encode, decode, stored
// bytes) and, when it runs without densifying, its LinearOp / TokenEmbedding; then one row in
// method_table.cpp. Nothing else changes (proto/ carries params as a Struct, the schema comes from
// the codec).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "methods/codec.h"
#include "model/embedding.h"
#include "model/linear.h"

namespace tsm {

/// What a CLI or API default applies to when the user names no method.
enum class DefaultFor { kNone, kEmbedding, kWholeModel };

struct Method {
  const Codec* codec = nullptr;
  /// Runs a compressed weight (HF (out, in) layout or the codec's recorded orientation) as a
  /// LinearOp without densifying; null: the loader decodes it densely.
  std::unique_ptr<LinearOp> (*make_linear)(const v1::CompressedTensor&) = nullptr;
  /// Runs a compressed (vocab, dim) table as an embedding operator (and the head tied to it);
  /// null: decoded densely.
  std::shared_ptr<const TokenEmbedding> (*make_embedding)(const v1::CompressedTensor&) = nullptr;
  DefaultFor default_for = DefaultFor::kNone;
  /// The LinearOp for a weight the checkpoint stores (in, out) (GPT-2 Conv1D) when the codec
  /// records no orientation (takes_orientation() false: fp16 and int8 hold the matrix as stored, so
  /// their tensor alone cannot say which side is the input); null: decoded densely. Codecs that
  /// record an orientation get make_linear for either layout.
  std::unique_ptr<LinearOp> (*make_linear_in_out)(const v1::CompressedTensor&) = nullptr;

  std::string_view name() const { return codec->name(); }
};

/// The row for `method`. Throws tsm::Error "unknown method 'x' (known: a, b, ...)".
const Method& find_method(std::string_view method);
/// nullptr when unknown.
const Method* try_find_method(std::string_view method);
/// Every row in table order (the order `tensorslm methods` lists them).
const std::vector<Method>& all_methods();
/// The method used when a user names none for `what` (tt-token for an embedding, ...).
const Method& default_method(DefaultFor what);
/// Names of the rows with an embedding operator, comma-separated, for messages.
std::string methods_with_embedding_op();
/// Names of the rows whose codec calibrates(), comma-separated, for messages.
std::string calibrating_methods();

/// The codec for `method` (find_method(method).codec).
const Codec& find_codec(std::string_view method);
/// nullptr when unknown.
const Codec* try_find_codec(std::string_view method);
/// Every codec in table order.
std::vector<const Codec*> all_codecs();

/// The reference representations every model-level result is compared with (fp16, int8 and the
/// block-quantization types, at their default parameters), in table order.
std::vector<const Codec*> reference_codecs();

/// The table's LinearOp for `t` (by t.method()), or nullptr when its method has none (or is
/// unknown): the caller then decodes the tensor densely. The op carries no bias (see with_bias).
/// stored_in_out: the checkpoint's layout of this weight is (in, out) (GPT-2 Conv1D); a codec that
/// records its orientation ignores it, one that does not runs through make_linear_in_out.
std::unique_ptr<LinearOp> make_compressed_linear(const v1::CompressedTensor& t, bool stored_in_out = false);
/// The table's embedding operator for `t`, or nullptr when its method has none.
std::shared_ptr<const TokenEmbedding> make_compressed_embedding(const v1::CompressedTensor& t);

}  // namespace tsm
