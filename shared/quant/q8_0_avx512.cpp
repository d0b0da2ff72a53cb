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

inline __m256 int_dot(const BlockQ8_0& x, __m256i a) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  return _mm256_cvtepi32_ps(
      _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)));
}

inline __m256 int_dot(const BlockQ8_0& x, const BlockQ8_0& y) {
  return int_dot(x, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs)));
}

}  // namespace

float vec_dot_q8_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  return simd::sum_q8_0_blocks(x, y, n / kQK8_0, [&](int64_t b) { return int_dot(x[b], y[b]); });
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

namespace {

// vec_dot_q8_0_q8_0_avx512 for R weight rows: each row's accumulator takes exactly that
// function's fmas in its order (one chain per row, so R chains hide the fma latency that bounds
// a single row); the activation loads are shared.
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

void vec_dot_q8_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y) {
  const BlockQ8_0* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_0*>(a), y);
}

}  // namespace lb
