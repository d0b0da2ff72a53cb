// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_K . Q8_K: the q4_k_avx2.cpp scheme with
// vpdpwssd folding the sub-block scale multiply and the int32 accumulation into one instruction.
// 512-bit registers measured no faster on Zen 4. All int32 lanes exact.
#include "quant/q4_k_simd.hpp"

namespace lb {

namespace {

// vec_dot_q4_k_q8_k_avx512 for T activation rows: per row that function's accumulators and
// operations in its order; the scales, their shuffles and the nibbles are unpacked once per
// super-block for all rows.
template <int T>
void dot_multi(int64_t n, const BlockQ4_K* x, const uint8_t* act, size_t a_stride, float* out,
               size_t out_stride) {
  const BlockQ8_K* y[T];
  __m256 acc[T];
  __m128 acc_m[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    y[t] = reinterpret_cast<const BlockQ8_K*>(act + size_t(t) * a_stride);
    acc[t] = _mm256_setzero_ps();
    acc_m[t] = _mm_setzero_ps();
  }
  const int64_t nb = n / kQK_K;
  for (int64_t b = 0; b < nb; ++b) {
    const __m128 dw = simd::q4_k_d_dmin(x[b]);
    const __m256i sm = simd::q4_k_scales_mins(x[b]);
    const __m128i mins_w = _mm256_extracti128_si256(sm, 1);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
    __m256i sc[8];
    __m256i nib[8];
    for (int j = 0; j < 4; ++j) {
      simd::split_nibbles(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * j)),
                          &nib[2 * j], &nib[2 * j + 1]);
      sc[2 * j] = _mm256_shuffle_epi8(scales, simd::scale_mask(2 * j));
      sc[2 * j + 1] = _mm256_shuffle_epi8(scales, simd::scale_mask(2 * j + 1));
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const BlockQ8_K& yb = y[t][b];
      const __m128 dv = _mm_mul_ps(dw, _mm_set1_ps(yb.d));
      const __m128i mins = _mm_madd_epi16(mins_w, simd::q8_k_pair_sums(yb));
      acc_m[t] = _mm_fmadd_ps(_mm_shuffle_ps(dv, dv, 0x55), _mm_cvtepi32_ps(mins), acc_m[t]);
      __m256i sumi = _mm256_setzero_si256();
      for (int i = 0; i < 8; ++i) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb.qs + 32 * i));
        sumi = _mm256_dpwssd_epi32(sumi, sc[i], _mm256_maddubs_epi16(nib[i], av));
      }
      acc[t] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dv), _mm256_cvtepi32_ps(sumi), acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    out[size_t(t) * out_stride] = simd::hsum(acc[t]) - simd::hsum(acc_m[t]);
  }
}

}  // namespace

void vec_dot_q4_k_q8_k_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride) {
  const uint8_t* act = static_cast<const uint8_t*>(a);
  simd::with_count(n_act, [&](auto t) {
    for (int64_t r = 0; r < n_rows; ++r) {
      const BlockQ4_K* x =
          reinterpret_cast<const BlockQ4_K*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride);
      dot_multi<decltype(t)::value>(n, x, act, a_stride, y + r, y_stride);
    }
  });
}

namespace {

// Two sub-blocks' scaled dots added to sumi (q4_k_dot_rows): one vpdpwssd each.
inline __m256i scaled_dots(__m256i sumi, __m256i sc_lo, __m256i p_lo, __m256i sc_hi, __m256i p_hi) {
  return _mm256_dpwssd_epi32(_mm256_dpwssd_epi32(sumi, sc_lo, p_lo), sc_hi, p_hi);
}

}  // namespace

float vec_dot_q4_k_q8_k_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  float y;
  simd::q4_k_dot_rows<1>(n, &x, static_cast<const BlockQ8_K*>(a), &y, scaled_dots);
  return y;
}

void vec_dot_q4_k_q8_k_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* out) {
  const BlockQ4_K* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  simd::q4_k_dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_K*>(a), out, scaled_dots);
}

}  // namespace lb
