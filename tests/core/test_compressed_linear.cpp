// Operators that run on the stored form (fp16_linear.h, int8_linear.h, block_linear.h, vec_dot.h):
// each against its dequantized f32 reference (codec decode() + dense x W^T, in double) within the
// bound its header states, over shapes with in_features not a multiple of the block, n = 1 and n > 1,
// both orientations; the compiled kernel path against the portable one; corrupted tensors; and whole
// models (gpt2-man, llama-man) whose greedy ids are the same with the operators as with the same
// artifact decoded densely.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "support/test_paths.h"
#include "common/error.h"
#include "formats/array_pack.h"
#include "formats/hf_model_dir.h"
#include "methods/block_quant/block_formats.h"
#include "methods/block_quant/half_bytes.h"
#include "methods/block_quant/vec_dot.h"
#include "methods/method_table.h"
#include "model/generate.h"
#include "pipeline/model_artifact.h"
#include "pipeline/model_loader.h"

using namespace tsm;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // f32 unit roundoff

const std::vector<std::string> kMethods = {"fp16", "int8", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                           "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"};

/// Block length when the operator quantizes activations to q8 blocks (32-value types), else 0.
int q8_block(const std::string& method) {
  const auto t = parse_block_type(method);
  return t && vec_dot::has_q8_kernel(*t) ? vec_dot::kQ8Values : 0;
}

MatrixRM random_matrix(int64_t r, int64_t c, uint64_t seed) {
  std::mt19937 g{uint32_t(seed)};
  std::normal_distribution<float> n(0.f, 1.f);
  MatrixRM m(r, c);
  for (int64_t i = 0; i < r; ++i) {
    const float scale = 0.2f + 0.1f * float(i % 7);  // rows of different magnitude
    for (int64_t j = 0; j < c; ++j) m(i, j) = scale * n(g);
  }
  return m;
}

/// The method's tensor for a logical (out, in) weight, stored (in, out) when io, and the logical
/// decoded reference (out, in).
struct Encoded {
  v1::CompressedTensor t;
  MatrixRM ref;  ///< (out, in), decode() with the orientation undone
};

Encoded encode(const std::string& method, int64_t out, int64_t in, bool io, uint64_t seed) {
  const Codec& c = find_codec(method);
  const MatrixRM W = io ? MatrixRM(random_matrix(out, in, seed).transpose()) : random_matrix(out, in, seed);
  json p = json::object();
  if (c.takes_orientation()) p["orientation"] = io ? "in_out" : "out_in";
  const json r = c.resolve(p, W.rows(), W.cols());
  Encoded e{c.encode(W, r, CodecContext{}), MatrixRM()};
  const MatrixRM D = c.decode(e.t);
  e.ref = io ? MatrixRM(D.transpose()) : D;
  return e;
}

uint64_t array_bytes(const v1::CompressedTensor& t) {
  uint64_t n = 0;
  for (const auto& a : t.arrays()) n += a.data().size();
  return n;
}

struct Shape {
  int64_t out, in;
};

}  // namespace

// y = op(x) against x W_ref^T (double), elementwise within the stated bound:
//   fp16, int8, k-quants (f32 weights or codes widened exactly): 4 in u sum_j |x_j w_j|;
//   32-value block types (activations quantized to q8 blocks of 32, vec_dot.h):
//     sum_b (amax_b / 254)(1 + 1e-4) ||w_b||_1 + 4 in u sum_j |x_j w_j|.
class CompressedLinearRef : public ::testing::TestWithParam<std::string> {};

TEST_P(CompressedLinearRef, MatchesDecodedReferenceWithinBound) {
  const std::string method = GetParam();
  const int B = q8_block(method);
  const std::vector<Shape> shapes = {{7, 32}, {33, 100}, {64, 256}, {65, 300}, {96, 128}, {130, 544}};
  double worst_ratio = 0;  // max |err| / bound over everything: reported, must stay <= 1
  double worst_rel = 0;    // max |err| / (||x|| ||w||)
  uint64_t seed = 1;
  for (const Shape& s : shapes)
    for (bool io : {false, true}) {
      const Encoded e = encode(method, s.out, s.in, io, seed++);
      const auto op = make_compressed_linear(e.t, io);
      ASSERT_NE(op, nullptr) << method;
      ASSERT_EQ(op->in_features(), s.in);
      ASSERT_EQ(op->out_features(), s.out);
      EXPECT_EQ(op->resident_bytes(), array_bytes(e.t)) << method << ": resident bytes are the stored arrays";
      for (int64_t n : {1, 3, 8}) {
        const MatrixRM X = random_matrix(n, s.in, seed++);
        MatrixRM Y(n, s.out);
        op->forward(X.data(), n, Y.data());
        for (int64_t i = 0; i < n; ++i)
          for (int64_t o = 0; o < s.out; ++o) {
            double ref = 0, abs_sum = 0, q8 = 0, xn = 0, wn = 0;
            for (int64_t j = 0; j < s.in; ++j) {
              ref += double(X(i, j)) * double(e.ref(o, j));
              abs_sum += std::fabs(double(X(i, j)) * double(e.ref(o, j)));
              xn += double(X(i, j)) * X(i, j);
              wn += double(e.ref(o, j)) * e.ref(o, j);
            }
            if (B)
              for (int64_t b0 = 0; b0 < s.in; b0 += B) {
                double amax = 0, w1 = 0;
                for (int64_t j = b0; j < std::min(s.in, b0 + B); ++j) {
                  amax = std::max(amax, std::fabs(double(X(i, j))));
                  w1 += std::fabs(double(e.ref(o, j)));
                }
                q8 += amax / 254.0 * (1 + 1e-4) * w1;
              }
            const double bound = q8 + 4.0 * double(s.in) * kU * abs_sum + 1e-30;
            const double err = std::fabs(double(Y(i, o)) - ref);
            ASSERT_LE(err, bound) << method << " out " << s.out << " in " << s.in << (io ? " in_out" : " out_in") << " n " << n
                                  << " row " << i << " output " << o << ": " << Y(i, o) << " vs " << ref;
            worst_ratio = std::max(worst_ratio, err / bound);
            if (xn > 0 && wn > 0) worst_rel = std::max(worst_rel, err / std::sqrt(xn * wn));
          }
      }
    }
  if (B) {
    EXPECT_LE(worst_rel, std::sqrt(32.0) / 254.0) << "the Cauchy-Schwarz form of the bound";
  }
  std::printf("%s (%s): max |err| / bound %.3f, max |err| / (||x|| ||w||) %.2e\n", method.c_str(),
              vec_dot::path_name(vec_dot::compiled_path()), worst_ratio, worst_rel);
}

INSTANTIATE_TEST_SUITE_P(Methods, CompressedLinearRef, ::testing::ValuesIn(kMethods),
                         [](const auto& info) { return info.param; });

// Each output is computed by one thread, so the result does not depend on the thread count.
TEST(CompressedLinear, SameOutputsOnOneAndTwoThreads) {
  for (const std::string m : {"fp16", "int8", "q8_0", "q4_1", "q5_0", "q4_k"}) {
    const Encoded e = encode(m, 512, 256, false, 77);
    const auto op = make_compressed_linear(e.t);
    const MatrixRM X = random_matrix(5, 256, 78);
    MatrixRM Y1(5, 512), Y2(5, 512);
    set_compute_threads(1);
    op->forward(X.data(), 5, Y1.data());
    set_compute_threads(2);
    op->forward(X.data(), 5, Y2.data());
    EXPECT_EQ(Y1, Y2) << m;
  }
}

// The compiled kernels (AVX2 on x86-64-v3, NEON on aarch64) against the portable ones: the same
// activation codes and scales, and dot products within f32 rounding, on random bytes that reach
// every code (q8_0's -128 too, which the codec never writes).
TEST(VecDot, CompiledPathMatchesPortable) {
  std::printf("vec_dot path: %s\n", vec_dot::path_name(vec_dot::compiled_path()));
  std::mt19937 g(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t nb = 24, n = nb * vec_dot::kQ8Values;
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(g) * (g() % 4 == 0 ? 10.f : 1.f);
  for (int j = 0; j < 32; ++j) x[size_t(5 * 32 + j)] = 0;  // an all-zero block
  std::vector<vec_dot::BlockQ8> a(nb), a_ref(nb);
  vec_dot::quantize_q8(x.data(), n, a.data());
  vec_dot::quantize_q8_scalar(x.data(), n, a_ref.data());
  for (int64_t b = 0; b < nb; ++b) {
    EXPECT_EQ(a[b].d, a_ref[b].d) << b;
    EXPECT_EQ(a[b].s, a_ref[b].s) << b;
    for (int j = 0; j < 32; ++j) ASSERT_EQ(a[b].qs[j], a_ref[b].qs[j]) << b << ":" << j;
    for (int j = 0; j < 32; ++j) EXPECT_LE(std::fabs(a[b].d * a[b].qs[j] - x[size_t(b * 32 + j)]), a[b].d / 2 * (1 + 1e-4) + 1e-30);
  }
  for (BlockType t : {BlockType::kQ8_0, BlockType::kQ4_0, BlockType::kQ4_1, BlockType::kQ5_0, BlockType::kQ5_1}) {
    const int bytes = block_format(t).bytes;
    std::vector<uint8_t> w(size_t(nb * bytes));
    for (auto& v : w) v = uint8_t(g());
    for (int64_t b = 0; b < nb; ++b) {  // finite f16 scales (and minimums) in [-2, 2]
      block_half::put_f16(w.data() + b * bytes, nd(g));
      if (block_format(t).has_min) block_half::put_f16(w.data() + b * bytes + 2, nd(g));
    }
    const float got = vec_dot::dot_q8(t, w.data(), a.data(), nb);
    const float ref = vec_dot::dot_q8_scalar(t, w.data(), a.data(), nb);
    // decoded weights . decoded activations, in double, to size the rounding
    std::vector<float> wd(static_cast<size_t>(n));
    dequantize_row(t, w.data(), n, wd.data());
    double exact = 0, abs_sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double xa = double(a[j / 32].d) * a[j / 32].qs[j % 32];
      exact += double(wd[size_t(j)]) * xa;
      abs_sum += std::fabs(double(wd[size_t(j)]) * xa);
    }
    const double tol = 4.0 * double(n) * kU * abs_sum;
    EXPECT_NEAR(got, ref, tol) << block_format(t).name;
    EXPECT_NEAR(got, exact, tol) << block_format(t).name;
    EXPECT_NEAR(ref, exact, tol) << block_format(t).name;
  }
  EXPECT_THROW(vec_dot::quantize_q8(x.data(), 33, a.data()), Error);
  EXPECT_THROW(vec_dot::dot_q8_scalar(BlockType::kQ4_K, nullptr, a.data(), 1), Error);
  EXPECT_THROW(vec_dot::dot_q8(BlockType::kQ6_K, nullptr, a.data(), 1), Error);
}

// Inconsistent tensors give tsm::FormatError at make_compressed_linear, never a crash.
TEST(CompressedLinear, CorruptTensorsAreRejected) {
  for (const std::string m : {"fp16", "int8", "q8_0", "q5_1", "q4_k"})
    for (bool io : {false, true}) {
      const v1::CompressedTensor good = encode(m, 40, 64, io, 9).t;
      ASSERT_NE(make_compressed_linear(good, io), nullptr);
      auto expect_bad = [&](const char* what, auto mutate) {
        v1::CompressedTensor t = good;
        mutate(t);
        EXPECT_THROW(make_compressed_linear(t, io), FormatError) << m << (io ? " in_out: " : " out_in: ") << what;
      };
      expect_bad("array data truncated", [](v1::CompressedTensor& t) { t.mutable_arrays(0)->mutable_data()->resize(7); });
      expect_bad("array shape changed, data kept", [](v1::CompressedTensor& t) { t.mutable_arrays(0)->set_shape(0, 41); });
      expect_bad("array reshaped consistently", [](v1::CompressedTensor& t) {
        auto* a = t.mutable_arrays(0);
        const uint64_t r = a->shape(0), c = a->shape(1);
        a->set_shape(0, r * 2);
        a->set_shape(1, c / 2);
        if (c % 2) a->mutable_data()->resize(size_t(r * 2 * (c / 2)) * (a->data().size() / size_t(r * c)));
      });
      expect_bad("tensor shape disagrees", [](v1::CompressedTensor& t) { t.set_shape(0, t.shape(0) + 1); });
      expect_bad("tensor shape rank 1", [](v1::CompressedTensor& t) { t.clear_shape(); t.add_shape(40); });
      expect_bad("tensor shape zero", [](v1::CompressedTensor& t) { t.set_shape(1, 0); });
      expect_bad("array missing", [](v1::CompressedTensor& t) { t.mutable_arrays()->RemoveLast(); });
      expect_bad("dtype changed", [](v1::CompressedTensor& t) { t.mutable_arrays(0)->set_dtype(v1::F32); });
      if (m == "int8") {
        expect_bad("scales short", [](v1::CompressedTensor& t) {
          auto* s = t.mutable_arrays(1);
          s->set_shape(0, s->shape(0) - 1);
          s->mutable_data()->resize(s->data().size() - 4);
        });
      }
      if (parse_block_type(m)) {
        expect_bad("params_json not JSON", [](v1::CompressedTensor& t) { t.set_params_json("{orientation"); });
        expect_bad("orientation flipped", [&](v1::CompressedTensor& t) {
          json r = json::parse(t.params_json());
          r["orientation"] = io ? "out_in" : "in_out";
          t.set_params_json(r.dump());
        });
        expect_bad("unknown packing", [](v1::CompressedTensor& t) {
          json r = json::parse(t.params_json());
          r["packing"] = "diagonal";
          t.set_params_json(r.dump());
        });
      }
    }
}

// Whole models: every 2-D tensor in fp16 / q8_0 (the Conv1D weights of gpt2-man stored (in, out)),
// run once through the operators and once with the same artifact decoded to dense f32 passthrough
// tensors: the same greedy ids for fp16 and int8 (f32 arithmetic on the stored weights), close
// next-token distributions for q8_0 (its activations are quantized too), and fewer bytes held.
namespace {

/// `art` with every compressed tensor decoded to an f32 passthrough array: the dense-decoded execution.
std::shared_ptr<const v1::Artifact> decoded_densely(const v1::Artifact& art) {
  auto out = std::make_shared<v1::Artifact>(art);
  out->clear_tensors();
  for (const auto& t : art.tensors()) {
    const MatrixRM D = find_codec(t.method()).decode(t);
    const std::vector<int64_t> shape{D.rows(), D.cols()};
    *out->add_passthrough() = make_array(t.name(), DType::F32, shape, D.data(), size_t(D.size()) * sizeof(float));
  }
  return out;
}

uint64_t layer_bytes(const Transformer& net) {
  uint64_t n = 0;
  auto add = [&](const std::unique_ptr<LinearOp>& op) { if (op) n += op->resident_bytes(); };
  for (const auto& L : net.layers) {
    add(L.qkv), add(L.q), add(L.k), add(L.v), add(L.o), add(L.up), add(L.gate), add(L.down);
  }
  return n;
}

}  // namespace

class CompressedLinearModel : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(CompressedLinearModel, GreedyIdsMatchDenseDecodedExecution) {
  const auto& [fixture, method] = GetParam();
  const std::string dir = std::string(TSM_FIXTURES_DIR) + "/" + fixture;
  const HfModelDir model = HfModelDir::open(dir);
  std::ifstream f(dir + "/reference.json");
  const json ref = json::parse(f);
  const auto prompt = ref.at("prompt_ids").get<std::vector<int32_t>>();
  ModelArtifactOptions opt;
  opt.eval = false;
  opt.baselines = false;
  const v1::Artifact art = build_model_artifact(model, ".*", method, json::object(), CodecContext{}, "", opt);
  const auto comp = load_transformer(ModelWeights::from_parts(std::nullopt, std::make_shared<const v1::Artifact>(art)));
  const auto dense = load_transformer(ModelWeights::from_parts(std::nullopt, decoded_densely(art)));
  // the operators run the stored form: 2 bytes per weight (fp16), 34 per 32 (q8_0), 1 (int8), not 4
  // (f32 biases are the same in both)
  const double ratio = double(layer_bytes(*dense)) / double(layer_bytes(*comp));
  EXPECT_GT(ratio, method == "fp16" ? 1.9 : 3.5) << "layers' resident bytes, dense-decoded / operators";
  GenerateOptions g;
  g.max_new_tokens = 48;
  g.stop_at_eos = false;
  const auto a = generate(*comp, prompt, g).generated;
  const auto b = generate(*dense, prompt, g).generated;
  ASSERT_EQ(a.size(), size_t(g.max_new_tokens));
  if (method != "q8_0") {
    EXPECT_EQ(a, b) << fixture << " " << method;  // f32 arithmetic on the stored weights: only rounding differs
  } else {
    // q8_0 quantizes the activations to q8 blocks as llama.cpp's vec_dot does, so greedy ids may part
    // after a near tie; the next-token distributions at every prompt position must stay close:
    // mean KL(dense-decoded || operators) below 0.01 nats and the same top-1 at 90% of the positions.
    const int64_t n = int64_t(prompt.size()), V = comp->cfg.vocab;
    std::vector<float> la(size_t(n * V)), lb(la.size());
    KvCache ca = comp->new_cache(n), cb = dense->new_cache(n);
    comp->forward(prompt, ca, la.data(), true);
    dense->forward(prompt, cb, lb.data(), true);
    double kl = 0;
    int same_top1 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = lb.data() + i * V;
      const float* q = la.data() + i * V;
      const double mp = *std::max_element(p, p + V), mq = *std::max_element(q, q + V);
      double zp = 0, zq = 0;
      for (int64_t v = 0; v < V; ++v) zp += std::exp(p[v] - mp), zq += std::exp(q[v] - mq);
      for (int64_t v = 0; v < V; ++v) {
        const double lp = p[v] - mp - std::log(zp), lq = q[v] - mq - std::log(zq);
        kl += std::exp(lp) * (lp - lq);
      }
      same_top1 += std::max_element(p, p + V) - p == std::max_element(q, q + V) - q;
    }
    EXPECT_LT(kl / double(n), 0.01) << fixture;
    EXPECT_GE(same_top1, int(0.9 * double(n))) << fixture;
    std::printf("%s q8_0: mean KL %.2e over %lld prompt positions, top-1 equal at %d\n", fixture.c_str(), kl / double(n),
                static_cast<long long>(n), same_top1);
  }
  // and the logits of the prompt stay close (informational: the q8 activations are the difference)
  std::vector<float> la(size_t(comp->cfg.vocab)), lb(la.size());
  KvCache ca = comp->new_cache(int64_t(prompt.size())), cb = dense->new_cache(int64_t(prompt.size()));
  comp->forward(prompt, ca, la.data(), false);
  dense->forward(prompt, cb, lb.data(), false);
  float mx = 0;
  for (size_t i = 0; i < la.size(); ++i) mx = std::max(mx, std::fabs(la[i] - lb[i]));
  std::printf("%s %s: layers %.2fx smaller, %zu greedy ids equal, max |logit diff| %.2e\n", fixture.c_str(), method.c_str(), ratio,
              a.size(), mx);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CompressedLinearModel,
                         ::testing::Values(std::make_pair(std::string("gpt2-man"), std::string("fp16")),
                                           std::make_pair(std::string("gpt2-man"), std::string("q8_0")),
                                           std::make_pair(std::string("gpt2-man"), std::string("int8")),
                                           std::make_pair(std::string("llama-man"), std::string("fp16")),
                                           std::make_pair(std::string("llama-man"), std::string("q8_0")),
                                           std::make_pair(std::string("llama-man"), std::string("int8"))),
                         [](const auto& info) { return info.param.first.substr(0, info.param.first.find('-')) + "_" + info.param.second; });
