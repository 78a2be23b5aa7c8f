// Tests for core/pipeline/artifact_builder and metrics_json: header fields, `total` metrics against values
// recomputed from the decoded tensors, progress over several tensors, cancellation, JSON views, and
// deterministic artifacts (no clock in the bytes; the same bytes whatever the thread count, for
// every method of the method table).
#include <gtest/gtest.h>

#include <atomic>
#include <random>

#include "pipeline/artifact_builder.h"
#include "pipeline/metrics_json.h"
#include "common/error.h"
#include "common/sha256.h"
#include "methods/method_table.h"

using namespace tsm;

namespace {

MatrixRM low_rank_plus_noise(int rows, int cols, unsigned seed, float noise) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n;
  MatrixRM U(rows, 3), V(3, cols), E(rows, cols);
  for (int i = 0; i < U.size(); ++i) U.data()[i] = n(g);
  for (int i = 0; i < V.size(); ++i) V.data()[i] = n(g);
  for (int i = 0; i < E.size(); ++i) E.data()[i] = noise * n(g);
  return U * V + E;
}

}  // namespace

TEST(ArtifactBuilder, TotalsAreSumsAndCombinedErrorMatchesDecodedTensors) {
  std::vector<Tensor> ts{Tensor::from_matrix("a", low_rank_plus_noise(120, 48, 1, 0.05f)),
                         Tensor::from_matrix("b", 5.0f * low_rank_plus_noise(80, 48, 2, 0.5f))};
  std::vector<double> progress;
  CodecContext ctx;
  ctx.progress = [&](double p) { progress.push_back(p); };
  json params = {{"shape", {4, 4, 3}}, {"ranks", {2, 2}}};
  BuildTimings times;
  v1::Artifact a = build_artifact(ts, "abc123", "tt-token", params, ctx, {}, &times);

  EXPECT_EQ(a.format_version(), kArtifactFormatVersion);
  EXPECT_EQ(a.source_sha256(), "abc123");
  EXPECT_EQ(a.method(), "tt-token");
  EXPECT_EQ(json::parse(a.params_json()), params);
  EXPECT_EQ(a.generator(), std::string("tensorslm ") + TSM_VERSION);
  // No measurement of the run in the artifact: it comes back in `times`.
  EXPECT_EQ(a.created_unix(), 0u);
  EXPECT_EQ(a.total().seconds(), 0.0);
  ASSERT_EQ(times.tensor_seconds.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a.tensors(i).metrics().seconds(), 0.0);
    for (const auto& b : a.tensors(i).baselines()) EXPECT_EQ(b.metrics().seconds(), 0.0);
    EXPECT_GT(times.tensor_seconds[size_t(i)], 0.0);
  }
  EXPECT_DOUBLE_EQ(times.total_seconds(), times.tensor_seconds[0] + times.tensor_seconds[1]);
  ASSERT_EQ(a.tensors_size(), 2);
  EXPECT_EQ(a.tensors(0).name(), "a");
  EXPECT_EQ(a.tensors(1).name(), "b");

  uint64_t stored = a.tensors(0).metrics().stored_bytes() + a.tensors(1).metrics().stored_bytes();
  EXPECT_EQ(a.total().stored_bytes(), stored);
  EXPECT_EQ(a.total().dense_f32_bytes(), (120u + 80u) * 48u * 4u);
  EXPECT_DOUBLE_EQ(a.total().ratio_f32(), static_cast<double>(a.total().dense_f32_bytes()) / static_cast<double>(stored));
  // Combined relative error recomputed from the decoded matrices.
  double err2 = 0, norm2 = 0;
  for (int i = 0; i < 2; ++i) {
    MatrixRM W = ts[static_cast<size_t>(i)].to_matrix();
    MatrixRM D = decode_tensor(a.tensors(i));
    err2 += (W - D).cast<double>().squaredNorm();
    norm2 += W.cast<double>().squaredNorm();
  }
  EXPECT_NEAR(a.total().rel_error(), std::sqrt(err2 / norm2), 1e-5 * std::sqrt(err2 / norm2));
  EXPECT_GT(a.total().rel_error(), std::min(a.tensors(0).metrics().rel_error(), a.tensors(1).metrics().rel_error()));
  EXPECT_LT(a.total().rel_error(), std::max(a.tensors(0).metrics().rel_error(), a.tensors(1).metrics().rel_error()));
  EXPECT_EQ(a.total().cos_min(), std::min(a.tensors(0).metrics().cos_min(), a.tensors(1).metrics().cos_min()));

  ASSERT_FALSE(progress.empty());
  for (size_t i = 1; i < progress.size(); ++i) EXPECT_GE(progress[i], progress[i - 1] - 1e-12);
  EXPECT_GE(progress.front(), 0.0);
  EXPECT_DOUBLE_EQ(progress.back(), 1.0);
  // The artifact survives its own serializer and validator.
  EXPECT_NO_THROW(parse_artifact(serialize_artifact(a)));
}

TEST(ArtifactBuilder, CancelEmptyAndBadInputs) {
  std::vector<Tensor> ts{Tensor::from_matrix("a", low_rank_plus_noise(60, 12, 3, 0.1f))};
  std::atomic<bool> cancel{true};
  CodecContext ctx;
  ctx.cancel = &cancel;
  EXPECT_THROW(build_artifact(ts, "", "tt-token", json::object(), ctx), Canceled);
  EXPECT_THROW(build_artifact({}, "", "tt-token", json::object(), CodecContext{}), Error);
  EXPECT_THROW(build_artifact(ts, "", "no-such-method", json::object(), CodecContext{}), Error);
  EXPECT_THROW(build_artifact(ts, "", "tt-token", json{{"shape", {5, 5}}}, CodecContext{}), ParamError);
  std::vector<Tensor> ints{Tensor::from_bytes("ids", DType::I32, {2, 2}, std::vector<std::byte>(16))};
  EXPECT_THROW(build_artifact(ints, "", "tt-token", json::object(), CodecContext{}), Error);
}

TEST(MetricsJson, ViewsCarryEveryField) {
  std::vector<Tensor> ts{Tensor::from_matrix("a", low_rank_plus_noise(64, 16, 4, 0.1f))};
  v1::Artifact a = build_artifact(ts, "s", "tt-token", json{{"ranks", {2, 2}}, {"shape", {2, 2, 4}}}, CodecContext{});
  json m = metrics_to_json(a.total());
  for (const char* k : {"stored_bytes", "dense_f32_bytes", "source_bytes", "ratio_f32", "ratio_source", "rel_error", "cos_mean",
                        "cos_min", "cos_p01", "max_abs_error", "seconds"})
    EXPECT_TRUE(m.contains(k)) << k;
  EXPECT_EQ(m["stored_bytes"].get<uint64_t>(), a.total().stored_bytes());
  json t = tensor_report_json(a.tensors(0));
  EXPECT_EQ(t["name"], "a");
  EXPECT_EQ(t["shape"], json({64, 16}));
  EXPECT_EQ(t["source_dtype"], "f32");
  EXPECT_EQ(t["params"]["ranks"], json({2, 2}));
  EXPECT_EQ(t["arrays"].size(), static_cast<size_t>(a.tensors(0).arrays_size()));
  EXPECT_EQ(t["baselines"].size(), static_cast<size_t>(a.tensors(0).baselines_size()));
  json r = artifact_report_json(a);
  EXPECT_EQ(r["method"], "tt-token");
  EXPECT_EQ(r["passthrough"]["count"], 0);
  EXPECT_FALSE(r.contains("quality"));
  EXPECT_EQ(r["total"], m);
}

TEST(ArtifactBuilder, TakeRunMeasurementsClearsClockAndWallTime) {
  v1::Artifact a;
  a.set_created_unix(1700000000);
  a.mutable_total()->set_seconds(3.5);
  auto* t = a.add_tensors();
  t->mutable_metrics()->set_seconds(1.25);
  t->mutable_metrics()->set_rel_error(0.5);
  t->add_baselines()->mutable_metrics()->set_seconds(0.75);
  BuildTimings times;
  take_run_measurements(a, &times);
  EXPECT_EQ(a.created_unix(), 0u);
  EXPECT_EQ(a.total().seconds(), 0.0);
  EXPECT_EQ(a.tensors(0).metrics().seconds(), 0.0);
  EXPECT_EQ(a.tensors(0).baselines(0).metrics().seconds(), 0.0);
  EXPECT_EQ(a.tensors(0).metrics().rel_error(), 0.5);  // only measurements of the run go
  EXPECT_EQ(times.tensor_seconds, std::vector<double>{1.25});
  take_run_measurements(a, nullptr);  // no timings wanted: still cleared, no crash
}

// The same input and parameters give the same bytes: twice in a row, and with 1 or 2 threads, for
// every method with its default parameters (baselines included, since they are stored too).
TEST(ArtifactBuilder, EveryMethodGivesIdenticalBytesWhateverTheThreadCount) {
  std::vector<Tensor> ts{Tensor::from_matrix("w", low_rank_plus_noise(192, 64, 5, 0.2f))};
  for (const Codec* c : all_codecs()) {
    const std::string m(c->name());
    SCOPED_TRACE(m);
    std::vector<std::string> digests;
    for (int threads : {1, 2, 2}) {
      CodecContext ctx;
      ctx.threads = threads;
      digests.push_back(sha256_hex(serialize_artifact(build_artifact(ts, "src", m, json::object(), ctx))));
    }
    EXPECT_EQ(digests[1], digests[2]) << "two runs with 2 threads differ";
    EXPECT_EQ(digests[0], digests[1]) << "1 thread and 2 threads differ";
  }
}
