// Fuzz target: safetensors parsing (core/formats/safetensors SafetensorsFile::parse). A file that
// parses must round-trip: safetensors_bytes() of its tensors and metadata parses again to the same
// names, dtypes, shapes, bytes and metadata.
#include <cstring>
#include <optional>

#include "common/error.h"
#include "formats/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  std::optional<SafetensorsFile> f;
  try {
    f.emplace(SafetensorsFile::parse(fuzz::bytes(data, size), nullptr));
  } catch (const Error&) {
    return 0;
  }
  for (const Tensor& t : f->tensors()) {
    if (t.bytes.size() != static_cast<size_t>(t.numel()) * dtype_size(t.dtype)) fuzz::finding("safetensors: bytes != numel x dtype size");
    if (t.bytes.size() && (t.bytes.data() < fuzz::bytes(data, size).data() ||
                           t.bytes.data() + t.bytes.size() > fuzz::bytes(data, size).data() + size))
      fuzz::finding("safetensors: tensor '" + t.name + "' lies outside the file");
    if (f->find(t.name) != &t) fuzz::finding("safetensors: find() does not return the tensor of that name");
  }
  const std::string again = safetensors_bytes(f->tensors(), f->metadata());
  auto g = SafetensorsFile::parse({reinterpret_cast<const std::byte*>(again.data()), again.size()}, nullptr);
  if (g.tensors().size() != f->tensors().size() || g.metadata() != f->metadata())
    fuzz::finding("safetensors: safetensors_bytes() of a parsed file does not parse back to it");
  for (const Tensor& t : f->tensors()) {
    const Tensor* u = g.find(t.name);
    if (!u || u->dtype != t.dtype || u->shape != t.shape || u->bytes.size() != t.bytes.size() ||
        (t.bytes.size() && std::memcmp(u->bytes.data(), t.bytes.data(), t.bytes.size()) != 0))
      fuzz::finding("safetensors: tensor '" + t.name + "' differs after a round trip");
  }
  return 0;
}
