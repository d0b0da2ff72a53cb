// AVX2 Q4_0 . Q8_0. Two blocks per step: the low nibbles of blocks b and b+1 go in one register
// (one 128-bit lane each) against the first 16 activations of each block, the high nibbles
// against the last 16, so one int->float conversion and one FMA serve two blocks. The per-block
// integer dot sum((q - 8) * a) = sum(q * a) - 8 * sum(a) is exact (16-bit partials cannot
// saturate: |2 * 15 * 127| * 2 + 8 * 127 * 4 < 32768).
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m128i load128(const void* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Blocks x[0], x[1]: 8 int32 lanes, 4 per block (block 0 in the low 128 bits).
inline __m256i dot_pair(const BlockQ4_0* x, const BlockQ8_0* y) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i q = _mm256_set_m128i(load128(x[1].qs), load128(x[0].qs));
  const __m256i lo = _mm256_and_si256(q, m4);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
  const __m256i a_lo = _mm256_set_m128i(load128(y[1].qs), load128(y[0].qs));
  const __m256i a_hi = _mm256_set_m128i(load128(y[1].qs + 16), load128(y[0].qs + 16));
  const __m256i qa =
      _mm256_add_epi16(_mm256_maddubs_epi16(lo, a_lo), _mm256_maddubs_epi16(hi, a_hi));
  const __m256i a8 =
      _mm256_add_epi16(_mm256_maddubs_epi16(eight, a_lo), _mm256_maddubs_epi16(eight, a_hi));
  return _mm256_madd_epi16(_mm256_sub_epi16(qa, a8), _mm256_set1_epi16(1));
}

// [d_w * d_a of block 0] x 4, then block 1 x 4.
inline __m256 scale_pair(const BlockQ4_0* x, const BlockQ8_0* y) {
  return simd::spread_pair(simd::scale_pair(x[0].d, x[1].d, y[0].d, y[1].d));
}

}  // namespace

float vec_dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
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
  if (b < nb) {  // last odd block, whole
    const __m128i q = load128(x[b].qs);
    const __m256i nib =
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
    const __m256i wv = _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256 d = _mm256_broadcastss_ps(simd::scale_pair(x[b].d, x[b].d, y[b].d, y[b].d));
    acc1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(simd::dot_i8_32(wv, av)), acc1);
  }
  return simd::hsum(_mm256_add_ps(acc0, acc1));
}

}  // namespace lb
