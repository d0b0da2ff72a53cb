#pragma once
// The per-super-block pieces every Q4_K . Q8_K SIMD kernel shares. Include ONLY from
// q4_k_avx2.cpp / q4_k_avx512.cpp, after quant/simd_x86.hpp (internal linkage, as there).
#include "quant/q4_k.hpp"
#include "quant/q8_k.hpp"
#include "quant/simd_x86.hpp"

namespace lb::simd {
namespace {

// [d, dmin] of a super-block as floats, in lanes 0 and 1.
inline __m128 q4_k_d_dmin(const BlockQ4_K& x) {
  uint32_t dd;
  std::memcpy(&dd, &x.d, sizeof dd);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));
}

// The eight 6-bit sub-block scales (low 128 bits) and eight mins (high 128 bits) as 16-bit lanes.
inline __m256i q4_k_scales_mins(const BlockQ4_K& x) {
  uint32_t u[4];
  unpack_scales_q4_k(x.scales, u);
  return _mm256_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(u[0]), static_cast<int>(u[1]),
                                             static_cast<int>(u[2]), static_cast<int>(u[3])));
}

// bsums[2s] + bsums[2s+1]: the activation sums of the eight 32-element sub-blocks (Q8_K keeps
// sums of 16), which the mins multiply.
inline __m128i q8_k_pair_sums(const BlockQ8_K& y) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums));
  return _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
}

// R weight rows (x[r]) against one activation row, each row with its own accumulators: per
// super-block the exact int32 lanes of the scaled sub-block dots, fused with d * d_a, and the min
// term mins . (pair sums) with dmin * d_a; at the end hsum(acc) - hsum(acc_m). The activation's
// pair sums are shared and the R weight streams prefetched. scaled_dots(sumi, sc_lo, p_lo, sc_hi,
// p_hi) adds two sub-blocks' 16-bit products times their scales to sumi: the one step the levels
// do with different instructions (exact integers either way). The one-row dot is R = 1, so the
// kDotRows kernels equal it bit for bit by construction.
template <int R, typename ScaledDots>
inline void q4_k_dot_rows(int64_t n, const BlockQ4_K* const* x, const BlockQ8_K* y, float* out,
                          ScaledDots scaled_dots) {
  const int64_t nb = n / kQK_K;
  __m256 acc[R];
  __m128 acc_m[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    acc_m[r] = _mm_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const __m128i pair_sums = q8_k_pair_sums(y[b]);
    const __m128 da = _mm_set1_ps(y[b].d);
    const int8_t* q8 = y[b].qs;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const BlockQ4_K& xb = x[r][b];
      // One row is one stream, which matmul prefetches; R streams are prefetched here.
      if constexpr (R > 1) prefetch_block(&xb, sizeof(BlockQ4_K));
      const __m128 dv = _mm_mul_ps(q4_k_d_dmin(xb), da);
      const __m256i sm = q4_k_scales_mins(xb);
      const __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pair_sums);
      acc_m[r] = _mm_fmadd_ps(_mm_shuffle_ps(dv, dv, 0x55), _mm_cvtepi32_ps(mins), acc_m[r]);
      const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
      __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        __m256i lo, hi;
        split_nibbles(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * j)), &lo,
                      &hi);
        const __m256i a_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * j));
        const __m256i a_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * j + 32));
        sumi = scaled_dots(
            sumi, _mm256_shuffle_epi8(scales, scale_mask(2 * j)), _mm256_maddubs_epi16(lo, a_lo),
            _mm256_shuffle_epi8(scales, scale_mask(2 * j + 1)), _mm256_maddubs_epi16(hi, a_hi));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dv), _mm256_cvtepi32_ps(sumi), acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) - hsum(acc_m[r]);
}

}  // namespace
}  // namespace lb::simd
