// Attention's pass 3 (the weighted sum of values) on 512-bit registers. Each position's update of
// a head's F16 sums is an fma and a round trip through F16, a chain of dependent instructions, so
// the pace is set by how many independent chains are in flight rather than by the core's
// throughput: the AVX2 pass keeps 8 (one head's 64 dims in 8-lane registers); here four heads'
// sums are updated together, 16 chains of 16 lanes, in 16 of the 32 zmm registers.
#include <algorithm>

#include "compute/attention_passes.hpp"
#include "quant/simd_x86.hpp"

namespace lb::attention_detail {
namespace {

constexpr int kHeadsTogether = 4;

inline __m512 round_f16(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

// Heads [0, H) of `heads`, dims [0, 16C) of each (the last register's lanes as `last` masks), over
// n positions. The lanes masked off load zeros and stay zero, so they are never stored.
template <int H, int C>
void accumulate_heads(const float* rows, int64_t width, const int64_t* offset, int64_t n,
                      const float* w_old, const float* w_new, float* const* sum, __mmask16 last) {
  __m512 acc[H][C];
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c)
      acc[h][c] = _mm512_maskz_loadu_ps(c == C - 1 ? last : __mmask16(0xffff), sum[h] + 16 * c);
  }
  for (int64_t j = 0; j < n; ++j) {
    const float* row = rows + j * width;
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      const float ms = w_old[j * kLanes + h];
      if (ms != 1.0f) {
        const __m512 vms = _mm512_set1_ps(ms);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[h][c] = round_f16(_mm512_mul_ps(acc[h][c], vms));
      }
      const __m512 vs = _mm512_set1_ps(w_new[j * kLanes + h]);
      const float* v = row + offset[h];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        const __m512 x = _mm512_maskz_loadu_ps(c == C - 1 ? last : __mmask16(0xffff), v + 16 * c);
        acc[h][c] = round_f16(_mm512_fmadd_ps(x, vs, acc[h][c]));
      }
    }
  }
#pragma GCC unroll 4
  for (int h = 0; h < H; ++h) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c)
      _mm512_mask_storeu_ps(sum[h] + 16 * c, c == C - 1 ? last : __mmask16(0xffff), acc[h][c]);
  }
}

}  // namespace

void accumulate_block_avx512(const float* rows, const HeadSpan& span, int64_t n, int64_t head_dim,
                             int64_t n_heads, const float* w_old, const float* w_new, float* acc) {
  // Up to 64 dims of up to four heads per pass over the positions.
  for (int64_t d = 0; d < head_dim; d += 64) {
    const int64_t dims = std::min<int64_t>(64, head_dim - d);
    const int regs = int((dims + 15) / 16);
    const __mmask16 last = __mmask16((1u << (dims - 16 * (regs - 1))) - 1);
    for (int64_t h = 0; h < n_heads; h += kHeadsTogether) {
      const int heads = int(std::min<int64_t>(kHeadsTogether, n_heads - h));
      int64_t offset[kHeadsTogether];
      float* sum[kHeadsTogether];
      for (int i = 0; i < heads; ++i) {
        offset[i] = span.offset[h + i] + d;
        sum[i] = acc + (h + i) * head_dim + d;
      }
      simd::with_count(heads, [&](auto hc) {
        simd::with_count(regs, [&](auto rc) {
          constexpr int H = decltype(hc)::value, C = decltype(rc)::value;
          if constexpr (H <= kHeadsTogether && C <= 4) {
            accumulate_heads<H, C>(rows, span.width, offset, n, w_old + h, w_new + h, sum, last);
          }
        });
      });
    }
  }
}

}  // namespace lb::attention_detail
