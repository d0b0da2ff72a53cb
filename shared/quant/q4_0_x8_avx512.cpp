// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_0_X8 . Q8_0_X8 (q4_0_x8.hpp). A 32-bit lane
// is a block throughout: per group, four loads give the quants of eight blocks, vpdpbusd sums
// each block's products in its own lane (starting from -8 * sum(a), so the unsigned nibbles need
// no offset), and one conversion and one fma per eight blocks finish Q4_0's order. No permutes,
// no horizontal adds: what the Q4_0 kernels spend most of their instructions on.
#include "quant/q4_0_x8.hpp"
#include "quant/x8_simd.hpp"

namespace lb {
namespace {

using simd::Nibbles;

inline __m256 weight_scales(const BlockQ4_0x8& w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d)));
}

// acc += d_w * d_a * (exact dot of each block), lane by lane.
__attribute__((always_inline)) inline __m256 fused(const Nibbles& q, __m256 dw,
                                                   const BlockQ8_0x8& a, __m256 acc) {
  const __m256i p = simd::lane_dots(q, a.lo, a.hi, simd::load256(a.neg8sum));
  return _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(a.d)), _mm256_cvtepi32_ps(p), acc);
}

// R weight rows against one activation row.
template <int R>
void dot_rows(int64_t n, const BlockQ4_0x8* const* x, const BlockQ8_0x8* y, float* out) {
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      Nibbles q;
      simd::unpack_nibbles(x[r][g].qs, &q);
      acc[r] = fused(q, weight_scales(x[r][g]), y[g], acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = simd::tree8(acc[r]);
}

struct Acc {
  __m256 v = _mm256_setzero_ps();
};

template <int T>
void dot_acts(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
              size_t a_stride, float* y, size_t y_stride) {
  simd::multi_pass<T, BlockQ4_0x8, BlockQ8_0x8, Acc>(
      n / kQK4_0_X8, w, w_stride, n_rows, act, a_stride, y, y_stride,
      [](const BlockQ4_0x8& x, const BlockQ8_0x8* const* a, int64_t g, Acc* acc) {
        Nibbles q;
        simd::unpack_nibbles(x.qs, &q);
        const __m256 dw = weight_scales(x);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[t].v = fused(q, dw, a[t][g], acc[t].v);
      },
      [](const Acc& acc) { return simd::tree8(acc.v); });
}

}  // namespace

float vec_dot_q4_0_x8_q8_0_x8_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ4_0x8* x = static_cast<const BlockQ4_0x8*>(w);
  float y;
  dot_rows<1>(n, &x, static_cast<const BlockQ8_0x8*>(a), &y);
  return y;
}

void vec_dot_q4_0_x8_q8_0_x8_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                         float* y) {
  const BlockQ4_0x8* x[kDotRows];
  for (int r = 0; r < kDotRows; ++r) {
    x[r] = reinterpret_cast<const BlockQ4_0x8*>(static_cast<const uint8_t*>(w) + r * w_stride);
  }
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_0x8*>(a), y);
}

void vec_dot_q4_0_x8_q8_0_x8_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                          const void* a, size_t a_stride, int n_act, float* y,
                                          size_t y_stride) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* act = static_cast<const uint8_t*>(a);
  simd::with_act_count(n_act, [&](auto t) {
    dot_acts<decltype(t)::value>(n, wb, w_stride, n_rows, act, a_stride, y, y_stride);
  });
}

}  // namespace lb
