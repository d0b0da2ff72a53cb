// AVX2 Q4_K . Q8_K: per super-block, vpmaddubsw (4-bit x int8) then vpmaddwd with the sub-block
// scale gives exact int32 lanes; the min term is mins . (pairwise bsums), also exact.
#include "quant/prefetch.hpp"
#include "quant/q4_k_simd.hpp"

namespace lb {

namespace {

// R weight rows against one activation row, each row with its own accumulators in the order
// above; the activation's pair sums are shared and the R weight streams prefetched. The one-row
// dot is R = 1, so the kDotRows kernel equals it bit for bit by construction.
template <int R>
void dot_rows(int64_t n, const BlockQ4_K* const* x, const BlockQ8_K* y, float* out) {
  const int64_t nb = n / kQK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc[R];
  __m128 acc_m[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    acc_m[r] = _mm_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const __m128i pair_sums = simd::q8_k_pair_sums(y[b]);
    const int8_t* q8 = y[b].qs;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const BlockQ4_K& xb = x[r][b];
      // One row is one stream, which matmul prefetches; R streams are prefetched here.
      if constexpr (R > 1) prefetch_block(&xb, sizeof(BlockQ4_K));
      // [d, dmin] of the weights (F16C), times the activation scale.
      const __m128 dv = _mm_mul_ps(simd::q4_k_d_dmin(xb), _mm_set1_ps(y[b].d));
      const __m256i sm = simd::q4_k_scales_mins(xb);
      // Min term: m[s] * (bsums[2s] + bsums[2s+1]).
      const __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pair_sums);
      acc_m[r] = _mm_fmadd_ps(_mm_shuffle_ps(dv, dv, 0x55), _mm_cvtepi32_ps(mins), acc_m[r]);

      const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
      __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * j));
        const __m256i lo = _mm256_and_si256(bits, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        const __m256i a_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * j));
        const __m256i a_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * j + 32));
        const __m256i p_lo = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, simd::scale_mask(2 * j)),
                                               _mm256_maddubs_epi16(lo, a_lo));
        const __m256i p_hi =
            _mm256_madd_epi16(_mm256_shuffle_epi8(scales, simd::scale_mask(2 * j + 1)),
                              _mm256_maddubs_epi16(hi, a_hi));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dv), _mm256_cvtepi32_ps(sumi), acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = simd::hsum(acc[r]) - simd::hsum(acc_m[r]);
}

}  // namespace

float vec_dot_q4_k_q8_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  float y;
  dot_rows<1>(n, &x, static_cast<const BlockQ8_K*>(a), &y);
  return y;
}

void vec_dot_q4_k_q8_k_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out) {
  const BlockQ4_K* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_K*>(a), out);
}

}  // namespace lb
