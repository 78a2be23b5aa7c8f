// Tests for core/formats/npy: round trips (v1 writer, v1-v3 readers), a file written by numpy itself,
// and hostile inputs (bad magic, versions, dtypes, byte order, Fortran order, lying shapes, truncation).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "support/test_paths.h"
#include "common/error.h"
#include "formats/npy.h"

namespace fs = std::filesystem;
using namespace tsm;

namespace {

std::span<const std::byte> as_bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

// An .npy image with a given version and header text (padded and terminated by '\n') and `data_bytes` zero bytes.
std::string craft(int major, const std::string& dict, size_t data_bytes) {
  std::string h = dict;
  size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out += static_cast<char>((h.size() >> (8 * i)) & 0xff);
  return out + h + std::string(data_bytes, '\0');
}

void expect_rejected(const std::string& bytes, const std::string& needle) {
  try {
    parse_npy(as_bytes(bytes), nullptr);
    ADD_FAILURE() << "accepted, expected an error containing '" << needle << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

MatrixRM random_matrix(int r, int c, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n;
  MatrixRM m(r, c);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  return m;
}

}  // namespace

TEST(Npy, RoundTripF32KeepsEveryBitAndAlignsData) {
  MatrixRM m = random_matrix(7, 5, 1);
  std::string img = npy_bytes(Tensor::from_matrix("m", m));
  NpyHeader h = parse_npy_header(as_bytes(img));
  EXPECT_EQ(h.data_offset % 64, 0u);
  EXPECT_EQ(h.dtype, DType::F32);
  EXPECT_EQ(h.shape, (std::vector<int64_t>{7, 5}));
  Tensor t = parse_npy(as_bytes(img), nullptr);
  EXPECT_EQ(t.to_matrix(), m);
}

TEST(Npy, RoundTripF16F64AndShapesOf0To3Dims) {
  for (DType dt : {DType::F16, DType::F64, DType::F32}) {
    for (std::vector<int64_t> shape : {std::vector<int64_t>{}, {6}, {2, 3}, {2, 1, 3}, {0, 4}}) {
      size_t n = static_cast<size_t>(shape_numel(shape));
      std::vector<float> vals(n);
      for (size_t i = 0; i < n; ++i) vals[i] = 0.25f * static_cast<float>(i) - 1.0f;  // exact in f16
      std::vector<std::byte> raw(n * dtype_size(dt));
      if (n) from_f32(dt, vals.data(), raw.data(), n);
      Tensor src = Tensor::from_bytes("x", dt, shape, raw);
      std::string img = npy_bytes(src);
      Tensor back = parse_npy(as_bytes(img), nullptr);
      EXPECT_EQ(back.dtype, dt);
      EXPECT_EQ(back.shape, shape);
      ASSERT_EQ(back.bytes.size(), raw.size());
      EXPECT_TRUE(std::equal(raw.begin(), raw.end(), back.bytes.begin()));
    }
  }
}

TEST(Npy, Bf16IsWrittenAsF32) {
  std::vector<uint16_t> b{float_to_bf16(1.5f), float_to_bf16(-2.0f)};
  std::vector<std::byte> raw(4);
  std::memcpy(raw.data(), b.data(), 4);
  Tensor t = Tensor::from_bytes("b", DType::BF16, {2}, raw);
  std::string img = npy_bytes(t);  // the parsed tensor borrows these bytes
  Tensor back = parse_npy(as_bytes(img), nullptr);
  EXPECT_EQ(back.dtype, DType::F32);
  MatrixRM m = back.to_matrix();
  EXPECT_EQ(m(0, 0), 1.5f);
  EXPECT_EQ(m(0, 1), -2.0f);
}

TEST(Npy, ReadsAFileWrittenByNumpy) {
  // reference_logits.npy was written by numpy.save (float32 [24, 1000]).
  Tensor t = read_npy(std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny/reference_logits.npy");
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{24, 1000}));
  MatrixRM m = t.to_matrix();
  EXPECT_TRUE(m.allFinite());
  EXPECT_GT(m.cwiseAbs().maxCoeff(), 0.1f);
}

TEST(Npy, ReadsVersions2And3AndPython2Longs) {
  for (int v : {1, 2, 3}) {
    std::string img = craft(v, "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3), }", 48);
    Tensor t = parse_npy(as_bytes(img), nullptr);
    EXPECT_EQ(t.dtype, DType::F64);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  }
  // Key order is free, double quotes and no trailing comma are valid Python too.
  Tensor t = parse_npy(as_bytes(craft(1, "{\"shape\": (4,), \"fortran_order\": False, \"descr\": \"<f2\"}", 8)), nullptr);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{4}));
}

TEST(Npy, WriteAndReadFile) {
  auto path = (fs::temp_directory_path() / ("tsm_npy_" + std::to_string(::getpid()) + ".npy")).string();
  MatrixRM m = random_matrix(33, 17, 2);
  write_npy(path, Tensor::from_matrix("m", m));
  Tensor t = read_npy(path);
  EXPECT_EQ(t.to_matrix(), m);
  fs::remove(path);
  EXPECT_THROW(read_npy(path), Error);
}

TEST(Npy, RejectsBadMagicAndVersions) {
  std::string good = craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
  std::string bad = good;
  bad[1] = 'X';
  expect_rejected(bad, "magic");
  expect_rejected("", "magic");
  bad = good;
  bad[6] = 4;
  expect_rejected(bad, "version 4.0");
  bad = good;
  bad[7] = 1;
  expect_rejected(bad, "version 1.1");
}

TEST(Npy, RejectsUnsupportedDtypesNamingThem) {
  expect_rejected(craft(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8), "'>f4': big-endian");
  expect_rejected(craft(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8), "'<i4': integer");
  expect_rejected(craft(1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16), "'|O': object");
  expect_rejected(craft(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16), "'<c8': complex");
  expect_rejected(craft(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", 2), "'|b1'");
  expect_rejected(craft(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8), "structured");
}

TEST(Npy, RejectsFortranOrderAndMalformedHeaders) {
  expect_rejected(craft(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "Fortran order");
  expect_rejected(craft(1, "{'descr': '<f4', 'shape': (2,), }", 8), "misses key 'fortran_order'");
  expect_rejected(craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8), "unexpected key 'x'");
  expect_rejected(craft(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8), "duplicate key");
  expect_rejected(craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 8), "shape tuple");
  expect_rejected(craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8), "non-negative integer");
  expect_rejected(craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", 8), "after the dict");
  expect_rejected(craft(1, "['descr']", 8), "'{'");
  expect_rejected(craft(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", 8), "");
}

TEST(Npy, RejectsLyingShapesAndTruncation) {
  std::string good = craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48);
  EXPECT_NO_THROW(parse_npy(as_bytes(good), nullptr));
  expect_rejected(good.substr(0, good.size() - 1), "file truncated");
  expect_rejected(good + "x", "trailing bytes");
  expect_rejected(good.substr(0, 9), "truncated in the header length");
  expect_rejected(good.substr(0, 40), "truncated: header declares");
  // A header length that points far past the end of the file.
  std::string lie = good;
  lie[8] = '\xff';
  lie[9] = '\x7f';
  expect_rejected(lie, "truncated");
  // Huge declared shapes: overflow and "needs more than present" are both caught before any allocation.
  expect_rejected(craft(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 8), "too large");
  expect_rejected(craft(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }", 8), "needs 4000000000000");
  // A v2 header length above the limit.
  std::string v2 = craft(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
  v2[11] = '\x10';
  expect_rejected(v2, "exceeds the limit");
}

TEST(Npy, ErrorsCarryTheByteOffset) {
  std::string dict = "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }";
  try {
    parse_npy(as_bytes(craft(1, dict, 8)), nullptr);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(e.offset(), static_cast<int64_t>(10 + dict.find("Maybe")));  // 10 bytes of magic, version, length
    EXPECT_NE(std::string(e.what()).find("True or False"), std::string::npos);
  }
}

TEST(Npy, RandomCorruptionOnlyEverThrowsFormatError) {
  std::string good = npy_bytes(Tensor::from_matrix("m", random_matrix(4, 3, 3)));
  std::mt19937 g(11);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good.substr(0, trial % 5 == 0 ? g() % good.size() : good.size());
    for (int k = 0; k < 2 && !bad.empty(); ++k) bad[g() % std::min<size_t>(bad.size(), 128)] = static_cast<char>(g());
    try {
      Tensor t = parse_npy(as_bytes(bad), nullptr);
      EXPECT_EQ(static_cast<size_t>(t.numel()) * dtype_size(t.dtype), t.bytes.size());  // whatever parses is consistent
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
}
