// Model-quality evaluation (see evaluate.h).
#include "model/evaluate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/generate.h"

namespace tsm {

namespace {

// Row-wise log-softmax of (n, V) logits, in double for the sums.
void log_softmax_rows(const float* logits, int64_t n, int64_t V, std::vector<double>& out) {
  out.resize(size_t(n * V));
  for (int64_t i = 0; i < n; ++i) {
    const float* l = logits + i * V;
    const double mx = *std::max_element(l, l + V);
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(double(l[j]) - mx);
    const double lse = mx + std::log(s);
    for (int64_t j = 0; j < V; ++j) out[i * V + j] = double(l[j]) - lse;
  }
}

void check_seq(const std::vector<int32_t>& s, const Transformer& net) {
  if (s.size() < 2) throw Error("evaluation: a sequence needs at least 2 tokens");
  if (int64_t(s.size()) > net.cfg.max_positions)
    throw Error("evaluation: a sequence of " + std::to_string(s.size()) + " tokens exceeds the context of " +
                std::to_string(net.cfg.max_positions) + " (split it with split_windows)");
}

// All-position logits (n, V) of one sequence.
std::vector<float> all_logits(const Transformer& net, const std::vector<int32_t>& s) {
  std::vector<float> logits(s.size() * size_t(net.cfg.vocab));
  KvCache cache = net.new_cache(int64_t(s.size()));
  net.forward(s, cache, logits.data(), true);
  return logits;
}

}  // namespace

::tensorslm::v1::ModelQuality QualityResult::to_proto() const {
  ::tensorslm::v1::ModelQuality q;
  q.set_ppl_dense(ppl_dense);
  q.set_ppl_compressed(ppl_compressed);
  q.set_kl_mean(kl_mean);
  q.set_top1_agreement(top1_agreement);
  q.set_nll_delta_mean(nll_delta_mean);
  q.set_tokens(tokens);
  q.set_source(source);
  return q;
}

double perplexity(const Transformer& net, std::span<const std::vector<int32_t>> seqs, uint64_t* tokens) {
  const int64_t V = net.cfg.vocab;
  double nll = 0;
  uint64_t count = 0;
  std::vector<double> lp;
  for (const auto& s : seqs) {
    check_seq(s, net);
    auto logits = all_logits(net, s);
    log_softmax_rows(logits.data(), int64_t(s.size()), V, lp);
    for (size_t t = 0; t + 1 < s.size(); ++t, ++count) nll -= lp[t * V + s[t + 1]];
  }
  if (tokens) *tokens = count;
  if (count == 0) throw Error("evaluation: no sequences");
  return std::exp(nll / double(count));
}

QualityResult compare_models(const Transformer& dense, const Transformer& comp, std::span<const std::vector<int32_t>> seqs,
                             std::string source) {
  if (dense.cfg.vocab != comp.cfg.vocab)
    throw Error("evaluation: vocabularies differ (" + std::to_string(dense.cfg.vocab) + " vs " + std::to_string(comp.cfg.vocab) + ")");
  const int64_t V = dense.cfg.vocab;
  QualityResult r;
  r.source = std::move(source);
  double nll_d = 0, nll_c = 0, kl = 0;
  uint64_t agree = 0;
  std::vector<double> lp, lq;  // (n, V) log-probabilities of dense / compressed
  for (const auto& s : seqs) {
    check_seq(s, dense);
    const int64_t n = int64_t(s.size());
    auto ld = all_logits(dense, s), lc = all_logits(comp, s);
    log_softmax_rows(ld.data(), n, V, lp);
    log_softmax_rows(lc.data(), n, V, lq);
    for (int64_t t = 0; t + 1 < n; ++t) {
      const double* p = lp.data() + t * V;
      const double* q = lq.data() + t * V;
      double k = 0;
      for (int64_t j = 0; j < V; ++j) k += std::exp(p[j]) * (p[j] - q[j]);
      k = std::max(k, 0.0);  // rounding can make an exact match slightly negative
      kl += k;
      r.kl_max = std::max(r.kl_max, k);
      nll_d -= p[s[t + 1]];
      nll_c -= q[s[t + 1]];
      agree += (std::max_element(p, p + V) - p) == (std::max_element(q, q + V) - q);
      ++r.tokens;
    }
  }
  if (r.tokens == 0) throw Error("evaluation: no sequences");
  const double T = double(r.tokens);
  r.ppl_dense = std::exp(nll_d / T);
  r.ppl_compressed = std::exp(nll_c / T);
  r.kl_mean = kl / T;
  r.top1_agreement = double(agree) / T;
  r.nll_delta_mean = (nll_c - nll_d) / T;
  return r;
}

std::vector<std::vector<int32_t>> sample_sequences(const Transformer& net, int count, int length, uint64_t seed) {
  if (count < 1 || length < 2) throw ParamError("samples", "need at least 1 sequence of at least 2 tokens");
  length = int(std::min<int64_t>(length, net.cfg.max_positions));
  const int32_t start = net.cfg.bos_id >= 0 ? net.cfg.bos_id : 0;
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < count; ++i) {
    GenerateOptions opt;
    opt.max_new_tokens = length - 1;
    opt.stop_at_eos = false;
    opt.sampling.temperature = 1.0f;
    opt.sampling.seed = seed + uint64_t(i);
    std::vector<int32_t> prompt{start};
    auto g = generate(net, prompt, opt);
    prompt.insert(prompt.end(), g.generated.begin(), g.generated.end());
    out.push_back(std::move(prompt));
  }
  return out;
}

std::vector<std::vector<int32_t>> split_windows(std::span<const int32_t> ids, int64_t window) {
  if (window < 2) throw ParamError("window", "must be >= 2");
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < ids.size(); i += size_t(window)) {
    size_t e = std::min(ids.size(), i + size_t(window));
    if (e - i >= 2) out.emplace_back(ids.begin() + i, ids.begin() + e);
  }
  return out;
}

std::vector<int32_t> parse_ids(const std::string& text, const char* field) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = text[i];
    if (std::isspace(c) || c == ',' || c == '[' || c == ']') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || j - i > 10) throw ParamError(field, "expected token ids like 1,2,3; found '" + text.substr(i, 20) + "'");
    long long v = std::stoll(text.substr(i, j - i));
    if (v > INT32_MAX) throw ParamError(field, "token id " + text.substr(i, j - i) + " is too large");
    ids.push_back(int32_t(v));
    i = j;
  }
  return ids;
}

std::vector<int32_t> read_ids_file(const std::string& path) {
  std::string text = read_file(path, size_t(1) << 30);
  try {
    return parse_ids(text, "ids-file");
  } catch (const ParamError& e) {
    throw FormatError("token-id file '" + path + "': " + e.what());
  }
}

}  // namespace tsm
