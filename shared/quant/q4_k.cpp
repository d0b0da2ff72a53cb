#include "quant/q4_k.hpp"

#include <algorithm>
#include <cmath>

#include "quant/q8_0.hpp"

namespace lb {
namespace {

// Fits x[i] ~ scale * q[i] - min with q in [0, nmax] and min >= 0 (the format cannot offset
// upwards). Returns the squared error; scale/min are the best pair found.
float fit_scale_min(const float* x, int n, int nmax, float* scale, float* min) {
  float lo = x[0];
  float hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  if (hi <= lo) {  // constant non-positive block: only the min is needed
    *scale = 0.0f;
    *min = -lo;
    float err = 0.0f;
    for (int i = 0; i < n; ++i) err += (x[i] - lo) * (x[i] - lo);
    return err;
  }
  float best_err = INFINITY;
  *scale = (hi - lo) / nmax;
  *min = -lo;
  for (int step = -10; step <= 10; ++step) {
    const float iscale = (nmax + 0.1f * step) / (hi - lo);
    float sq = 0, sqq = 0, sx = 0, sqx = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(nearest_int((x[i] - lo) * iscale), 0, nmax);
      sq += q[i];
      sqq += static_cast<float>(q[i]) * q[i];
      sx += x[i];
      sqx += q[i] * x[i];
    }
    const float det = n * sqq - sq * sq;
    if (det <= 0.0f) continue;
    float s = (n * sqx - sq * sx) / det;
    float o = (sx - s * sq) / n;  // x ~ s*q + o
    if (o > 0.0f) {
      o = 0.0f;
      s = sqx / sqq;
    }
    if (s <= 0.0f) continue;
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float e = s * q[i] + o - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = err;
      *scale = s;
      *min = -o;
    }
  }
  return best_err;
}

}  // namespace

void quantize_row_q4_k_ref(const float* src, void* dst, int64_t n) {
  BlockQ4_K* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    float scales[8];
    float mins[8];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    for (int s = 0; s < 8; ++s) {
      fit_scale_min(x + 32 * s, 32, 15, &scales[s], &mins[s]);
      max_scale = std::max(max_scale, scales[s]);
      max_min = std::max(max_min, mins[s]);
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t ls[8];
    uint8_t lm[8];
    for (int s = 0; s < 8; ++s) {
      ls[s] = static_cast<uint8_t>(std::clamp(nearest_int(inv_scale * scales[s]), 0, 63));
      lm[s] = static_cast<uint8_t>(std::clamp(nearest_int(inv_min * mins[s]), 0, 63));
    }
    y[b].d = fp32_to_fp16(max_scale / 63.0f);
    y[b].dmin = fp32_to_fp16(max_min / 63.0f);
    // Pack (inverse of get_scale_min_k4): sub-blocks 0..3 in the low 6 bits of bytes 0..3 (scale)
    // and 4..7 (min); sub-blocks 4..7 split into a nibble in bytes 8..11 plus 2 high bits on top
    // of bytes 0..3 (scale) and 4..7 (min).
    std::memset(y[b].scales, 0, sizeof y[b].scales);
    for (int s = 0; s < 8; ++s) {
      if (s < 4) {
        y[b].scales[s] |= ls[s];
        y[b].scales[s + 4] |= lm[s];
      } else {
        y[b].scales[s + 4] = static_cast<uint8_t>((ls[s] & 0x0f) | ((lm[s] & 0x0f) << 4));
        y[b].scales[s - 4] |= static_cast<uint8_t>((ls[s] >> 4) << 6);
        y[b].scales[s] |= static_cast<uint8_t>((lm[s] >> 4) << 6);
      }
    }
    // Final 4-bit values against the scales as stored (fp16 d times 6-bit factors).
    const float d = fp16_to_fp32(y[b].d);
    const float dmin = fp16_to_fp32(y[b].dmin);
    uint8_t q[kQK_K];
    for (int s = 0; s < 8; ++s) {
      const float sc = d * ls[s];
      const float m = dmin * lm[s];
      for (int i = 0; i < 32; ++i) {
        const float v = sc != 0.0f ? (x[32 * s + i] + m) / sc : 0.0f;
        q[32 * s + i] = static_cast<uint8_t>(std::clamp(nearest_int(v), 0, 15));
      }
    }
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) {
        y[b].qs[32 * j + l] = static_cast<uint8_t>(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
      }
    }
  }
}

void dequantize_row_q4_k(const void* src, float* dst, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint32_t words[4];
    unpack_scales_q4_k(x[b].scales, words);
    uint8_t sm[16];  // sc[0..7], m[0..7]
    std::memcpy(sm, words, sizeof sm);
    const float d = fp16_to_fp32(x[b].d);
    const float dmin = fp16_to_fp32(x[b].dmin);
    float* y = dst + b * kQK_K;
    for (int j = 0; j < 4; ++j) {
      const float d1 = d * sm[2 * j];
      const float m1 = dmin * sm[8 + 2 * j];
      const float d2 = d * sm[2 * j + 1];
      const float m2 = dmin * sm[8 + 2 * j + 1];
      for (int l = 0; l < 32; ++l) {
        y[64 * j + l] = d1 * (x[b].qs[32 * j + l] & 0x0f) - m1;
        y[64 * j + 32 + l] = d2 * (x[b].qs[32 * j + l] >> 4) - m2;
      }
    }
  }
}

float vec_dot_q4_k_q8_k(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint32_t words[4];
    unpack_scales_q4_k(x[b].scales, words);
    uint8_t sm[16];
    std::memcpy(sm, words, sizeof sm);
    const uint8_t* q4 = x[b].qs;
    const int8_t* q8 = y[b].qs;
    int32_t sumi = 0;
    for (int j = 0; j < 4; ++j) {
      int32_t lo = 0;
      int32_t hi = 0;
      for (int l = 0; l < 32; ++l) {
        lo += (q4[32 * j + l] & 0x0f) * q8[64 * j + l];
        hi += (q4[32 * j + l] >> 4) * q8[64 * j + 32 + l];
      }
      sumi += sm[2 * j] * lo + sm[2 * j + 1] * hi;
    }
    int32_t summ = 0;
    for (int s = 0; s < 8; ++s) summ += sm[8 + s] * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
    const float d = y[b].d * fp16_to_fp32(x[b].d);
    const float dmin = y[b].d * fp16_to_fp32(x[b].dmin);
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

}  // namespace lb
