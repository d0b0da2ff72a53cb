#include "quant/q4_0_x8.hpp"

#include <cmath>
#include <cstring>

#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"

namespace lb {

void repack_row_q4_0_x8(const void* src, void* dst, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(src);
  BlockQ4_0x8* y = static_cast<BlockQ4_0x8*>(dst);
  for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
    for (int k = 0; k < 8; ++k) {
      const BlockQ4_0& b = x[8 * g + k];
      y[g].d[k] = b.d;
      for (int c = 0; c < 4; ++c) std::memcpy(&y[g].qs[x8_slot(k, 4 * c)], &b.qs[4 * c], 4);
    }
  }
}

void dequantize_row_q4_0_x8(const void* src, float* dst, int64_t n) {
  const BlockQ4_0x8* x = static_cast<const BlockQ4_0x8*>(src);
  for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
    for (int k = 0; k < 8; ++k) {
      const float d = fp16_to_fp32(x[g].d[k]);
      float* y = dst + (8 * g + k) * kQK4_0;
      for (int j = 0; j < 16; ++j) {
        const uint8_t q = x[g].qs[x8_slot(k, j)];
        y[j] = ((q & 0x0f) - 8) * d;
        y[j + 16] = ((q >> 4) - 8) * d;
      }
    }
  }
}

void quantize_row_q8_0_x8(const float* src, void* dst, int64_t n) {
  BlockQ8_0x8* y = static_cast<BlockQ8_0x8*>(dst);
  for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
    BlockQ8_0 b[8];
    quantize_row_q8_0(src + g * kQK4_0_X8, b, kQK4_0_X8);
    for (int k = 0; k < 8; ++k) {
      y[g].d[k] = fp16_to_fp32(b[k].d);
      int32_t sum = 0;
      for (int j = 0; j < 16; ++j) {
        y[g].lo[x8_slot(k, j)] = b[k].qs[j];
        y[g].hi[x8_slot(k, j)] = b[k].qs[j + 16];
        sum += b[k].qs[j] + b[k].qs[j + 16];
      }
      y[g].neg8sum[k] = -8 * sum;
    }
  }
}

float vec_dot_q4_0_x8_q8_0_x8(int64_t n, const void* w, const void* a) {
  const BlockQ4_0x8* x = static_cast<const BlockQ4_0x8*>(w);
  const BlockQ8_0x8* y = static_cast<const BlockQ8_0x8*>(a);
  float acc[8] = {};
  for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
    for (int k = 0; k < 8; ++k) {
      int32_t isum = y[g].neg8sum[k];
      for (int j = 0; j < 16; ++j) {
        const uint8_t q = x[g].qs[x8_slot(k, j)];
        isum += (q & 0x0f) * y[g].lo[x8_slot(k, j)] + (q >> 4) * y[g].hi[x8_slot(k, j)];
      }
      const float d = fp16_to_fp32(x[g].d[k]) * y[g].d[k];
      acc[k] = std::fma(d, static_cast<float>(isum), acc[k]);
    }
  }
  return sum_tree8(acc);
}

}  // namespace lb
