// Tests for core/formats/artifact_io: round trips through bytes and files, the safetensors export
// read back by SafetensorsFile, and corrupted, truncated, lying and huge inputs rejected cleanly;
// the content hash (its byte layout, a flipped byte anywhere detected, artifacts written before it
// still read as unverified, readers that predate it still parse hashed files) and the
// verified-artifact cache (an unchanged file is not hashed again, a changed one is).
#include <gtest/gtest.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "formats/array_pack.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/safetensors.h"
#include "formats/verified_artifact_cache.h"

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

/// How a writer before content hashes wrote `a`: the bare message (it always had `total`).
std::string unhashed_image(const v1::Artifact& a) { return a.SerializeAsString(); }

/// Offset of `needle` in `hay` (it must occur exactly once).
size_t offset_of(const std::string& hay, const std::string& needle) {
  size_t at = hay.find(needle);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(hay.find(needle, at + 1), std::string::npos) << "not unique";
  return at;
}

std::string flipped(std::string img, size_t at, char mask = 0x01) {
  img[at] = static_cast<char>(img[at] ^ mask);
  return img;
}

void flip_in_place(const std::string& path, size_t at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char ch = 0;
  f.get(ch);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(static_cast<char>(ch ^ 0x01));
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
  for (const std::string& img : {serialize_artifact(sample_artifact()), unhashed_image(sample_artifact())}) {
    for (size_t n = 0; n < img.size(); ++n) {
      EXPECT_THROW(parse_artifact(std::string_view(img).substr(0, n)), FormatError) << "accepted a cut at byte " << n << " of " << img.size();
      EXPECT_THROW(parse_artifact(std::string_view(img).substr(0, n), ContentCheck::kSkip), FormatError) << "cut at " << n;
    }
  }
}

TEST(ArtifactIo, FileLayoutIsMarkerMessageTrailer) {
  const std::string img = serialize_artifact(sample_artifact());
  const size_t n = img.size();
  ASSERT_GT(n, 2 + kArtifactHashTrailerBytes);
  EXPECT_EQ(img.substr(0, 2), std::string("\x68\x01", 2));     // field 13 = 1
  EXPECT_EQ(img.substr(2, 2), std::string("\x08\x01", 2));     // field 1 format_version = 1: the message follows
  EXPECT_EQ(img.substr(n - 34, 2), std::string("\x72\x20", 2)); // field 14, 32 bytes
  // The digest is SHA-256 of everything before the trailer, recomputed here from the bytes alone.
  std::string hex;
  for (unsigned char c : img.substr(n - 32)) {
    static const char* d = "0123456789abcdef";
    hex += d[c >> 4];
    hex += d[c & 15];
  }
  EXPECT_EQ(hex, sha256_hex(std::string_view(img).substr(0, n - 34)));
  ArtifactIntegrity in;
  v1::Artifact back = parse_artifact(img, ContentCheck::kVerify, &in);
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kVerified);
  EXPECT_EQ(in.content_sha256, hex);
  EXPECT_EQ(back.content_hash_version(), 0u);  // fields 13/14 describe the file, not the artifact
  EXPECT_EQ(back.content_sha256(), "");
  // The message alone (as the writer serialized it) is the file minus marker and trailer.
  EXPECT_EQ(img.substr(2, n - 36), sample_artifact().SerializeAsString());
}

// A byte flipped anywhere is refused: every position of the file, every bit of a data byte and of
// a metadata byte; inside the hashed region the message names the content hash.
TEST(ArtifactIo, AFlippedByteAnywhereIsDetected) {
  google::protobuf::LogSilencer quiet;
  const std::string img = serialize_artifact(sample_artifact());
  const size_t n = img.size();
  for (size_t at = 0; at < n; ++at) {
    try {
      parse_artifact(flipped(img, at));
      ADD_FAILURE() << "accepted a flip at byte " << at << " of " << n;
    } catch (const FormatError& e) {
      if (at >= 2 && at < n - 34) {
        EXPECT_NE(std::string(e.what()).find("content hash mismatch"), std::string::npos) << "byte " << at << ": " << e.what();
      }
    }
  }
  const v1::Artifact a = sample_artifact();
  const size_t data = offset_of(img, a.tensors(0).arrays(0).data());  // a core's bytes
  const size_t meta = offset_of(img, a.params_json() + "\x2a");        // the job's params_json (field 5 follows)
  for (size_t at : {data, data + 41, meta, meta + 7})
    for (int bit = 0; bit < 8; ++bit) expect_rejected(flipped(img, at, static_cast<char>(1 << bit)), "content hash mismatch");
  // Two data bytes flipped (the case that used to inspect and decompress with different weights).
  expect_rejected(flipped(flipped(img, data + 3), data + 60), "content hash mismatch");
  // kSkip does not hash: the same data flip parses (with the hash not checked), which is why only a
  // caller that verified the very file before may skip.
  ArtifactIntegrity in;
  EXPECT_NO_THROW(parse_artifact(flipped(img, data + 3), ContentCheck::kSkip, &in));
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kSkipped);
  EXPECT_THROW(check_artifact_content(flipped(img, data + 3)), FormatError);
}

TEST(ArtifactIo, ArtifactsWrittenBeforeContentHashesReadAsUnverified) {
  const v1::Artifact a = sample_artifact();
  const std::string old = unhashed_image(a);
  ASSERT_EQ(old[0], '\x08');
  ArtifactIntegrity in;
  v1::Artifact back = parse_artifact(old, ContentCheck::kVerify, &in);
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kUnverified);
  EXPECT_EQ(in.content_sha256, "");
  EXPECT_TRUE(MessageDifferencer::Equals(a, back));
  EXPECT_EQ(check_artifact_content(old).state, ArtifactIntegrity::State::kUnverified);
  const std::string path = tmp_path("old.tsm");
  write_file_atomic(path, old);
  EXPECT_TRUE(MessageDifferencer::Equals(a, read_artifact(path, ContentCheck::kVerify, &in)));
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kUnverified);
  fs::remove(path);
  // A hashed file whose marker byte is damaged must not pass as an old one.
  const std::string img = serialize_artifact(a);
  expect_rejected(std::string("\x08") + img.substr(1), "content hash mismatch");
}

TEST(ArtifactIo, ReadersThatPredateTheHashStillParseHashedFiles) {
  // A pre-hash reader parses the whole file as one message and requires `total`: fields 13 and 14
  // are unknown fields to it, so it reads the same artifact.
  const v1::Artifact a = sample_artifact();
  v1::Artifact seen_by_old_reader;
  ASSERT_TRUE(seen_by_old_reader.ParseFromString(serialize_artifact(a)));
  EXPECT_TRUE(seen_by_old_reader.has_total());
  seen_by_old_reader.clear_content_hash_version();
  seen_by_old_reader.clear_content_sha256();
  EXPECT_TRUE(MessageDifferencer::Equals(a, seen_by_old_reader));
}

TEST(ArtifactIo, WriterOwnsTheIntegrityFieldsAndIsDeterministic) {
  v1::Artifact a = sample_artifact();
  EXPECT_EQ(serialize_artifact(a), serialize_artifact(sample_artifact()));
  a.set_content_hash_version(1);
  EXPECT_THROW(serialize_artifact(a), Error);
  a.clear_content_hash_version();
  a.set_content_sha256(std::string(32, 'x'));
  EXPECT_THROW(serialize_artifact(a), Error);
  // An unknown content hash version is refused, not read as something else.
  std::string img = serialize_artifact(sample_artifact());
  img[1] = '\x02';
  expect_rejected(img, "content hash version 2");
}

TEST(ArtifactIo, CheckArtifactFileNamesThePath) {
  const std::string path = tmp_path("check.tsm");
  write_artifact(path, sample_artifact());
  EXPECT_EQ(check_artifact_file(path).state, ArtifactIntegrity::State::kVerified);
  flip_in_place(path, 40);
  try {
    check_artifact_file(path);
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("content hash mismatch"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

// read_artifact_cached: hashes a file once per identity; any change to the file hashes it again.
TEST(VerifiedArtifactCache, AnUnchangedFileIsNotHashedAgainAChangedOneIs) {
  const std::string path = tmp_path("cached.tsm"), cache_file = tmp_path("cache/verified");
  fs::remove_all(tmp_path("cache"));
  write_artifact(path, sample_artifact());
  ArtifactIntegrity in;
  {
    VerifiedArtifactCache cache(cache_file, /*racy_margin_ns=*/0);
    read_artifact_cached(path, cache, &in);
    EXPECT_EQ(in.state, ArtifactIntegrity::State::kVerified);
    EXPECT_FALSE(in.cached);  // first sight: hashed
    read_artifact_cached(path, cache, &in);
    EXPECT_TRUE(in.cached);   // same identity: not hashed
    EXPECT_EQ(in.state, ArtifactIntegrity::State::kVerified);
    EXPECT_EQ(cache.size(), 1u);
  }
  {
    VerifiedArtifactCache reloaded(cache_file, 0);  // persisted: a later process skips the hash too
    EXPECT_EQ(reloaded.size(), 1u);
    read_artifact_cached(path, reloaded, &in);
    EXPECT_TRUE(in.cached);
    // Changed in place (same inode, same size): the ctime moves, so the cache misses and the flip is found.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // past one timestamp tick
    flip_in_place(path, 60);
    EXPECT_THROW(read_artifact_cached(path, reloaded, &in), FormatError);
    // Rewritten with identical bytes: a new identity, hashed again, then cached again.
    write_artifact(path, sample_artifact());
    read_artifact_cached(path, reloaded, &in);
    EXPECT_FALSE(in.cached);
    read_artifact_cached(path, reloaded, &in);
    EXPECT_TRUE(in.cached);
  }
  // Damaged lines in the cache file are dropped, not trusted.
  write_file_atomic(cache_file, "garbage\n1 2 3\n1 2 3 4 5 nothex\n");
  EXPECT_EQ(VerifiedArtifactCache(cache_file, 0).size(), 0u);
  fs::remove(path);
  fs::remove_all(tmp_path("cache"));
}

TEST(VerifiedArtifactCache, RecentlyChangedFilesAndUnhashedArtifactsAreNotRecorded) {
  const std::string path = tmp_path("racy.tsm");
  write_artifact(path, sample_artifact());
  VerifiedArtifactCache cache("", VerifiedArtifactCache::kRacyMarginNs);  // memory only, default margin
  ArtifactIntegrity in;
  read_artifact_cached(path, cache, &in);  // written just now: a write in the same tick could follow unseen
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kVerified);
  EXPECT_EQ(cache.size(), 0u);
  read_artifact_cached(path, cache, &in);
  EXPECT_FALSE(in.cached);
  write_file_atomic(path, unhashed_image(sample_artifact()));  // nothing to vouch for
  VerifiedArtifactCache no_margin("", 0);
  read_artifact_cached(path, no_margin, &in);
  EXPECT_EQ(in.state, ArtifactIntegrity::State::kUnverified);
  EXPECT_EQ(no_margin.size(), 0u);
  fs::remove(path);
}

TEST(ArtifactIo, RandomCorruptionNeverCrashes) {
  google::protobuf::LogSilencer quiet;  // corrupted strings make protobuf log invalid UTF-8 at ERROR level
  const std::string images[2] = {serialize_artifact(sample_artifact()), unhashed_image(sample_artifact())};
  for (int hashed = 1; hashed >= 0; --hashed) {
    const std::string& img = images[1 - hashed];
    std::mt19937 g(7);
    int rejected = 0, changed = 0;
    for (int trial = 0; trial < 2000; ++trial) {
      std::string bad = img;
      for (int k = 0; k < 3; ++k) bad[g() % bad.size()] = static_cast<char>(g());
      changed += bad != img;
      try {
        v1::Artifact a = parse_artifact(bad);
        for (const auto& t : a.tensors())  // whatever parses must be self-consistent
          for (const auto& arr : t.arrays()) check_array(arr);
      } catch (const FormatError&) {
        ++rejected;
      }
    }
    if (hashed) EXPECT_EQ(rejected, changed);  // the content hash catches every change
    else EXPECT_GT(rejected, 100);  // without it, only flips in the framing are caught
  }
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

TEST(ArtifactIo, ArraysOfMoreThan32DimensionsAreRefused) {
  // Fuzzing found such an artifact valid here and unexportable (safetensors allows 32 dimensions).
  v1::Artifact a = sample_artifact();
  v1::Array* arr = a.mutable_tensors(0)->mutable_arrays(0);
  const std::string data = arr->data();
  arr->clear_shape();
  arr->add_shape(uint64_t(data.size() / dtype_size(from_proto(arr->dtype()))));  // (n), then 32 unit dimensions
  for (int i = 0; i < 32; ++i) arr->add_shape(1);
  expect_rejected(serialize_artifact(a), "at most 32");
  arr->mutable_shape()->RemoveLast();  // 32 dimensions: allowed
  EXPECT_NO_THROW(check_array(*arr));
}
