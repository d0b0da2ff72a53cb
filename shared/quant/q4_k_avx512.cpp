// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_K . Q8_K: the q4_k_avx2.cpp scheme with
// vpdpwssd folding the sub-block scale multiply and the int32 accumulation into one instruction.
// 512-bit registers measured no faster on Zen 4. All int32 lanes exact.
#include "quant/prefetch.hpp"
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
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    const __m128 dw = simd::q4_k_d_dmin(x[b]);
    const __m256i sm = simd::q4_k_scales_mins(x[b]);
    const __m128i mins_w = _mm256_extracti128_si256(sm, 1);
    const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
    __m256i sc[8];
    __m256i nib[8];
    for (int j = 0; j < 4; ++j) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * j));
      nib[2 * j] = _mm256_and_si256(bits, m4);
      nib[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
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

// R weight rows against one activation row, each row with its own accumulators and the
// q4_k_avx2.cpp order; the activation loads, pair sums and scale are shared. The one-row dot is
// R = 1, so the multi-row kernels equal it bit for bit by construction.
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
    const __m128 da = _mm_set1_ps(y[b].d);
    const int8_t* q8 = y[b].qs;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const BlockQ4_K& xb = x[r][b];
      // One row is one stream, which matmul prefetches; R streams are prefetched here.
      if constexpr (R > 1) prefetch_block(&xb, sizeof(BlockQ4_K));
      const __m128 dv = _mm_mul_ps(simd::q4_k_d_dmin(xb), da);
      const __m256i sm = simd::q4_k_scales_mins(xb);
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
        sumi = _mm256_dpwssd_epi32(sumi, _mm256_shuffle_epi8(scales, simd::scale_mask(2 * j)),
                                   _mm256_maddubs_epi16(lo, a_lo));
        sumi = _mm256_dpwssd_epi32(sumi, _mm256_shuffle_epi8(scales, simd::scale_mask(2 * j + 1)),
                                   _mm256_maddubs_epi16(hi, a_hi));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dv), _mm256_cvtepi32_ps(sumi), acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = simd::hsum(acc[r]) - simd::hsum(acc_m[r]);
}

}  // namespace

float vec_dot_q4_k_q8_k_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  float y;
  dot_rows<1>(n, &x, static_cast<const BlockQ8_K*>(a), &y);
  return y;
}

void vec_dot_q4_k_q8_k_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* out) {
  const BlockQ4_K* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_K*>(a), out);
}

}  // namespace lb
