// Tests for core/common: dtype conversions, checked shapes, atomic files, sha256, array packing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "formats/array_pack.h"
#include "common/atomic_file.h"
#include "common/dtype.h"
#include "common/error.h"
#include "common/sha256.h"
#include "common/tensor.h"

namespace fs = std::filesystem;
using namespace tsm;

TEST(DType, HalfAndBf16RoundTripExactValues) {
  for (float v : {0.f, 1.f, -2.5f, 65504.f, 0.000061035156f}) EXPECT_EQ(half_to_float(float_to_half(v)), v);
  for (float v : {0.f, 1.f, -2.5f, 3.0e38f}) EXPECT_NEAR(bf16_to_float(float_to_bf16(v)), v, std::abs(v) * 1e-2);
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
}

// The bit-pattern scan agrees with std::isnan/std::isinf after conversion, for every floating
// dtype, with non-finite values placed across the scan's 1024-element blocks.
TEST(DType, ScanNonFiniteMatchesIsnanIsinf) {
  const size_t n = 5000;
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(0.1f * i) * 1000.f;
  v[1023] = NAN, v[1024] = INFINITY, v[3000] = -INFINITY, v[4999] = -NAN;
  v[10] = 6.0e4f;  // finite in every dtype, f16's largest range
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F64}) {
    std::vector<char> raw(n * dtype_size(t));
    from_f32(t, v.data(), raw.data(), n);
    NonFinite nf;
    scan_nonfinite(t, raw.data() + dtype_size(t), n - 1, 1, nf);  // unaligned start, base index 1
    std::vector<float> back(n);
    to_f32(t, raw.data(), back.data(), n);
    uint64_t nan = 0, inf = 0;
    for (size_t i = 1; i < n; ++i) nan += std::isnan(back[i]), inf += std::isinf(back[i]);
    EXPECT_EQ(nf.nan, nan) << dtype_name(t);
    EXPECT_EQ(nf.inf, inf) << dtype_name(t);
    EXPECT_EQ(nf.nan, 2u) << dtype_name(t);
    EXPECT_EQ(nf.inf, 2u) << dtype_name(t);
    EXPECT_EQ(nf.first, 1023) << dtype_name(t);
  }
  NonFinite none;
  std::vector<int32_t> ints(100, -1);  // all bits set: a NaN pattern as f32, not a float here
  scan_nonfinite(DType::I32, ints.data(), ints.size(), 0, none);
  EXPECT_EQ(none.count(), 0u);
  EXPECT_EQ(none.first, -1);
}

TEST(DType, ParseNamesAndRejectUnknown) {
  EXPECT_EQ(parse_dtype("float16"), DType::F16);
  EXPECT_EQ(parse_dtype("bf16"), DType::BF16);
  EXPECT_THROW(parse_dtype("complex64"), Error);
}

TEST(Tensor, ShapeOverflowRejected) {
  std::vector<int64_t> huge{1 << 30, 1 << 30, 1 << 30};
  EXPECT_THROW(shape_numel(huge), FormatError);
  std::vector<int64_t> neg{3, -1};
  EXPECT_THROW(shape_numel(neg), FormatError);
  EXPECT_THROW(Tensor::from_bytes("x", DType::F32, {2, 2}, std::vector<std::byte>(15)), FormatError);
}

TEST(AtomicFile, CommitReplacesAndAbortLeavesNothing) {
  auto dir = fs::temp_directory_path() / ("tsm_atomic_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto target = (dir / "f.bin").string();
  write_file_atomic(target, "hello");
  EXPECT_EQ(read_file(target), "hello");
  {
    AtomicFileWriter w(target);
    w.write("partial", 7);
  }  // destroyed without commit
  EXPECT_EQ(read_file(target), "hello");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
  fs::remove_all(dir);
}

TEST(Sha256, KnownVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ArrayPack, RoundTripAndInconsistentSizeRejected) {
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  auto a = make_array<float>("x", {2, 3}, v);
  EXPECT_EQ(unpack<float>(a), v);
  EXPECT_THROW(unpack<int32_t>(a), FormatError);
  a.set_data(a.data().substr(0, 20));
  EXPECT_THROW(check_array(a), FormatError);
}
