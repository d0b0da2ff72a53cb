// AVX2 Q8_0 . Q8_0 in ggml's order (see q8_0.hpp), bit-identical to the scalar reference: per
// block an exact int8 dot as eight int32 lanes (vpmaddubsw on |w| and the sign-moved a, then
// vpmaddwd), converted and fused into one float accumulator with d_w * d_a (F16C, two blocks'
// scales at a time). One accumulator, as in ggml: a second one would change the sums.
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m256 int_dot(const BlockQ8_0& x, const BlockQ8_0& y) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs));
  return _mm256_cvtepi32_ps(simd::dot_i8_32(w, a));
}

}  // namespace

float vec_dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK8_0;
  __m256 acc = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m128 s = simd::scale_pair(x[b].d, x[b + 1].d, y[b].d, y[b + 1].d);
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), int_dot(x[b], y[b]), acc);
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(s)), int_dot(x[b + 1], y[b + 1]),
                          acc);
  }
  if (b < nb) {
    const __m128 s = simd::scale_pair(x[b].d, x[b].d, y[b].d, y[b].d);
    acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), int_dot(x[b], y[b]), acc);
  }
  return simd::hsum(acc);  // = ggml's hsum_float_8
}

}  // namespace lb
