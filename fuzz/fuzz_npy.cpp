// Fuzz target: .npy parsing (core/formats/npy parse_npy_header, parse_npy). An image that parses
// must round-trip: npy_bytes() of the tensor parses again to the same dtype, shape and bytes.
#include <cstring>

#include "common/error.h"
#include "formats/npy.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tsm;
  try {
    (void)parse_npy_header(fuzz::bytes(data, size));
  } catch (const Error&) {
  }
  Tensor t;
  try {
    t = parse_npy(fuzz::bytes(data, size), nullptr);
  } catch (const Error&) {
    return 0;
  }
  if (t.bytes.size() != static_cast<size_t>(t.numel()) * dtype_size(t.dtype)) fuzz::finding("npy: bytes != numel x dtype size");
  if (t.dtype == DType::BF16) return 0;  // written as f32
  const std::string again = npy_bytes(t);
  Tensor u = parse_npy({reinterpret_cast<const std::byte*>(again.data()), again.size()}, nullptr);
  if (u.shape != t.shape || u.dtype != t.dtype || u.bytes.size() != t.bytes.size() ||
      std::memcmp(u.bytes.data(), t.bytes.data(), t.bytes.size()) != 0)
    fuzz::finding("npy: npy_bytes() of a parsed array does not parse back to it");
  return 0;
}
