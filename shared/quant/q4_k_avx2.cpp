// AVX2 Q4_K . Q8_K: per super-block, vpmaddubsw (4-bit x int8) then vpmaddwd with the sub-block
// scale gives exact int32 lanes; the min term is mins . (pairwise bsums), also exact.
#include "quant/q4_k_simd.hpp"

namespace lb {

namespace {

// Two sub-blocks' scaled dots added to sumi (q4_k_dot_rows): vpmaddwd each, then adds.
inline __m256i scaled_dots(__m256i sumi, __m256i sc_lo, __m256i p_lo, __m256i sc_hi, __m256i p_hi) {
  return _mm256_add_epi32(
      sumi, _mm256_add_epi32(_mm256_madd_epi16(sc_lo, p_lo), _mm256_madd_epi16(sc_hi, p_hi)));
}

}  // namespace

float vec_dot_q4_k_q8_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  float y;
  simd::q4_k_dot_rows<1>(n, &x, static_cast<const BlockQ8_K*>(a), &y, scaled_dots);
  return y;
}

void vec_dot_q4_k_q8_k_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out) {
  const BlockQ4_K* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  simd::q4_k_dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_K*>(a), out, scaled_dots);
}

}  // namespace lb
