#include "quant/q6_k.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/q8_0.hpp"

namespace lb {
namespace {

// Best scale s for x ~ s*q, q in [-32, 31], trying grids around max/-32. Returns s (may be < 0).
float fit_group_scale(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  float best_scale = max / -32.0f;
  float best_err = INFINITY;
  for (int step = -10; step <= 10; ++step) {
    const float iscale = -(32.0f + 0.1f * step) / max;
    float sqq = 0, sqx = 0;
    int q[16];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(nearest_int(iscale * x[i]), -32, 31);
      sqq += static_cast<float>(q[i]) * q[i];
      sqx += q[i] * x[i];
    }
    if (sqq <= 0.0f) continue;
    const float s = sqx / sqq;
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float e = s * q[i] - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = s;
    }
  }
  return best_scale;
}

// The 6-bit value (0..63) of every element of a block, in element order.
void unpack_q6_k(const BlockQ6_K& blk, int8_t out[kQK_K]) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = blk.ql + 64 * h;
    const uint8_t* qh = blk.qh + 32 * h;
    int8_t* o = out + 128 * h;
    for (int l = 0; l < 32; ++l) {
      o[l] = static_cast<int8_t>((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4));
      o[l + 32] = static_cast<int8_t>((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
      o[l + 64] = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      o[l + 96] = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}

}  // namespace

void quantize_row_q6_k_ref(const float* src, void* dst, int64_t n) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    float scales[16];
    float amax = 0.0f;
    float max = 0.0f;
    for (int g = 0; g < 16; ++g) {
      scales[g] = fit_group_scale(x + 16 * g, 16);
      if (std::fabs(scales[g]) > amax) {
        amax = std::fabs(scales[g]);
        max = scales[g];
      }
    }
    uint8_t L[kQK_K];
    if (amax == 0.0f) {
      y[b].d = fp32_to_fp16(0.0f);
      std::memset(y[b].scales, 0, sizeof y[b].scales);
      std::memset(L, 32, sizeof L);
    } else {
      const float iscale = -128.0f / max;
      y[b].d = fp32_to_fp16(1.0f / iscale);
      const float d = fp16_to_fp32(y[b].d);
      for (int g = 0; g < 16; ++g) {
        const int sc = std::clamp(nearest_int(iscale * scales[g]), -128, 127);
        y[b].scales[g] = static_cast<int8_t>(sc);
        const float eff = d * sc;
        for (int i = 0; i < 16; ++i) {
          const int q = eff != 0.0f ? std::clamp(nearest_int(x[16 * g + i] / eff), -32, 31) : 0;
          L[16 * g + i] = static_cast<uint8_t>(q + 32);
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[b].ql + 64 * h;
      uint8_t* qh = y[b].qh + 32 * h;
      const uint8_t* v = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((v[l] & 0x0f) | ((v[l + 64] & 0x0f) << 4));
        ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0x0f) | ((v[l + 96] & 0x0f) << 4));
        qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) |
                                     ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_row_q6_k(const void* src, float* dst, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int8_t q[kQK_K];
    unpack_q6_k(x[b], q);
    const float d = fp16_to_fp32(x[b].d);
    for (int g = 0; g < 16; ++g) {
      const float dg = d * x[b].scales[g];
      for (int i = 0; i < 16; ++i) dst[b * kQK_K + 16 * g + i] = dg * (q[16 * g + i] - 32);
    }
  }
}

float vec_dot_q6_k_q8_k(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int8_t q[kQK_K];
    unpack_q6_k(x[b], q);
    int32_t sumi = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t dot = 0;
      for (int i = 0; i < 16; ++i) dot += (q[16 * g + i] - 32) * y[b].qs[16 * g + i];
      sumi += x[b].scales[g] * dot;
    }
    sum += (y[b].d * fp16_to_fp32(x[b].d)) * static_cast<float>(sumi);
  }
  return sum;
}

}  // namespace lb
