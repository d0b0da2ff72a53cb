// AVX2 Q4_0 . Q8_0 in the order of q4_0.hpp, eight blocks per step. Blocks 2p and 2p+1 share a
// register (one 128-bit lane each): their low nibbles against their first 16 activations, their
// high nibbles against the last 16, giving four int32 partial sums per block. Three vphaddd fold
// the four pairs into one register holding the exact dots of blocks 0, 2, 4, 6, 1, 3, 5, 7: the
// scalar reference's accumulators in that lane order, so one conversion and one fma serve eight
// blocks and simd::hsum adds the lanes as the reference adds its accumulators. The integer dots
// sum(q * a) - 8 * sum(a) are exact (16-bit partials stay below 2 * 2 * 15 * 127 + 2 * 2 * 8 * 127
// < 32768).
#include "quant/prefetch.hpp"
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// Eight activation blocks as the kernels use them: the quants in pairs, 8 * sum(a) per pair
// (16-bit), and the scales in lane order. Prepared once for every weight row they meet.
struct ActGroup {
  __m256i lo[4], hi[4], a8[4];
  __m256 d;
};

// The steps simd_x86.hpp's Q4_0 loops take (see simd::q4_0_group_rows).
struct Groups {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  using Act = ActGroup;

  __attribute__((always_inline)) static void prepare(const BlockQ8_0* y, ActGroup* g) {
    const __m256i eight = _mm256_set1_epi8(8);
    simd::quant_pairs(y, g->lo, g->hi);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      g->a8[p] = _mm256_add_epi16(_mm256_maddubs_epi16(eight, g->lo[p]),
                                  _mm256_maddubs_epi16(eight, g->hi[p]));
    }
    g->d = simd::scales8(y);
  }

  __attribute__((always_inline)) static __m256 weight_scales(const BlockQ4_0* x) {
    return simd::scales8(x);
  }

  // d_w * d_a * sum((q - 8) * a) of the group fused into acc.
  __attribute__((always_inline)) static void fuse(const simd::NibblePairs& w, __m256 dw,
                                                  const ActGroup& a, __m256* acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i v[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m256i qa = _mm256_add_epi16(_mm256_maddubs_epi16(w.lo[p], a.lo[p]),
                                          _mm256_maddubs_epi16(w.hi[p], a.hi[p]));
      v[p] = _mm256_madd_epi16(_mm256_sub_epi16(qa, a.a8[p]), ones);
    }
    *acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, a.d), _mm256_cvtepi32_ps(simd::fold_pairs(v)), *acc);
  }
};

}  // namespace

float vec_dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  return simd::q4_0_dot<Groups>(n / kQK4_0, w, a);
}

void vec_dot_q4_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out) {
  simd::q4_0_dot_rows<Groups>(n / kQK4_0, w, w_stride, a, out);
}

void vec_dot_q4_0_q8_0_multi_avx2(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                  const void* a, size_t a_stride, int n_act, float* y,
                                  size_t y_stride) {
  simd::q4_0_dot_multi<Groups>(n / kQK4_0, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride);
}

}  // namespace lb
