// AVX2 Q6_K . Q8_K: the unsigned 6-bit values q (0..63) go through vpmaddubsw and vpmaddwd with
// the group scales; the -32 offset is taken off once per block as 32 * scales . bsums. All int32
// lanes exact.
#include "quant/q6_k.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// Chunk k (32 elements) of a half covers groups 2k (low 128-bit lane) and 2k+1 (high lane):
// byte-shuffle masks picking int16 element 2k in the low lane and 2k+1 in the high lane.
alignas(32) constexpr uint8_t kGroupShuffle[4][32] = {
#define LB_REP8(v) v, v + 1, v, v + 1, v, v + 1, v, v + 1, v, v + 1, v, v + 1, v, v + 1, v, v + 1
    {LB_REP8(0), LB_REP8(2)},
    {LB_REP8(4), LB_REP8(6)},
    {LB_REP8(8), LB_REP8(10)},
    {LB_REP8(12), LB_REP8(14)},
#undef LB_REP8
};

inline __m256i group_mask(int k) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kGroupShuffle[k]));
}

}  // namespace

float vec_dot_q6_k_q8_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const int64_t nb = n / kQK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m_hi = _mm256_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 d = _mm256_mul_ps(simd::broadcast_half(x[b].d), _mm256_set1_ps(y[b].d));
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    // Offset term: 32 * sum_g scales[g] * bsums[g], subtracted from the start.
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].bsums));
    const __m256i offs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bs);
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offs, 5));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[b].scales + 8 * h))));
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].ql + 64 * h));
      const __m256i ql1 =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh + 32 * h));
      const __m256i v[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 4), m_hi)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 2), m_hi)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                          _mm256_and_si256(qh, m_hi)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m_hi)),
      };
      const int8_t* q8 = y[b].qs + 128 * h;
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 32 * k));
        const __m256i p16 = _mm256_maddubs_epi16(v[k], av);
        sumi =
            _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_shuffle_epi8(sc, group_mask(k)), p16));
      }
    }
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
  }
  return simd::hsum(acc);
}

}  // namespace lb
