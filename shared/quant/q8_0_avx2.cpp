// AVX2 Q8_0 . Q8_0 in ggml's order (see q8_0.hpp), bit-identical to the scalar reference: per
// block an exact int8 dot as eight int32 lanes (vpmaddubsw on |w| and the sign-moved a, then
// vpmaddwd), converted and fused into one float accumulator with d_w * d_a (F16C, two blocks'
// scales at a time). One accumulator, as in ggml: a second one would change the sums.
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
  simd::sum_q8_0_rows<kDotRows>(
      x, static_cast<const BlockQ8_0*>(a), n / kQK8_0,
      [](const BlockQ8_0& xb, __m256i ab) { return int_dot(xb, ab); }, y);
}

}  // namespace lb
