// AVX-512 level (AVX512-VNNI on 256-bit registers, BMI2) Q4_K_X8 . Q8_K_X8 (q4_k_x8.hpp). A
// 32-bit lane is a sub-block throughout: four loads give a super-block's quants, vpdpbusd sums
// each sub-block in its lane, and the scales and mins (one pdep per eight) multiply lane by lane:
// the sub-blocks' dots beside the activation's quant sums in one 512-bit register, times the
// scales beside the mins, folded by one fma into the accumulators.
#include "quant/prefetch.hpp"
#include "quant/q4_k_x8.hpp"
#include "quant/x8_simd.hpp"

namespace lb {
namespace {

using simd::Nibbles;

// A block's scales (low 64 bits, a byte each) and mins (high 64 bits).
inline __m128i scales_mins(const BlockQ4_Kx8& x) {
  uint64_t lo, hi;
  std::memcpy(&lo, x.scales, 8);      // the 48 bits of scales, then two bytes of mins
  std::memcpy(&hi, x.scales + 4, 8);  // two bytes of scales, then the 48 bits of mins
  const uint64_t six = 0x3f3f3f3f3f3f3f3full;
  return _mm_set_epi64x(static_cast<long long>(_pdep_u64(hi >> 16, six)),
                        static_cast<long long>(_pdep_u64(lo, six)));
}

// The accumulators of one (weight row, activation row) pair: lanes 0-7 the scale part of
// sub-blocks 0-7, lanes 8-15 their min part. One 512-bit multiply, convert and fma serve both,
// where two 256-bit ones each took twice the uops. In L2, builds taken in turn: the one-row and
// four-row kernels 1.23x as fast, eight activation rows 1.47x; 1.1B prompts then ran 1.34x and
// 8-row decode steps 1.28x as fast (one-row decode, bound by memory, about 1.01x).
using Acc = __m512;

// A weight block unpacked once for every activation row it meets.
struct WeightBlock {
  Nibbles q;
  __m512i sc_m;   // the scales in lanes 0-7, the mins in lanes 8-15
  __m512 d_dmin;  // d in lanes 0-7, dmin in lanes 8-15
};

__attribute__((always_inline)) inline void unpack(const BlockQ4_Kx8& x, WeightBlock* w) {
  simd::unpack_nibbles(x.qs, &w->q);
  w->sc_m = _mm512_cvtepu8_epi32(scales_mins(x));
  uint32_t dd;
  std::memcpy(&dd, &x.d, sizeof dd);
  const __m128 d_dmin = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));
  w->d_dmin =
      _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                            _mm512_castps128_ps512(d_dmin));
}

__attribute__((always_inline)) inline void fused(const WeightBlock& w, const BlockQ8_Kx8& a,
                                                 Acc* acc) {
  const __m256i p = simd::lane_dots(w.q, a.lo, a.hi, _mm256_setzero_si256());
  const __m512i p_s = _mm512_inserti64x4(_mm512_castsi256_si512(p), simd::load256(a.sums), 1);
  const __m512 dv = _mm512_mul_ps(w.d_dmin, _mm512_set1_ps(a.d));
  *acc = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(_mm512_mullo_epi32(w.sc_m, p_s)), *acc);
}

inline float finish(const Acc& acc) {
  return simd::tree8(_mm512_castps512_ps256(acc)) - simd::tree8(_mm512_extractf32x8_ps(acc, 1));
}

struct Kernels {
  using W = BlockQ4_Kx8;
  using A = BlockQ8_Kx8;

  template <int R>
  static void rows(int64_t n, const W* const* x, const A* y, float* out) {
    Acc acc[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / kQK_K; ++b) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        // One row is one stream, which matmul prefetches; R streams are prefetched here.
        if constexpr (R > 1) prefetch_block(&x[r][b], sizeof(W));
        WeightBlock w;
        unpack(x[r][b], &w);
        fused(w, y[b], &acc[r]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) out[r] = finish(acc[r]);
  }

  template <int T>
  static void acts(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
                   size_t a_stride, float* y, size_t y_stride) {
    simd::multi_pass<T, W, A, Acc>(
        n / kQK_K, w, w_stride, n_rows, act, a_stride, y, y_stride,
        [](const W& x, const A* const* a, int64_t b, Acc* acc) {
          WeightBlock wb;
          unpack(x, &wb);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) fused(wb, a[t][b], &acc[t]);
        },
        finish);
  }
};

}  // namespace

void quantize_row_q8_k_x8_avx512(const float* src, void* dst, int64_t n) {
  // quantize_row_q8_k per block: the first value of the largest magnitude sets the scale.
  BlockQ8_Kx8* y = static_cast<BlockQ8_Kx8*>(dst);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    __m512 amax_v = _mm512_setzero_ps();
    for (int i = 0; i < kQK_K; i += 16) {
      amax_v = _mm512_max_ps(amax_v, _mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)));
    }
    const float amax = _mm512_reduce_max_ps(amax_v);
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    float max = 0.0f;
    for (int i = 0; i < kQK_K; i += 16) {
      const __mmask16 hit = _mm512_cmpeq_ps_mask(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)),
                                                 _mm512_set1_ps(amax));
      if (hit) {
        max = x[i + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 is = _mm512_set1_ps(iscale);
    const __m512i top = _mm512_set1_epi32(127);
    __m512i q[8][2];
    for (int k = 0; k < 8; ++k) {
      for (int h = 0; h < 2; ++h) {
        q[k][h] = _mm512_min_epi32(
            top, _mm512_cvt_roundps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(x + 32 * k + 16 * h)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      y[b].sums[k] = _mm512_reduce_add_epi32(_mm512_add_epi32(q[k][0], q[k][1]));
    }
    simd::store_x8_quants(q, y[b].lo, y[b].hi);
    y[b].d = 1.0f / iscale;
    std::memset(y[b].pad, 0, sizeof y[b].pad);
  }
}

float vec_dot_q4_k_x8_q8_k_x8_avx512(int64_t n, const void* w, const void* a) {
  return simd::x8_dot<Kernels>(n, w, a);
}

void vec_dot_q4_k_x8_q8_k_x8_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                         float* y) {
  simd::x8_dot_rows<Kernels>(n, w, w_stride, a, y);
}

void vec_dot_q4_k_x8_q8_k_x8_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                          const void* a, size_t a_stride, int n_act, float* y,
                                          size_t y_stride) {
  simd::x8_dot_multi<Kernels>(n, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride);
}

}  // namespace lb
