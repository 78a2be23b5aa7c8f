// Tests for core/common: dtype conversions, checked shapes, atomic files, sha256, array packing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "codec/array_pack.h"
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
