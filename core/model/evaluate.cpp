// Model-quality evaluation (see evaluate.h).
#include "model/evaluate.h"

#include <algorithm>
#include <cctype>
#include <Eigen/Core>
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
  q.set_sequences(sequences);
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

namespace {

using ArrayXfMap = Eigen::Map<const Eigen::ArrayXf>;

/// log-sum-exp of each row of (n, V) float logits, in double.
std::vector<double> row_lse(const float* logits, int64_t n, int64_t V) {
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const Eigen::ArrayXd l = ArrayXfMap(logits + i * V, V).cast<double>();
    const double mx = l.maxCoeff();
    out[size_t(i)] = mx + std::log((l - mx).exp().sum());
  }
  return out;
}

/// Adds one sequence's positions to r (and the NLL sums): dense logits ld with their row lse, compressed lc.
void accumulate(const std::vector<int32_t>& s, const float* ld, const double* lse_d, const float* lc, int64_t V, QualityResult& r,
                double& nll_d, double& nll_c, double& kl, uint64_t& agree) {
  const int64_t n = int64_t(s.size());
  for (int64_t t = 0; t + 1 < n; ++t) {
    const Eigen::ArrayXd p = ArrayXfMap(ld + t * V, V).cast<double>() - lse_d[t];  // log p
    const Eigen::ArrayXd c = ArrayXfMap(lc + t * V, V).cast<double>();
    const double mx = c.maxCoeff();
    const Eigen::ArrayXd q = c - (mx + std::log((c - mx).exp().sum()));  // log q
    const double k = std::max((p.exp() * (p - q)).sum(), 0.0);  // rounding can make an exact match slightly negative
    kl += k;
    r.kl_max = std::max(r.kl_max, k);
    nll_d -= p[s[size_t(t + 1)]];
    nll_c -= q[s[size_t(t + 1)]];
    Eigen::Index ip, iq;
    p.maxCoeff(&ip);
    q.maxCoeff(&iq);
    agree += ip == iq;
    ++r.tokens;
  }
}

QualityResult finish(QualityResult r, size_t sequences, double nll_d, double nll_c, double kl, uint64_t agree) {
  if (r.tokens == 0) throw Error("evaluation: no sequences");
  r.sequences = sequences;
  const double T = double(r.tokens);
  r.ppl_dense = std::exp(nll_d / T);
  r.ppl_compressed = std::exp(nll_c / T);
  r.kl_mean = kl / T;
  r.top1_agreement = double(agree) / T;
  r.nll_delta_mean = (nll_c - nll_d) / T;
  return r;
}

}  // namespace

ReferenceLogits::ReferenceLogits(const Transformer& dense, std::span<const std::vector<int32_t>> seqs) : vocab_(dense.cfg.vocab) {
  for (const auto& s : seqs) {
    check_seq(s, dense);
    logits_.push_back(all_logits(dense, s));
    lse_.push_back(row_lse(logits_.back().data(), int64_t(s.size()), vocab_));
    seqs_.push_back(s);
  }
}

QualityResult ReferenceLogits::compare(const Transformer& comp, std::string source) const {
  if (comp.cfg.vocab != vocab_)
    throw Error("evaluation: vocabularies differ (" + std::to_string(vocab_) + " vs " + std::to_string(comp.cfg.vocab) + ")");
  QualityResult r;
  r.source = std::move(source);
  double nll_d = 0, nll_c = 0, kl = 0;
  uint64_t agree = 0;
  for (size_t i = 0; i < seqs_.size(); ++i) {
    const auto lc = all_logits(comp, seqs_[i]);
    accumulate(seqs_[i], logits_[i].data(), lse_[i].data(), lc.data(), vocab_, r, nll_d, nll_c, kl, agree);
  }
  return finish(std::move(r), seqs_.size(), nll_d, nll_c, kl, agree);
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
  for (const auto& s : seqs) {  // one sequence at a time: memory (n, V) per model
    check_seq(s, dense);
    const auto ld = all_logits(dense, s), lc = all_logits(comp, s);
    const auto lse = row_lse(ld.data(), int64_t(s.size()), V);
    accumulate(s, ld.data(), lse.data(), lc.data(), V, r, nll_d, nll_c, kl, agree);
  }
  return finish(std::move(r), seqs.size(), nll_d, nll_c, kl, agree);
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

std::vector<std::vector<int32_t>> read_sequences_file(const std::string& path) {
  const std::string text = read_file(path, size_t(1) << 30);
  std::vector<std::vector<int32_t>> out;
  // "[[" (whitespace allowed between) opens a JSON array of arrays; anything else is read by lines.
  const size_t first = text.find_first_not_of(" \t\r\n");
  const size_t second = first == std::string::npos ? first : text.find_first_not_of(" \t\r\n", first + 1);
  if (second != std::string::npos && text[first] == '[' && text[second] == '[') {
    // JSON array of arrays (parsed with limits by nlohmann: the file is at most 1 GiB).
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError("token-sequence file '" + path + "': not JSON (" + e.what() + ")");
    }
    if (!j.is_array()) throw FormatError("token-sequence file '" + path + "': expected an array of arrays of token ids");
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_array()) throw FormatError("token-sequence file '" + path + "': entry " + std::to_string(i) + " is not an array");
      std::vector<int32_t> s;
      for (const auto& v : j[i]) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
          throw FormatError("token-sequence file '" + path + "': entry " + std::to_string(i) + " holds a non-id " + v.dump());
        s.push_back(int32_t(v.get<int64_t>()));
      }
      out.push_back(std::move(s));
    }
  } else {
    size_t line = 0, pos = 0;
    while (pos <= text.size()) {
      const size_t end = std::min(text.find('\n', pos), text.size());
      ++line;
      const std::string l = text.substr(pos, end - pos);
      pos = end + 1;
      if (l.find_first_not_of(" \t\r,") == std::string::npos) continue;
      try {
        out.push_back(parse_ids(l, "ids"));
      } catch (const ParamError& e) {
        throw FormatError("token-sequence file '" + path + "' line " + std::to_string(line) + ": " + e.what());
      }
    }
  }
  if (out.empty()) throw FormatError("token-sequence file '" + path + "': no sequences");
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].size() < 2)
      throw FormatError("token-sequence file '" + path + "': sequence " + std::to_string(i) + " has fewer than 2 tokens");
  return out;
}

SequenceSpec default_eval_spec() { return SequenceSpec{}; }

SequenceSpec default_calib_spec() {
  SequenceSpec s;
  s.sequences = 64;
  s.length = 128;
  s.seed = 1000004;
  return s;
}

uint64_t SequenceSet::predicted_tokens() const {
  uint64_t n = 0;
  for (const auto& s : seqs) n += s.size() - 1;
  return n;
}

void check_given_sequences(const SequenceSpec& spec, int64_t vocab, int64_t context, const std::string& field) {
  for (size_t i = 0; i < spec.given.size(); ++i) {
    const auto& s = spec.given[i];
    if (s.size() < 2) throw ParamError(field, "sequence " + std::to_string(i) + " has fewer than 2 tokens");
    if (int64_t(s.size()) > context)
      throw ParamError(field, "sequence " + std::to_string(i) + " has " + std::to_string(s.size()) + " tokens, the context holds " +
                                  std::to_string(context));
    for (int32_t id : s)
      if (id < 0 || id >= vocab)
        throw ParamError(field, "sequence " + std::to_string(i) + " holds token id " + std::to_string(id) + " outside the vocabulary (" +
                                    std::to_string(vocab) + ")");
  }
}

SequenceSet make_sequence_set(const Transformer& net, const SequenceSpec& spec, const std::string& what) {
  SequenceSet out;
  const int64_t ctx = net.cfg.max_positions;
  if (!spec.given.empty()) {
    check_given_sequences(spec, net.cfg.vocab, ctx, what);
    out.seqs = spec.given;
    out.source = spec.given_source.empty() ? std::string("given sequences") : spec.given_source;
  } else {
    if (spec.length < 2) throw ParamError(what, "sequences need at least 2 tokens");
    const int length = int(std::min<int64_t>(spec.length, ctx));
    const int count = sampled_sequence_count(spec, ctx);
    if (count > 1000000) throw ParamError(what, "at most 1,000,000 sampled sequences");
    out.seqs = sample_sequences(net, count, length, spec.seed);
    out.source = "self-sampled from the dense model (temperature 1, seeds " + std::to_string(spec.seed) + ".." +
                 std::to_string(spec.seed + uint64_t(count) - 1) + ")";
  }
  uint64_t longest = 0;
  for (const auto& s : out.seqs) longest = std::max<uint64_t>(longest, s.size());
  out.source += ": " + std::to_string(out.seqs.size()) + " sequences of up to " + std::to_string(longest) + " tokens, " +
                std::to_string(out.predicted_tokens()) + " predicted";
  return out;
}

int sampled_sequence_count(const SequenceSpec& spec, int64_t context) {
  if (spec.sequences > 0) return spec.sequences;
  const int64_t length = std::max<int64_t>(2, std::min<int64_t>(spec.length, context));
  return int(std::clamp<int64_t>((spec.min_tokens + length - 2) / (length - 1), 1, 1000001));
}

void require_disjoint(const SequenceSpec& calib, const SequenceSet& calib_set, const SequenceSpec& eval, const SequenceSet& eval_set,
                      int64_t context) {
  if (calib.given.empty() && eval.given.empty()) {
    const uint64_t c0 = calib.seed, c1 = calib.seed + uint64_t(sampled_sequence_count(calib, context));
    const uint64_t e0 = eval.seed, e1 = eval.seed + uint64_t(sampled_sequence_count(eval, context));
    if (c0 < e1 && e0 < c1)
      throw ParamError("calibrate", "calibration seeds " + std::to_string(c0) + ".." + std::to_string(c1 - 1) +
                                        " overlap the evaluation seeds " + std::to_string(e0) + ".." + std::to_string(e1 - 1));
  }
  for (const auto& c : calib_set.seqs)
    for (const auto& e : eval_set.seqs)
      if (c == e) throw ParamError("calibrate", "a calibration sequence is also an evaluation sequence; evaluation must be held out");
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
