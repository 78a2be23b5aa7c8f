// Limits and size arithmetic shared by the tt-token encoder (tt_token_codec.cpp) and decoder
// (token_train_table.cpp): what a file may declare, and the element count of one token's cores.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace tsm::tt_token {

constexpr int kMaxOrder = 32;
constexpr int64_t kMaxRank = 65535;          // ranks are stored as u16 in ragged mode
constexpr int64_t kMaxWorkspace = int64_t{1} << 28;  // floats of decode scratch we accept from a file
// Fewest tokens decoded on the OpenMP threads: a token takes well under a microsecond, and below a few
// thousand the fork/join (and the spinning of oversubscribed OpenMP threads) costs more than it saves.
constexpr int64_t kMinParallelDecode = 4096;

/// Elements of one token's cores for ranks r_0..r_m: sum_k r_{k-1} n_k r_k.
inline int64_t token_elems(std::span<const int64_t> modes, std::span<const int64_t> r) {
  int64_t s = 0;
  for (size_t k = 0; k < modes.size(); ++k) s += r[k] * modes[k] * r[k + 1];
  return s;
}

}  // namespace tsm::tt_token
