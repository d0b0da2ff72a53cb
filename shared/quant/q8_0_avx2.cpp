// AVX2 Q8_0 . Q8_0 in ggml's order (see q8_0.hpp), bit-identical to the scalar reference: per
// block an exact int8 dot as eight int32 lanes (vpmaddubsw on |w| and the sign-moved a, then
// vpmaddwd), converted and fused into one float accumulator with d_w * d_a (F16C, two blocks'
// scales at a time). One accumulator, as in ggml: a second one would change the sums.
#include "quant/prefetch.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m256 int_dot(const BlockQ8_0& x, __m256i a) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  return _mm256_cvtepi32_ps(simd::dot_i8_32(w, a));
}

inline __m256 int_dot(const BlockQ8_0& x, const BlockQ8_0& y) {
  return int_dot(x, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs)));
}

// vec_dot_q8_0_q8_0_avx2 for R weight rows: each row's accumulator takes exactly that function's
// fmas in its order; the activation loads are shared, and the R weight streams prefetched.
template <int R>
void dot_rows(int64_t n, const BlockQ8_0* const* x, const BlockQ8_0* y, float* out) {
  const int64_t nb = n / kQK8_0;
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b + 1].qs));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      prefetch_block(&x[r][b], 2 * sizeof(BlockQ8_0));
      const __m128 s = simd::scale_pair(x[r][b].d, x[r][b + 1].d, y[b].d, y[b + 1].d);
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), int_dot(x[r][b], a0), acc[r]);
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(s)), int_dot(x[r][b + 1], a1),
                               acc[r]);
    }
  }
  if (b < nb) {
    const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m128 s = simd::scale_pair(x[r][b].d, x[r][b].d, y[b].d, y[b].d);
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(s), int_dot(x[r][b], a0), acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = simd::hsum(acc[r]);
}

}  // namespace

float vec_dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  return simd::sum_q8_0_blocks(x, y, n / kQK8_0, [&](int64_t b) { return int_dot(x[b], y[b]); });
}

void vec_dot_q8_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* y) {
  const BlockQ8_0* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_0*>(a), y);
}

}  // namespace lb
