// AVX-512 level (AVX512-VNNI on 256-bit registers, AVX512-BW permutes) Q4_0 . Q8_0 in the order of
// q4_0.hpp, with q4_0_avx2.cpp's layout: eight blocks per step, blocks 2p and 2p+1 in one register,
// three vphaddd leaving the exact dots of blocks 0, 2, 4, 6, 1, 3, 5, 7 in one register, one
// conversion and one fma per eight blocks. vpdpbusd does the integer dots; the halves of eight
// blocks come out of two (weights) or four (activations) loads with one vpermt2w each, which is
// far fewer instructions than assembling them one by one. 512-bit arithmetic measured no faster on
// Zen 4 (it splits it), so only the permutes use zmm registers.
#include "quant/prefetch.hpp"
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m512i load512(const void* p, size_t offset) {
  return _mm512_loadu_si512(static_cast<const uint8_t*>(p) + offset);
}

// d of weight blocks x[0..7] as floats, lanes in block order 0, 2, 4, 6, 1, 3, 5, 7: block k's
// half is 16-bit word 9k of the group's 144 bytes (only the first 128 are read).
inline __m256 weight_scales(const BlockQ4_0* x) {
  const __m512i idx = _mm512_setr_epi32(0 | 18 << 16, 36 | 54 << 16, 9 | 27 << 16, 45 | 63 << 16, 0,
                                        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i h = _mm512_permutex2var_epi16(load512(x, 0), idx, load512(x, 64));
  return _mm256_cvtph_ps(_mm512_castsi512_si128(h));
}

// Four pairs of per-block int32 partial sums -> the dots of blocks 0, 2, 4, 6, 1, 3, 5, 7.
inline __m256i fold(const __m256i v[4]) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
}

// R weight rows (x[r] + b) against one activation row: per group of eight blocks the activations
// are loaded once, with -8 * sum(a) as the starting value of every row's vpdpbusd. Always
// inlined: GCC otherwise calls it once per group (it has two callers) with the accumulators in
// memory, which cost a sixth of the speed.
template <int R>
__attribute__((always_inline)) inline void group_rows(const BlockQ4_0* const* x, int64_t b,
                                                      const BlockQ8_0* y, __m256* acc) {
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i zero = _mm256_setzero_si256();
  __m256i a_lo[4], a_hi[4], init[4];
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    a_lo[p] = simd::load_pair(y[2 * p].qs, y[2 * p + 1].qs);
    a_hi[p] = simd::load_pair(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
    init[p] = _mm256_sub_epi32(
        zero, _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, eight, a_lo[p]), eight, a_hi[p]));
  }
  const __m256 da = simd::scales8(y);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const BlockQ4_0* xb = x[r] + b;
    // One row is one stream, which matmul prefetches; R streams are prefetched here.
    if constexpr (R > 1) prefetch_block(xb, 8 * sizeof(BlockQ4_0));
    __m256i v[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      __m256i lo, hi;
      simd::split_nibbles(simd::load_pair(xb[2 * p].qs, xb[2 * p + 1].qs), &lo, &hi);
      v[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(init[p], lo, a_lo[p]), hi, a_hi[p]);
    }
    acc[r] =
        _mm256_fmadd_ps(_mm256_mul_ps(weight_scales(xb), da), _mm256_cvtepi32_ps(fold(v)), acc[r]);
  }
}

template <int R>
void dot_rows(int64_t n, const BlockQ4_0* const* x, const BlockQ8_0* y, float* out) {
  simd::grouped_dot_rows<R>(n / kQK4_0, x, y, out,
                            [](const BlockQ4_0* const* xs, int64_t b, const BlockQ8_0* ys,
                               __m256* acc) { group_rows<R>(xs, b, ys, acc); });
}

// One activation group (eight blocks) prepared for the multi-row kernel once for all the weight
// rows it meets: the quants in the pair layout, 8 * sum(a) per block and the scales, in lane order.
struct ActGroup {
  __m256i lo[4], hi[4];
  __m256i sum8;
  __m256 d;
};

// The multi-row kernel's steps (simd::grouped_dot_multi): prepare fills an ActGroup; add fuses
// one weight group against T prepared activation groups, the nibbles unpacked once, and per
// activation row eight vpdpbusd take the prepared quants straight from memory.
struct Groups {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  using Act = ActGroup;

  __attribute__((always_inline)) static void prepare(const BlockQ8_0* y, ActGroup* g) {
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i zero = _mm256_setzero_si256();
    __m256i s[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      g->lo[p] = simd::load_pair(y[2 * p].qs, y[2 * p + 1].qs);
      g->hi[p] = simd::load_pair(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
      s[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, eight, g->lo[p]), eight, g->hi[p]);
    }
    g->sum8 = fold(s);
    g->d = simd::scales8(y);
  }

  template <int T>
  __attribute__((always_inline)) static void add(const BlockQ4_0* x,
                                                 const ActGroup (*a)[simd::kGroupPass], int g,
                                                 __m256* acc) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i lo[4], hi[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      simd::split_nibbles(simd::load_pair(x[2 * p].qs, x[2 * p + 1].qs), &lo[p], &hi[p]);
    }
    const __m256 dw = weight_scales(x);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const ActGroup& ag = a[t][g];
      __m256i v[4];
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        v[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, lo[p], ag.lo[p]), hi[p], ag.hi[p]);
      }
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, ag.d),
                               _mm256_cvtepi32_ps(_mm256_sub_epi32(fold(v), ag.sum8)), acc[t]);
    }
  }
};

}  // namespace

float vec_dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  float y;
  dot_rows<1>(n, &x, static_cast<const BlockQ8_0*>(a), &y);
  return y;
}

void vec_dot_q4_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y) {
  const BlockQ4_0* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_0*>(a), y);
}

void vec_dot_q4_0_q8_0_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride) {
  simd::grouped_dot_multi<Groups>(n / kQK4_0, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride);
}

}  // namespace lb
