// AVX2 Q8_0 . Q8_0: per block an exact int8 dot (vpmaddubsw on |w| and sign-moved a, then
// vpmaddwd), scaled by d_w * d_a (F16C, two blocks at a time) into two float accumulators.
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m256i int_dot(const BlockQ8_0& x, const BlockQ8_0& y) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs));
  return simd::dot_i8_32(w, a);
}

}  // namespace

float vec_dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK8_0;
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m128 s = simd::scale_pair(x[b].d, x[b + 1].d, y[b].d, y[b + 1].d);
    acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), _mm256_cvtepi32_ps(int_dot(x[b], y[b])), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(s)),
                           _mm256_cvtepi32_ps(int_dot(x[b + 1], y[b + 1])), acc1);
  }
  if (b < nb) {
    const __m128 s = simd::scale_pair(x[b].d, x[b].d, y[b].d, y[b].d);
    acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), _mm256_cvtepi32_ps(int_dot(x[b], y[b])), acc0);
  }
  return simd::hsum(_mm256_add_ps(acc0, acc1));
}

}  // namespace lb
