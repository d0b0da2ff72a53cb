// AVX-512 level (AVX512-VNNI on 256-bit registers) Q8_0 . Q8_0 in ggml's order (see q8_0.hpp),
// bit-identical to the scalar reference: per block one vpdpbusd on |w| and the sign-moved
// activations (exact; w = -128 works as |w| reads as unsigned 128) gives the eight int32 lanes
// ggml's VNNI path gives, fused into one float accumulator with d_w * d_a (F16C). 512-bit
// registers measured no faster on Zen 4.
#include "quant/prefetch.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// The exact int8 dot of a weight block with activation quants a, as eight float lanes.
struct IntDot {
  __m256 operator()(const BlockQ8_0& x, __m256i a) const {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w),
                                                  _mm256_sign_epi8(a, w)));
  }
};

}  // namespace

float vec_dot_q8_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  return simd::q8_0_dot<BlockQ8_0>(n / kQK8_0, w, a, IntDot{});
}

namespace {

// vec_dot_q8_0_q8_0_avx512 for T activation rows at once: each row's accumulator takes exactly
// that function's fmas in its order; |w| and the weight loads are shared.
template <int T>
void dot_multi(int64_t n, const BlockQ8_0* x, const uint8_t* act, size_t a_stride, float* y,
               size_t y_stride) {
  const BlockQ8_0* a[T];
  __m256 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    a[t] = reinterpret_cast<const BlockQ8_0*>(act + size_t(t) * a_stride);
    acc[t] = _mm256_setzero_ps();
  }
  const int64_t nb = n / kQK8_0;
  for (int64_t b = 0; b < nb; ++b) {
    // d_w * d_a is one float product whichever way the conversions are grouped; the single-row
    // kernel converts four halves at once, here the weight's is converted once for all rows.
    const float dw = _cvtsh_ss(x[b].d);
    prefetch_block(&x[b], sizeof(BlockQ8_0));
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i w_abs = _mm256_sign_epi8(w, w);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].qs));
      const __m256 dot = _mm256_cvtepi32_ps(
          _mm256_dpbusd_epi32(_mm256_setzero_si256(), w_abs, _mm256_sign_epi8(av, w)));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * _cvtsh_ss(a[t][b].d)), dot, acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = simd::hsum(acc[t]);
}

}  // namespace

void vec_dot_q8_0_q8_0_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride) {
  const uint8_t* act = static_cast<const uint8_t*>(a);
  simd::with_count(n_act, [&](auto t) {
    for (int64_t r = 0; r < n_rows; ++r) {
      const BlockQ8_0* x =
          reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride);
      dot_multi<decltype(t)::value>(n, x, act, a_stride, y + r, y_stride);
    }
  });
}

void vec_dot_q8_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y) {
  simd::q8_0_dot_rows<BlockQ8_0>(n / kQK8_0, w, w_stride, a, y, IntDot{});
}

}  // namespace lb
