// AVX-512 (BW + VNNI) Q6_K . Q8_K: 64 elements per 512-bit step, vpmaddubsw on the unsigned 6-bit
// values then vpdpwssd with the group scales; the -32 offset comes off once per block via bsums.
#include "quant/prefetch.hpp"
#include "quant/q6_k.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// Scale index of every int16 product lane: step s (0..3, 64 elements) covers groups 4s..4s+3.
struct GroupIdx {
  alignas(64) int16_t idx[4][32];
};
constexpr GroupIdx make_group_idx() {
  GroupIdx g{};
  for (int s = 0; s < 4; ++s) {
    for (int i = 0; i < 32; ++i) g.idx[s][i] = static_cast<int16_t>(4 * s + i / 8);
  }
  return g;
}
constexpr GroupIdx kGroupIdx = make_group_idx();

// R weight rows against one activation row, each row with its own accumulator and the one-row
// order; the activation loads are shared. The one-row dot is R = 1, so the kDotRows kernel equals
// it bit for bit by construction.
template <int R>
void dot_rows(int64_t n, const BlockQ6_K* const* x, const BlockQ8_K* y, float* out) {
  const int64_t nb = n / kQK_K;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i m_hi = _mm512_set1_epi8(0x30);
  // Bits 0-1 / 2-3 of qh go to bits 4-5 for the first 64 elements of a half (shift left 4 / 2),
  // bits 4-5 / 6-7 for the second 64 (shift right 0 / 2).
  const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  __m512i group_idx[4];
  for (int s = 0; s < 4; ++s) group_idx[s] = _mm512_load_si512(kGroupIdx.idx[s]);
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].bsums));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K& xb = x[r][b];
      // One row is one stream, which matmul prefetches; R streams are prefetched here.
      if constexpr (R > 1) prefetch_block(&xb, sizeof(BlockQ6_K));
      int16_t dbits;
      std::memcpy(&dbits, &xb.d, sizeof dbits);
      const __m512 d =
          _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi16(dbits)), _mm512_set1_ps(y[b].d));
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales)));
      const __m256i offs = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
      __m512i sumi = _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offs));
      sumi = _mm512_inserti64x4(sumi, _mm256_setzero_si256(), 1);
      const __m512i sc = _mm512_castsi256_si512(sc16);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m512i ql = _mm512_loadu_si512(xb.ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qh + 32 * h)));
        const __m512i v0 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                           _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m_hi));
        const __m512i v1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                           _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m_hi));
        const int8_t* q8 = y[b].qs + 128 * h;
        const __m512i p0 = _mm512_maddubs_epi16(v0, _mm512_loadu_si512(q8));
        const __m512i p1 = _mm512_maddubs_epi16(v1, _mm512_loadu_si512(q8 + 64));
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(group_idx[2 * h], sc), p0);
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_permutexvar_epi16(group_idx[2 * h + 1], sc), p1);
      }
      acc[r] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    out[r] = simd::hsum(
        _mm256_add_ps(_mm512_castps512_ps256(acc[r]), _mm512_extractf32x8_ps(acc[r], 1)));
  }
}

}  // namespace

float vec_dot_q6_k_q8_k_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  float y;
  dot_rows<1>(n, &x, static_cast<const BlockQ8_K*>(a), &y);
  return y;
}

void vec_dot_q6_k_q8_k_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* out) {
  const BlockQ6_K* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_K*>(a), out);
}

}  // namespace lb
