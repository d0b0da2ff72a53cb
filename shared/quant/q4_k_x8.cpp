#include "quant/q4_k_x8.hpp"

#include <cmath>
#include <cstring>

#include "quant/q4_0.hpp"
#include "quant/q4_0_x8.hpp"
#include "quant/q4_k.hpp"

namespace lb {

namespace {

// Quant i (0..31) of sub-block k of a file-layout Q4_K block.
int q4_k_quant(const BlockQ4_K& b, int k, int i) {
  const uint8_t byte = b.qs[32 * (k / 2) + i];
  return k % 2 ? byte >> 4 : byte & 0x0f;
}

// Eight 6-bit values packed into the low 48 bits of `bits`, k in bits 6k..6k+5.
void unpack6(uint64_t bits, uint8_t out[8]) {
  for (int k = 0; k < 8; ++k) out[k] = uint8_t((bits >> (6 * k)) & 0x3f);
}

uint64_t pack6(const uint8_t v[8]) {
  uint64_t bits = 0;
  for (int k = 0; k < 8; ++k) bits |= uint64_t(v[k] & 0x3f) << (6 * k);
  return bits;
}

void scales_mins(const BlockQ4_Kx8& b, uint8_t sc[8], uint8_t m[8]) {
  uint64_t lo = 0, hi = 0;
  std::memcpy(&lo, b.scales, 6);
  std::memcpy(&hi, b.scales + 6, 6);
  unpack6(lo, sc);
  unpack6(hi, m);
}

}  // namespace

void repack_row_q4_k_x8(const void* src, void* dst, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(src);
  BlockQ4_Kx8* y = static_cast<BlockQ4_Kx8*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    y[b].d = x[b].d;
    y[b].dmin = x[b].dmin;
    uint32_t words[4];
    unpack_scales_q4_k(x[b].scales, words);
    uint8_t sm[16];  // sc[0..7], m[0..7]
    std::memcpy(sm, words, sizeof sm);
    const uint64_t sc = pack6(sm), m = pack6(sm + 8);
    std::memcpy(y[b].scales, &sc, 6);
    std::memcpy(y[b].scales + 6, &m, 6);
    for (int k = 0; k < 8; ++k) {
      for (int i = 0; i < 16; ++i) {
        y[b].qs[x8_slot(k, i)] = uint8_t(q4_k_quant(x[b], k, i) | q4_k_quant(x[b], k, i + 16) << 4);
      }
    }
  }
}

void dequantize_row_q4_k_x8(const void* src, float* dst, int64_t n) {
  const BlockQ4_Kx8* x = static_cast<const BlockQ4_Kx8*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], m[8];
    scales_mins(x[b], sc, m);
    const float d = fp16_to_fp32(x[b].d);
    const float dmin = fp16_to_fp32(x[b].dmin);
    for (int k = 0; k < 8; ++k) {
      const float dk = d * sc[k];
      const float mk = dmin * m[k];
      float* y = dst + b * kQK_K + 32 * k;
      for (int i = 0; i < 16; ++i) {
        const uint8_t q = x[b].qs[x8_slot(k, i)];
        y[i] = dk * (q & 0x0f) - mk;
        y[i + 16] = dk * (q >> 4) - mk;
      }
    }
  }
}

void quantize_row_q8_k_x8(const float* src, void* dst, int64_t n) {
  BlockQ8_Kx8* y = static_cast<BlockQ8_Kx8*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ8_K q;
    quantize_row_q8_k(src + b * kQK_K, &q, kQK_K);
    y[b] = BlockQ8_Kx8{};
    y[b].d = q.d;
    for (int k = 0; k < 8; ++k) {
      y[b].sums[k] = q.bsums[2 * k] + q.bsums[2 * k + 1];
      for (int i = 0; i < 16; ++i) {
        y[b].lo[x8_slot(k, i)] = q.qs[32 * k + i];
        y[b].hi[x8_slot(k, i)] = q.qs[32 * k + 16 + i];
      }
    }
  }
}

float vec_dot_q4_k_x8_q8_k_x8(int64_t n, const void* w, const void* a) {
  const BlockQ4_Kx8* x = static_cast<const BlockQ4_Kx8*>(w);
  const BlockQ8_Kx8* y = static_cast<const BlockQ8_Kx8*>(a);
  float acc_d[8] = {}, acc_m[8] = {};
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], m[8];
    scales_mins(x[b], sc, m);
    const float d = y[b].d * fp16_to_fp32(x[b].d);
    const float dmin = y[b].d * fp16_to_fp32(x[b].dmin);
    for (int k = 0; k < 8; ++k) {
      int32_t p = 0;
      for (int i = 0; i < 16; ++i) {
        const uint8_t q = x[b].qs[x8_slot(k, i)];
        p += (q & 0x0f) * y[b].lo[x8_slot(k, i)] + (q >> 4) * y[b].hi[x8_slot(k, i)];
      }
      acc_d[k] = std::fma(d, static_cast<float>(sc[k] * p), acc_d[k]);
      acc_m[k] = std::fma(dmin, static_cast<float>(m[k] * y[b].sums[k]), acc_m[k]);
    }
  }
  return sum_tree8(acc_d) - sum_tree8(acc_m);
}

}  // namespace lb
