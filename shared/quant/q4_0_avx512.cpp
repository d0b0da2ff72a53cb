// AVX-512 level (AVX512-VNNI on 256-bit registers, AVX512-BW permutes) Q4_0 . Q8_0 in the order of
// q4_0.hpp, with q4_0_avx2.cpp's layout: eight blocks per step, blocks 2p and 2p+1 in one register,
// three vphaddd leaving the exact dots of blocks 0, 2, 4, 6, 1, 3, 5, 7 in one register, one
// conversion and one fma per eight blocks. vpdpbusd does the integer dots; the eight F16 scales of
// a weight group come out of two loads and one vpermt2w, far fewer instructions than assembling
// them one by one. 512-bit arithmetic measured no faster on Zen 4 (it splits it), so only the
// permute uses zmm registers.
#include "quant/prefetch.hpp"
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// Eight activation blocks as the kernels use them: the quants in pairs, -8 * sum(a) per pair (the
// starting value of every weight row's vpdpbusd chain) and the scales in lane order. Prepared
// once for every weight row they meet.
struct ActGroup {
  __m256i lo[4], hi[4], init[4];
  __m256 d;
};

// The steps simd_x86.hpp's Q4_0 loops take (see simd::q4_0_group_rows).
struct Groups {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  using Act = ActGroup;

  __attribute__((always_inline)) static void prepare(const BlockQ8_0* y, ActGroup* g) {
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i zero = _mm256_setzero_si256();
    simd::quant_pairs(y, g->lo, g->hi);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      g->init[p] = _mm256_sub_epi32(
          zero, _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, eight, g->lo[p]), eight, g->hi[p]));
    }
    g->d = simd::scales8(y);
  }

  // d of weight blocks x[0..7] as floats, lanes in block order 0, 2, 4, 6, 1, 3, 5, 7: block k's
  // half is 16-bit word 9k of the group's 144 bytes (only the first 128 are read).
  __attribute__((always_inline)) static __m256 weight_scales(const BlockQ4_0* x) {
    const __m512i idx = _mm512_setr_epi32(0 | 18 << 16, 36 | 54 << 16, 9 | 27 << 16, 45 | 63 << 16,
                                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i h = _mm512_permutex2var_epi16(
        _mm512_loadu_si512(x), idx, _mm512_loadu_si512(reinterpret_cast<const uint8_t*>(x) + 64));
    return _mm256_cvtph_ps(_mm512_castsi512_si128(h));
  }

  // d_w * d_a * sum((q - 8) * a) of the group fused into acc: eight vpdpbusd, starting from the
  // prepared -8 * sum(a).
  __attribute__((always_inline)) static void fuse(const simd::NibblePairs& w, __m256 dw,
                                                  const ActGroup& a, __m256* acc) {
    __m256i v[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      v[p] =
          _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(a.init[p], w.lo[p], a.lo[p]), w.hi[p], a.hi[p]);
    }
    *acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, a.d), _mm256_cvtepi32_ps(simd::fold_pairs(v)), *acc);
  }
};

}  // namespace

float vec_dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  return simd::q4_0_dot<Groups>(n / kQK4_0, w, a);
}

void vec_dot_q4_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y) {
  simd::q4_0_dot_rows<Groups>(n / kQK4_0, w, w_stride, a, y);
}

void vec_dot_q4_0_q8_0_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride) {
  simd::q4_0_dot_multi<Groups>(n / kQK4_0, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride);
}

}  // namespace lb
