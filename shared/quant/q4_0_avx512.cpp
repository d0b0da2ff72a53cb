// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_0 . Q8_0: the two-block layout of
// q4_0_avx2.cpp with vpdpbusd for the exact integer dots sum(q * a) - 8 * sum(a). 512-bit
// registers measured no faster here (Zen 4 splits them), so this level stays at 256 bits.
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m128i load128(const void* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

inline __m256i dot_pair(const BlockQ4_0* x, const BlockQ8_0* y) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i q = _mm256_set_m128i(load128(x[1].qs), load128(x[0].qs));
  const __m256i lo = _mm256_and_si256(q, m4);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
  const __m256i a_lo = _mm256_set_m128i(load128(y[1].qs), load128(y[0].qs));
  const __m256i a_hi = _mm256_set_m128i(load128(y[1].qs + 16), load128(y[0].qs + 16));
  const __m256i qa = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, lo, a_lo), hi, a_hi);
  const __m256i a8 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, eight, a_lo), eight, a_hi);
  return _mm256_sub_epi32(qa, a8);
}

// [d_w * d_a of block 0] x 4, then block 1 x 4.
inline __m256 scale_pair(const BlockQ4_0* x, const BlockQ8_0* y) {
  return simd::spread_pair(simd::scale_pair(x[0].d, x[1].d, y[0].d, y[1].d));
}

}  // namespace

float vec_dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK4_0;
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    acc0 =
        _mm256_fmadd_ps(scale_pair(x + b, y + b), _mm256_cvtepi32_ps(dot_pair(x + b, y + b)), acc0);
    acc1 = _mm256_fmadd_ps(scale_pair(x + b + 2, y + b + 2),
                           _mm256_cvtepi32_ps(dot_pair(x + b + 2, y + b + 2)), acc1);
  }
  if (b + 2 <= nb) {
    acc0 =
        _mm256_fmadd_ps(scale_pair(x + b, y + b), _mm256_cvtepi32_ps(dot_pair(x + b, y + b)), acc0);
    b += 2;
  }
  if (b < nb) {
    const __m128i q = load128(x[b].qs);
    const __m256i u =
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256i zero = _mm256_setzero_si256();
    const __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, u, av),
                                         _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(8), av));
    const __m256 d = _mm256_broadcastss_ps(simd::scale_pair(x[b].d, x[b].d, y[b].d, y[b].d));
    acc1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot), acc1);
  }
  return simd::hsum(_mm256_add_ps(acc0, acc1));
}

}  // namespace lb
