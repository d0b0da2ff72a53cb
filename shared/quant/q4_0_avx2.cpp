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

// d_w * d_a * sum((q - 8) * a) of blocks b..b+7 of each of R weight rows fused into acc[r]
// (lanes in the order above); the activation loads and 8 * sum(a) are shared by the rows.
template <int R>
__attribute__((always_inline)) inline void group_rows(const BlockQ4_0* const* x, int64_t b,
                                                      const BlockQ8_0* y, __m256* acc) {
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i a_lo[4], a_hi[4], a8[4];
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    a_lo[p] = simd::load_pair(y[2 * p].qs, y[2 * p + 1].qs);
    a_hi[p] = simd::load_pair(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
    a8[p] = _mm256_add_epi16(_mm256_maddubs_epi16(eight, a_lo[p]),
                             _mm256_maddubs_epi16(eight, a_hi[p]));
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
      const __m256i qa =
          _mm256_add_epi16(_mm256_maddubs_epi16(lo, a_lo[p]), _mm256_maddubs_epi16(hi, a_hi[p]));
      v[p] = _mm256_madd_epi16(_mm256_sub_epi16(qa, a8[p]), ones);
    }
    const __m256i dots =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    acc[r] =
        _mm256_fmadd_ps(_mm256_mul_ps(simd::scales8(xb), da), _mm256_cvtepi32_ps(dots), acc[r]);
  }
}

// R weight rows against one activation row. The one-row dot is R = 1, so the kDotRows kernel
// equals it bit for bit by construction.
template <int R>
void dot_rows(int64_t n, const BlockQ4_0* const* x, const BlockQ8_0* y, float* out) {
  simd::grouped_dot_rows<R>(n / kQK4_0, x, y, out,
                            [](const BlockQ4_0* const* xs, int64_t b, const BlockQ8_0* ys,
                               __m256* acc) { group_rows<R>(xs, b, ys, acc); });
}

// One activation group (eight blocks) prepared for the multi-row kernel once for all the weight
// rows it meets: what group_rows computes of the activations before its row loop.
struct ActGroup {
  __m256i lo[4], hi[4], a8[4];
  __m256 d;
};

// The multi-row kernel's steps (simd::grouped_dot_multi): prepare takes what group_rows computes
// of eight activation blocks before its row loop; add fuses one weight group against T prepared
// activation groups, each as group_rows fuses a row, the nibbles and the weight scales unpacked
// once for all of them.
struct Groups {
  using W = BlockQ4_0;
  using A = BlockQ8_0;
  using Act = ActGroup;

  __attribute__((always_inline)) static void prepare(const BlockQ8_0* y, ActGroup* g) {
    const __m256i eight = _mm256_set1_epi8(8);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      g->lo[p] = simd::load_pair(y[2 * p].qs, y[2 * p + 1].qs);
      g->hi[p] = simd::load_pair(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
      g->a8[p] = _mm256_add_epi16(_mm256_maddubs_epi16(eight, g->lo[p]),
                                  _mm256_maddubs_epi16(eight, g->hi[p]));
    }
    g->d = simd::scales8(y);
  }

  template <int T>
  __attribute__((always_inline)) static void add(const BlockQ4_0* x,
                                                 const ActGroup (*a)[simd::kGroupPass], int g,
                                                 __m256* acc) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i lo[4], hi[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      simd::split_nibbles(simd::load_pair(x[2 * p].qs, x[2 * p + 1].qs), &lo[p], &hi[p]);
    }
    const __m256 dw = simd::scales8(x);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const ActGroup& ag = a[t][g];
      __m256i v[4];
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        const __m256i qa = _mm256_add_epi16(_mm256_maddubs_epi16(lo[p], ag.lo[p]),
                                            _mm256_maddubs_epi16(hi[p], ag.hi[p]));
        v[p] = _mm256_madd_epi16(_mm256_sub_epi16(qa, ag.a8[p]), ones);
      }
      const __m256i dots =
          _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, ag.d), _mm256_cvtepi32_ps(dots), acc[t]);
    }
  }
};

}  // namespace

float vec_dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  float y;
  dot_rows<1>(n, &x, static_cast<const BlockQ8_0*>(a), &y);
  return y;
}

void vec_dot_q4_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out) {
  const BlockQ4_0* x[kDotRows];
  simd::dot_row_blocks(w, w_stride, x);
  dot_rows<kDotRows>(n, x, static_cast<const BlockQ8_0*>(a), out);
}

void vec_dot_q4_0_q8_0_multi_avx2(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                  const void* a, size_t a_stride, int n_act, float* y,
                                  size_t y_stride) {
  simd::grouped_dot_multi<Groups>(n / kQK4_0, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride);
}

}  // namespace lb
