#include "quant/q8_0.hpp"

#include <cmath>

namespace lb {

void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float* x = src + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) {
      const float v = std::fabs(x[j]);
      if (v > amax) amax = v;
    }
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[b].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  }
}

void dequantize_row_q8_0(const void* src, float* dst, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) dst[b * kQK8_0 + j] = x[b].qs[j] * d;
  }
}

float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  // ggml's x86 order (ggml_vec_dot_q8_0_q8_0 and llamafile's tinyBLAS_Q0_AVX alike): eight float
  // lanes, lane l holding the exact int dot of elements 4l..4l+3 of each block; per block one
  // fma with d = d_w * d_a; at the end hsum_float_8.
  float acc[8] = {};
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d);
    for (int l = 0; l < 8; ++l) {
      int32_t isum = 0;
      for (int j = 4 * l; j < 4 * l + 4; ++j) isum += x[b].qs[j] * y[b].qs[j];
      acc[l] = std::fma(d, static_cast<float>(isum), acc[l]);
    }
  }
  return hsum8(acc);
}

}  // namespace lb
