// Tests for core/formats/safetensors: round trips of every dtype with metadata, the fixture files
// written by the reference writer (huggingface safetensors), and hostile headers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "support/test_paths.h"
#include "common/error.h"
#include "formats/safetensors.h"

namespace fs = std::filesystem;
using namespace tsm;

namespace {

std::span<const std::byte> as_bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

// A safetensors image with header text `h` (not padded) and `data` bytes of 0x5a.
std::string craft(const std::string& h, size_t data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  return out + h + std::string(data, '\x5a');
}

void expect_rejected(const std::string& img, const std::string& needle) {
  try {
    SafetensorsFile::parse(as_bytes(img), nullptr);
    ADD_FAILURE() << "accepted, expected an error containing '" << needle << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

Tensor make(const std::string& name, DType dt, std::vector<int64_t> shape, uint8_t fill) {
  size_t n = static_cast<size_t>(shape_numel(shape)) * dtype_size(dt);
  std::vector<std::byte> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>(fill + i);
  return Tensor::from_bytes(name, dt, std::move(shape), std::move(b));
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeWithMetadata) {
  std::vector<Tensor> ts{make("a.f32", DType::F32, {3, 5}, 1), make("b.f16", DType::F16, {7}, 2),
                         make("c.bf16", DType::BF16, {2, 3}, 3), make("d.f64", DType::F64, {1, 1, 3}, 4),
                         make("e.i64", DType::I64, {2}, 5), make("f.u8", DType::U8, {3}, 6),
                         make("g.i32", DType::I32, {0, 4}, 7), make("h.i8", DType::I8, {}, 8)};
  std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "{\"json\": \"inside\"}"}};
  std::string img = safetensors_bytes(ts, meta);
  uint64_t n = 0;
  std::memcpy(&n, img.data(), 8);
  EXPECT_EQ(n % 8, 0u) << "data must start 8-byte aligned";
  SafetensorsFile f = SafetensorsFile::parse(as_bytes(img), nullptr);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = f.tensors()[i];  // file order = write order
    EXPECT_EQ(t.name, ts[i].name);
    EXPECT_EQ(t.dtype, ts[i].dtype);
    EXPECT_EQ(t.shape, ts[i].shape);
    ASSERT_EQ(t.bytes.size(), ts[i].bytes.size());
    if (!t.bytes.empty()) {
      EXPECT_EQ(0, std::memcmp(t.bytes.data(), ts[i].bytes.data(), t.bytes.size()));
    }
  }
  EXPECT_EQ(f.at("c.bf16").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.find("nope"), nullptr);
  try {
    f.at("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has: a.f32, b.f16"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, WriteAndOpenFileAndWriterRejectsBadInput) {
  auto path = (fs::temp_directory_path() / ("tsm_st_" + std::to_string(::getpid()) + ".safetensors")).string();
  MatrixRM m = MatrixRM::Random(9, 4);
  std::vector<Tensor> ts{Tensor::from_matrix("w", m)};
  write_safetensors(path, ts);
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    EXPECT_EQ(f.at("w").to_matrix(), m);
  }
  fs::remove(path);
  std::vector<Tensor> dup{make("x", DType::F32, {1}, 0), make("x", DType::F32, {1}, 0)};
  EXPECT_THROW(safetensors_bytes(dup), Error);
  std::vector<Tensor> reserved{make("__metadata__", DType::F32, {1}, 0)};
  EXPECT_THROW(safetensors_bytes(reserved), Error);
}

TEST(Safetensors, ReadsReferenceWriterFixtures) {
  SafetensorsFile f = SafetensorsFile::open(std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny/model.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const Tensor& wte = f.at("transformer.wte.weight");
  EXPECT_EQ(wte.dtype, DType::F32);
  EXPECT_EQ(wte.shape, (std::vector<int64_t>{1000, 64}));
  MatrixRM e = wte.to_matrix();
  EXPECT_TRUE(e.allFinite());
  EXPECT_GT(e.norm(), 1.0f);
  for (size_t i = 1; i < f.tensors().size(); ++i) EXPECT_LT(f.tensors()[i - 1].bytes.data(), f.tensors()[i].bytes.data());
  SafetensorsFile l = SafetensorsFile::open(std::string(TSM_FIXTURES_DIR) + "/llama-tiny/model.safetensors");
  EXPECT_EQ(l.at("model.embed_tokens.weight").shape, (std::vector<int64_t>{1000, 64}));
}

TEST(Safetensors, RejectsTruncatedAndOversizedHeaders) {
  expect_rejected("", "too short");
  expect_rejected(std::string("\x10\0\0\0", 4), "too short");
  std::string huge(8, '\0');
  huge[4] = 1;  // 2^32 bytes declared
  expect_rejected(huge + "{}", "exceeds the limit");
  std::string img = craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  EXPECT_NO_THROW(SafetensorsFile::parse(as_bytes(img), nullptr));
  expect_rejected(img.substr(0, 20), "only");                       // header cut
  expect_rejected(img.substr(0, img.size() - 1), "past the data");  // data cut
}

TEST(Safetensors, RejectsMalformedJsonAndEntries) {
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), "not valid JSON");
  expect_rejected(craft(R"([1,2])", 0), "not a JSON object");
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                  "'a' twice");
  expect_rejected(craft(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2), "dtype 'F8_E4M3' is not supported");
  expect_rejected(craft(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", 2), "'BOOL'");
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "non-negative");
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "non-negative");
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "[begin, end]");
  expect_rejected(craft(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8), "'shape'");
  expect_rejected(craft(R"({"a":[1]})", 8), "not an object");
  expect_rejected(craft(R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8), "not a string");
}

TEST(Safetensors, RejectsLyingOffsetsAndShapes) {
  // shape x dtype != span
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12 bytes, data_offsets span 8");
  expect_rejected(craft(R"({"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,16]}})", 16), "needs 8 bytes");
  // offsets out of range or reversed
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8), "past the data section");
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "reversed");
  // overlapping
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                  "overlap");
  // huge declared sizes: overflow, and sizes far past the file, rejected before any allocation
  expect_rejected(craft(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8), "too large");
  expect_rejected(craft(R"({"a":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}})", 8), "past the data section");
}

TEST(Safetensors, ErrorsCarryTheByteOffset) {
  std::string img = craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  try {
    SafetensorsFile::parse(as_bytes(img), nullptr);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(e.offset(), static_cast<int64_t>(img.size() - 12 + 4));  // where 'b' starts inside 'a'
  }
}

TEST(Safetensors, RandomCorruptionOnlyEverThrowsFormatError) {
  std::vector<Tensor> ts{make("a", DType::F32, {3, 4}, 1), make("b", DType::BF16, {5}, 2), make("c", DType::I64, {2}, 3)};
  std::string good = safetensors_bytes(ts, {{"k", "v"}});
  std::mt19937 g(5);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good.substr(0, trial % 5 == 0 ? g() % good.size() : good.size());
    for (int k = 0; k < 2 && !bad.empty(); ++k) bad[g() % bad.size()] = static_cast<char>(g());
    try {
      SafetensorsFile f = SafetensorsFile::parse(as_bytes(bad), nullptr);
      const std::byte* end = reinterpret_cast<const std::byte*>(bad.data()) + bad.size();
      for (const auto& t : f.tensors()) {  // whatever parses stays inside the buffer and is consistent
        EXPECT_LE(t.bytes.data() + t.bytes.size(), end);
        EXPECT_EQ(static_cast<size_t>(t.numel()) * dtype_size(t.dtype), t.bytes.size());
      }
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 500);
}
