// llama.cpp block formats (see block_formats.h): ggml's reference quantizers, split into block
// parameters, per-value codes and packing.
#include "methods/block_quant/block_formats.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "common/dtype.h"
#include "common/error.h"

namespace tsm {

namespace {

constexpr int kQK = 32;

const BlockFormat kFormats[] = {
    {BlockType::kQ8_0, "q8_0", kQK, 34, 255, false},
    {BlockType::kQ4_0, "q4_0", kQK, 18, 16, false},
    {BlockType::kQ4_1, "q4_1", kQK, 20, 16, true},
    {BlockType::kQ5_0, "q5_0", kQK, 22, 32, false},
    {BlockType::kQ5_1, "q5_1", kQK, 24, 32, true},
};

float round_f16(float v) { return half_to_float(float_to_half(v)); }

void put_f16(uint8_t* p, float v) {
  const uint16_t h = float_to_half(v);
  std::memcpy(p, &h, 2);
}

float get_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

/// ggml's truncating cast (int8_t)(v) for v already clamped to a safe range.
int trunc_code(float v, int lo, int hi) { return std::clamp(static_cast<int>(std::clamp(v, -1.f, 255.f)), lo, hi); }

}  // namespace

const BlockFormat& block_format(BlockType t) { return kFormats[static_cast<int>(t)]; }

std::optional<BlockType> parse_block_type(std::string_view name) {
  for (const auto& f : kFormats)
    if (f.name == name) return f.type;
  return std::nullopt;
}

BlockParams fit_block(BlockType t, const float* x) {
  BlockParams p;
  const bool asym = block_format(t).has_min;
  if (t == BlockType::kQ8_0) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    p.d = amax / 127.f;
  } else if (!asym) {
    // The value of largest magnitude, with its sign, maps to the most negative code.
    float amax = 0, max = 0;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    p.d = max / (t == BlockType::kQ4_0 ? -8.f : -16.f);
  } else {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      mn = std::min(mn, x[j]);
      mx = std::max(mx, x[j]);
    }
    p.d = (mx - mn) / float(block_format(t).levels - 1);
    p.m = mn;
  }
  p.id = p.d != 0 ? 1.0f / p.d : 0.0f;
  p.d_stored = round_f16(p.d);
  p.m_stored = asym ? round_f16(p.m) : 0.f;
  return p;
}

int quantize_value(BlockType t, const BlockParams& p, float x) {
  const float id = p.id;
  switch (t) {
    case BlockType::kQ8_0: return static_cast<int>(std::clamp(std::round(x * id), -127.f, 127.f));
    case BlockType::kQ4_0: return trunc_code(x * id + 8.5f, 0, 15);
    case BlockType::kQ5_0: return trunc_code(x * id + 16.5f, 0, 31);
    case BlockType::kQ4_1: return trunc_code((x - p.m) * id + 0.5f, 0, 15);
    case BlockType::kQ5_1: return trunc_code((x - p.m) * id + 0.5f, 0, 31);
  }
  return 0;
}

float dequantize_code(BlockType t, const BlockParams& p, int q) {
  switch (t) {
    case BlockType::kQ8_0: return float(q) * p.d_stored;
    case BlockType::kQ4_0: return float(q - 8) * p.d_stored;
    case BlockType::kQ5_0: return float(q - 16) * p.d_stored;
    case BlockType::kQ4_1:
    case BlockType::kQ5_1: return float(q) * p.d_stored + p.m_stored;
  }
  return 0;
}

void pack_block(BlockType t, const BlockParams& p, const int* q, uint8_t* out) {
  put_f16(out, p.d);
  uint8_t* body = out + 2;
  if (block_format(t).has_min) {
    put_f16(out + 2, p.m);
    body = out + 4;
  }
  if (t == BlockType::kQ8_0) {
    for (int j = 0; j < kQK; ++j) body[j] = static_cast<uint8_t>(static_cast<int8_t>(q[j]));
    return;
  }
  uint8_t* qs = body;
  if (t == BlockType::kQ5_0 || t == BlockType::kQ5_1) {
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      qh |= uint32_t((q[j] & 0x10) >> 4) << j;
      qh |= uint32_t((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(body, &qh, 4);  // little-endian hosts (x86-64, aarch64), as ggml's memcpy
    qs = body + 4;
  }
  for (int j = 0; j < kQK / 2; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

void quantize_row(BlockType t, const float* x, int64_t n, uint8_t* out) {
  if (n % kQK != 0) throw Error("quantize_row: " + std::to_string(n) + " values is not a multiple of 32");
  const int bytes = block_format(t).bytes;
  int q[kQK];
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    const BlockParams p = fit_block(t, xb);
    for (int j = 0; j < kQK; ++j) q[j] = quantize_value(t, p, xb[j]);
    pack_block(t, p, q, out + b * bytes);
  }
}

void dequantize_row(BlockType t, const uint8_t* in, int64_t n, float* y) {
  const BlockFormat& f = block_format(t);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* blk = in + b * f.bytes;
    float* yb = y + b * kQK;
    const float d = get_f16(blk);
    const float m = f.has_min ? get_f16(blk + 2) : 0.f;
    const uint8_t* body = blk + (f.has_min ? 4 : 2);
    switch (t) {
      case BlockType::kQ8_0:
        for (int j = 0; j < kQK; ++j) yb[j] = float(static_cast<int8_t>(body[j])) * d;
        break;
      case BlockType::kQ4_0:
        for (int j = 0; j < kQK / 2; ++j) {
          yb[j] = float((body[j] & 0x0F) - 8) * d;
          yb[j + 16] = float((body[j] >> 4) - 8) * d;
        }
        break;
      case BlockType::kQ4_1:
        for (int j = 0; j < kQK / 2; ++j) {
          yb[j] = float(body[j] & 0x0F) * d + m;
          yb[j + 16] = float(body[j] >> 4) * d + m;
        }
        break;
      case BlockType::kQ5_0:
      case BlockType::kQ5_1: {
        uint32_t qh;
        std::memcpy(&qh, body, 4);
        const uint8_t* qs = body + 4;
        const int off = t == BlockType::kQ5_0 ? 16 : 0;
        for (int j = 0; j < kQK / 2; ++j) {
          const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
          const int q0 = ((qs[j] & 0x0F) | h0) - off, q1 = ((qs[j] >> 4) | h1) - off;
          yb[j] = float(q0) * d + m;
          yb[j + 16] = float(q1) * d + m;
        }
        break;
      }
    }
  }
}

}  // namespace tsm
