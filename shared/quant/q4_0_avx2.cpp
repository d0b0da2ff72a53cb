// AVX2 Q4_0 . Q8_0 in the order of q4_0.hpp, eight blocks per step. Blocks 2p and 2p+1 share a
// register (one 128-bit lane each): their low nibbles against their first 16 activations, their
// high nibbles against the last 16, giving four int32 partial sums per block. Three vphaddd fold
// the four pairs into one register holding the exact dots of blocks 0, 2, 4, 6, 1, 3, 5, 7: the
// scalar reference's accumulators in that lane order, so one conversion and one fma serve eight
// blocks and simd::hsum adds the lanes as the reference adds its accumulators. The integer dots
// sum(q * a) - 8 * sum(a) are exact (16-bit partials stay below 2 * 2 * 15 * 127 + 2 * 2 * 8 * 127
// < 32768).
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// d_w * d_a * sum((q - 8) * a) of blocks 0..7 fused into acc (lanes in the order above).
inline __m256 group(const BlockQ4_0* x, const BlockQ8_0* y, __m256 acc) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i v[4];
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    const __m256i q = simd::load_pair(x[2 * p].qs, x[2 * p + 1].qs);
    const __m256i lo = _mm256_and_si256(q, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    const __m256i a_lo = simd::load_pair(y[2 * p].qs, y[2 * p + 1].qs);
    const __m256i a_hi = simd::load_pair(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
    const __m256i qa =
        _mm256_add_epi16(_mm256_maddubs_epi16(lo, a_lo), _mm256_maddubs_epi16(hi, a_hi));
    const __m256i a8 =
        _mm256_add_epi16(_mm256_maddubs_epi16(eight, a_lo), _mm256_maddubs_epi16(eight, a_hi));
    v[p] = _mm256_madd_epi16(_mm256_sub_epi16(qa, a8), ones);
  }
  const __m256i dots =
      _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  return _mm256_fmadd_ps(_mm256_mul_ps(simd::scales8(x), simd::scales8(y)),
                         _mm256_cvtepi32_ps(dots), acc);
}

}  // namespace

float vec_dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK4_0;
  __m256 acc = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) acc = group(x + b, y + b, acc);
  if (b < nb) {
    // The last blocks, zero-padded to a group: a zero block adds fma(0, 0, acc) = acc (the
    // accumulators are never -0), so the lanes past the end keep their sums.
    BlockQ4_0 xt[8] = {};
    BlockQ8_0 yt[8] = {};
    std::memcpy(xt, x + b, size_t(nb - b) * sizeof(BlockQ4_0));
    std::memcpy(yt, y + b, size_t(nb - b) * sizeof(BlockQ8_0));
    acc = group(xt, yt, acc);
  }
  return simd::hsum(acc);
}

}  // namespace lb
