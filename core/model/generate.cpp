// Generation loop (see generate.h).
#include "model/generate.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"

namespace tsm {

GenerateResult generate(const Transformer& net, std::span<const int32_t> prompt, const GenerateOptions& opt) {
  if (prompt.empty()) throw Error("generate: the prompt has no tokens");
  using clock = std::chrono::steady_clock;
  const int64_t V = net.cfg.vocab;
  const int64_t ctx = net.cfg.max_positions;
  if (int64_t(prompt.size()) > ctx)
    throw Error("prompt of " + std::to_string(prompt.size()) + " tokens exceeds the model's " + std::to_string(ctx) + " positions");
  const int64_t room = std::min<int64_t>(opt.max_new_tokens, ctx - int64_t(prompt.size()));
  KvCache cache = net.new_cache(int64_t(prompt.size()) + std::max<int64_t>(room, 1));
  Sampler sampler(opt.sampling);
  std::vector<float> logits(static_cast<size_t>(V));  // (vocab) of the last position
  GenerateResult r;
  if (room <= 0) return r;

  auto t0 = clock::now();
  net.forward(prompt, cache, logits.data(), false);
  int32_t next = sampler.sample(logits);
  r.generated.push_back(next);
  auto t1 = clock::now();
  r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  auto is_eos = [&](int32_t id) {
    return opt.stop_at_eos && std::find(net.cfg.eos_ids.begin(), net.cfg.eos_ids.end(), id) != net.cfg.eos_ids.end();
  };
  while (!is_eos(next) && int64_t(r.generated.size()) < room) {
    net.forward(std::span<const int32_t>(&next, 1), cache, logits.data(), false);
    next = sampler.sample(logits);
    r.generated.push_back(next);
  }
  r.stopped_at_eos = is_eos(next);
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace tsm
