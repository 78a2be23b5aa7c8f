// Tests for core/formats/artifact_io: round trips through bytes and files, the safetensors export
// read back by SafetensorsFile, and corrupted, truncated, lying and huge inputs rejected cleanly.
#include <gtest/gtest.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/array_pack.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/safetensors.h"

namespace fs = std::filesystem;
using namespace tsm;
using google::protobuf::util::MessageDifferencer;

namespace {

// An artifact as a codec would write it: cores in f16 and f32, int32 ranks, a passthrough tensor.
v1::Artifact sample_artifact() {
  v1::Artifact a;
  a.set_format_version(kArtifactFormatVersion);
  a.set_source_sha256(sha256_hex("source"));
  a.set_method("tt-token");
  a.set_params_json(R"({"ranks":[2,2],"shape":[2,2,3]})");
  a.set_generator("tensorslm test");
  a.set_created_unix(1700000000);
  auto* t = a.add_tensors();
  t->set_name("transformer.wte.weight");
  t->set_method("tt-token");
  t->add_shape(5);
  t->add_shape(12);
  t->set_source_dtype(v1::F32);
  t->set_params_json(R"({"ranks":[2,2],"shape":[2,2,3]})");
  std::vector<float> c1(5 * 1 * 2 * 2);
  for (size_t i = 0; i < c1.size(); ++i) c1[i] = 0.5f * static_cast<float>(i);
  std::vector<uint16_t> c2(5 * 2 * 2 * 2);
  for (size_t i = 0; i < c2.size(); ++i) c2[i] = float_to_half(static_cast<float>(i) - 3.0f);
  std::vector<int32_t> ranks{1, 2, 2, 1};
  *t->add_arrays() = make_array<float>("core0", {5, 1, 2, 2}, c1);
  std::vector<int64_t> s2{5, 2, 2, 2};
  *t->add_arrays() = make_array("core1", DType::F16, s2, c2.data(), c2.size() * 2);
  *t->add_arrays() = make_array<int32_t>("ranks", {4}, ranks);
  t->mutable_metrics()->set_stored_bytes(240);
  t->mutable_metrics()->set_rel_error(0.125);
  auto* b = t->add_baselines();
  b->set_method("fp16");
  b->mutable_metrics()->set_stored_bytes(120);
  std::vector<float> ln{1, 2, 3};
  *a.add_passthrough() = make_array<float>("transformer.ln_f.weight", {3}, ln);
  a.set_config_json(R"({"model_type":"gpt2"})");
  a.mutable_total()->set_stored_bytes(252);
  return a;
}

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("tsm_art_" + std::to_string(::getpid()) + "_" + name)).string();
}

void expect_rejected(const std::string& bytes, const std::string& needle) {
  try {
    parse_artifact(bytes);
    ADD_FAILURE() << "accepted, expected an error containing '" << needle << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

}  // namespace

TEST(ArtifactIo, RoundTripThroughBytesAndFile) {
  v1::Artifact a = sample_artifact();
  v1::Artifact back = parse_artifact(serialize_artifact(a));
  EXPECT_TRUE(MessageDifferencer::Equals(a, back));
  std::string path = tmp_path("rt.tsm");
  std::string sha = write_artifact(path, a);
  EXPECT_EQ(sha, sha256_file(path));
  EXPECT_TRUE(MessageDifferencer::Equals(a, read_artifact(path)));
  fs::remove(path);
}

TEST(ArtifactIo, WriterAddsTheTrailerWhenTotalIsUnset) {
  v1::Artifact a = sample_artifact();
  a.clear_total();
  v1::Artifact back = parse_artifact(serialize_artifact(a));
  EXPECT_TRUE(back.has_total());
  EXPECT_EQ(back.tensors_size(), 1);
}

TEST(ArtifactIo, EveryTruncationIsRejected) {
  std::string img = serialize_artifact(sample_artifact());
  for (size_t n = 0; n < img.size(); ++n) {
    EXPECT_THROW(parse_artifact(std::string_view(img).substr(0, n)), FormatError) << "accepted a cut at byte " << n << " of " << img.size();
  }
}

TEST(ArtifactIo, RandomCorruptionNeverCrashes) {
  std::string img = serialize_artifact(sample_artifact());
  std::mt19937 g(7);
  int rejected = 0;
  google::protobuf::LogSilencer quiet;  // corrupted strings make protobuf log invalid UTF-8 at ERROR level
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bad = img;
    for (int k = 0; k < 3; ++k) bad[g() % bad.size()] = static_cast<char>(g());
    try {
      v1::Artifact a = parse_artifact(bad);
      for (const auto& t : a.tensors())  // whatever parses must be self-consistent
        for (const auto& arr : t.arrays()) check_array(arr);
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);  // most flips in the framing are caught; flips inside data bytes are sha256's job
}

TEST(ArtifactIo, RejectsVersionsAndNonArtifacts) {
  v1::Artifact a = sample_artifact();
  a.set_format_version(kArtifactFormatVersion + 1);
  expect_rejected(a.SerializeAsString(), "newer than this build reads");
  a.set_format_version(0);
  expect_rejected(a.SerializeAsString(), "not a tensorslm artifact");
  expect_rejected("", "empty");
  expect_rejected(std::string("\x93NUMPY\x01\x00v\x00{'descr': '<f4'}", 24), "");
  expect_rejected(R"({"format_version": 1})", "");
}

TEST(ArtifactIo, RejectsLyingArrays) {
  {
    v1::Artifact a = sample_artifact();
    a.mutable_tensors(0)->mutable_arrays(0)->set_data(std::string(7, 'x'));
    expect_rejected(a.SerializeAsString(), "array 'core0': shape [5,1,2,2] x f32 needs 80 bytes, found 7");
  }
  {
    v1::Artifact a = sample_artifact();
    a.mutable_tensors(0)->mutable_arrays(1)->set_shape(0, uint64_t{1} << 39);
    a.mutable_tensors(0)->mutable_arrays(1)->set_shape(1, uint64_t{1} << 39);
    expect_rejected(a.SerializeAsString(), "too large");
  }
  {
    v1::Artifact a = sample_artifact();
    a.mutable_tensors(0)->mutable_arrays(2)->set_dtype(static_cast<v1::DType>(99));
    expect_rejected(a.SerializeAsString(), "unknown dtype");
  }
  {
    v1::Artifact a = sample_artifact();
    a.mutable_passthrough(0)->add_shape(2);
    expect_rejected(a.SerializeAsString(), "passthrough");
  }
  {
    v1::Artifact a = sample_artifact();
    *a.add_tensors() = a.tensors(0);
    expect_rejected(a.SerializeAsString(), "twice");
  }
  {
    v1::Artifact a = sample_artifact();
    a.mutable_tensors(0)->add_shape(3);
    expect_rejected(a.SerializeAsString(), "expected 2 (rows, cols)");
  }
  {
    v1::Artifact a = sample_artifact();
    a.mutable_tensors(0)->set_params_json("[not json");
    expect_rejected(a.SerializeAsString(), "params_json is not a JSON object");
  }
}

TEST(ArtifactIo, HugeFilesAreRefusedBeforeReading) {
  std::string path = tmp_path("huge.tsm");
  { std::ofstream(path).put('\0'); }
  fs::resize_file(path, kMaxArtifactBytes + 1);  // sparse: takes no disk space
  try {
    read_artifact(path);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("more than the limit"), std::string::npos) << e.what();
  }
  fs::remove(path);
  EXPECT_THROW(read_artifact(path), Error);
}

TEST(ArtifactIo, SafetensorsExportKeepsArraysAndMetadata) {
  v1::Artifact a = sample_artifact();
  std::string img = artifact_to_safetensors(a);
  SafetensorsFile f = SafetensorsFile::parse({reinterpret_cast<const std::byte*>(img.data()), img.size()}, nullptr);
  ASSERT_EQ(f.tensors().size(), 4u);
  for (const auto& arr : a.tensors(0).arrays()) {
    const Tensor& t = f.at("transformer.wte.weight/" + arr.name());
    EXPECT_EQ(t.dtype, from_proto(arr.dtype()));
    EXPECT_EQ(t.shape, array_shape(arr));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size()), arr.data());
  }
  EXPECT_EQ(f.at("transformer.ln_f.weight").to_matrix()(0, 2), 3.0f);
  const auto& meta = f.metadata();
  EXPECT_EQ(meta.at("format"), "tensorslm");
  EXPECT_EQ(meta.at("tensorslm.method"), "tt-token");
  EXPECT_EQ(meta.at("tensorslm.config_json"), a.config_json());
  auto params = nlohmann::json::parse(meta.at("tensorslm.params"));
  EXPECT_EQ(params["ranks"], nlohmann::json({2, 2}));
  auto entry = nlohmann::json::parse(meta.at("tensorslm.tensor.transformer.wte.weight"));
  EXPECT_EQ(entry["method"], "tt-token");
  EXPECT_EQ(entry["shape"], nlohmann::json({5, 12}));
  EXPECT_EQ(entry["params"]["shape"], nlohmann::json({2, 2, 3}));
  EXPECT_EQ(entry["arrays"].size(), 3u);
  EXPECT_EQ(entry["arrays"][1]["dtype"], "f16");
  EXPECT_EQ(nlohmann::json::parse(meta.at("tensorslm.tensors")), nlohmann::json({"transformer.wte.weight"}));
  // Data is contiguous from offset 0 to the end, as the reference reader demands.
  size_t data = 0;
  for (const auto& t : f.tensors()) data += t.bytes.size();
  EXPECT_EQ(f.tensors().back().bytes.data() + f.tensors().back().bytes.size(), reinterpret_cast<const std::byte*>(img.data()) + img.size());
  EXPECT_EQ(f.tensors().front().bytes.data(), reinterpret_cast<const std::byte*>(img.data()) + img.size() - data);
}
