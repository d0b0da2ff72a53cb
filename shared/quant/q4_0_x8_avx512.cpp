// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_0_X8 . Q8_0_X8 (q4_0_x8.hpp). A 32-bit lane
// is a block throughout: per group, four loads give the quants of eight blocks, vpdpbusd sums
// each block's products in its own lane (starting from -8 * sum(a), so the unsigned nibbles need
// no offset), and one conversion and one fma per eight blocks finish Q4_0's order. No permutes,
// no horizontal adds: what the Q4_0 kernels spend most of their instructions on.
#include "quant/prefetch.hpp"
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

struct Acc {
  __m256 v = _mm256_setzero_ps();
};

struct Kernels {
  using W = BlockQ4_0x8;
  using A = BlockQ8_0x8;

  template <int R>
  static void rows(int64_t n, const W* const* x, const A* y, float* out) {
    __m256 acc[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        // One row is one stream, which matmul prefetches; R streams are prefetched here.
        if constexpr (R > 1) prefetch_block(&x[r][g], sizeof(W));
        Nibbles q;
        simd::unpack_nibbles(x[r][g].qs, &q);
        acc[r] = fused(q, weight_scales(x[r][g]), y[g], acc[r]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) out[r] = simd::tree8(acc[r]);
  }

  template <int T>
  static void acts(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                   size_t a_stride, float* y, size_t y_stride) {
    simd::multi_pass<T, W, A, Acc>(
        n / kQK4_0_X8, w, w_stride, n_rows, act, a_stride, y, y_stride,
        [](const W& x, const A* const* a, int64_t g, Acc* acc) {
          Nibbles q;
          simd::unpack_nibbles(x.qs, &q);
          const __m256 dw = weight_scales(x);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) acc[t].v = fused(q, dw, a[t][g], acc[t].v);
        },
        [](const Acc& acc) { return simd::tree8(acc.v); });
  }
};

}  // namespace

void quantize_row_q8_0_x8_avx512(const float* src, void* dst, int64_t n) {
  // quantize_row_q8_0 per block: the same maximum, scale and products, rounded to nearest even.
  BlockQ8_0x8* y = static_cast<BlockQ8_0x8*>(dst);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t g = 0; g < n / kQK4_0_X8; ++g) {
    __m512i q[8][2];
    for (int k = 0; k < 8; ++k) {
      const float* x = src + g * kQK4_0_X8 + 32 * k;
      const __m512 x0 = _mm512_loadu_ps(x);
      const __m512 x1 = _mm512_loadu_ps(x + 16);
      const float amax = _mm512_reduce_max_ps(
          _mm512_max_ps(_mm512_andnot_ps(sign, x0), _mm512_andnot_ps(sign, x1)));
      const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
      y[g].d[k] = fp16_to_fp32(fp32_to_fp16(amax / 127.0f));
      const __m512 idv = _mm512_set1_ps(id);
      q[k][0] = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x0, idv),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[k][1] = _mm512_cvt_roundps_epi32(_mm512_mul_ps(x1, idv),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      y[g].neg8sum[k] = -8 * _mm512_reduce_add_epi32(_mm512_add_epi32(q[k][0], q[k][1]));
    }
    simd::store_x8_quants(q, y[g].lo, y[g].hi);
  }
}

float vec_dot_q4_0_x8_q8_0_x8_avx512(int64_t n, const void* w, const void* a) {
  return simd::x8_dot<Kernels>(n, w, a);
}

void vec_dot_q4_0_x8_q8_0_x8_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                         float* y) {
  simd::x8_dot_rows<Kernels>(n, w, w_stride, a, y);
}

void vec_dot_q4_0_x8_q8_0_x8_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                          const void* a, size_t a_stride, int n_act, float* y,
                                          size_t y_stride) {
  simd::x8_dot_multi<Kernels>(n, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride);
}

}  // namespace lb
