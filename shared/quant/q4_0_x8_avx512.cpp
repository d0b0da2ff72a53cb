// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_0_X8 . Q8_0_X8 (q4_0_x8.hpp). A 32-bit lane
// is a block throughout: per group, four loads give the quants of eight blocks, vpdpbusd sums
// each block's products in its own lane (starting from -8 * sum(a), so the unsigned nibbles need
// no offset), and one conversion and one fma per eight blocks finish Q4_0's order. No permutes,
// no horizontal adds: what the Q4_0 kernels spend most of their instructions on.
#include "quant/q4_0_x8.hpp"
#include "quant/simd_x86.hpp"

#include <algorithm>

namespace lb {
namespace {

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Q4_0's final sum of the eight accumulators: ((0 + 1) + (4 + 5)) + ((2 + 3) + (6 + 7)).
inline float tree8(__m256 v) {
  const __m256 pairs = _mm256_add_ps(v, _mm256_permute_ps(v, 0xb1));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehl_ps(q, q)));
}

// A weight group's nibbles: lo[c] and hi[c] hold quants 4c..4c+3 and 16+4c..16+4c+3 per lane.
struct Nibbles {
  __m256i lo[4], hi[4];
};

__attribute__((always_inline)) inline void unpack(const BlockQ4_0x8& w, Nibbles* q) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m256i b = load256(w.qs + 32 * c);
    q->lo[c] = _mm256_and_si256(b, m4);
    q->hi[c] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
  }
}

// acc += d_w * d_a * (exact dot of each block), lane by lane. The low and the high nibbles sum in
// two chains, so four vpdpbusd (not eight) wait on each other.
__attribute__((always_inline)) inline __m256 fused(const Nibbles& q, __m256 dw,
                                                   const BlockQ8_0x8& a, __m256 acc) {
  __m256i s0 = load256(a.neg8sum);
  __m256i s1 = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    s0 = _mm256_dpbusd_epi32(s0, q.lo[c], load256(a.lo + 32 * c));
    s1 = _mm256_dpbusd_epi32(s1, q.hi[c], load256(a.hi + 32 * c));
  }
  return _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_loadu_ps(a.d)),
                         _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc);
}

inline __m256 weight_scales(const BlockQ4_0x8& w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d)));
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
      unpack(x[r][g], &q);
      acc[r] = fused(q, weight_scales(x[r][g]), y[g], acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = tree8(acc[r]);
}

// Groups per pass: T activation rows of them (at most 8 x 8 x 320 bytes) stay in L1 while the
// weight rows pass over them.
constexpr int64_t kPassGroups = 8;
// Weight rows per pass, whose accumulators are kept between passes.
constexpr int64_t kPassRows = 32;

// Weight rows against T activation rows, kPassRows rows by kPassGroups groups at a time. Every
// (weight row, activation row) accumulator takes its groups in order, so the bits are vec_dot's.
template <int T>
void dot_acts(int64_t n, const uint8_t* w, size_t w_stride, int64_t n_rows, const uint8_t* act,
              size_t a_stride, float* y, size_t y_stride) {
  const int64_t n_groups = n / kQK4_0_X8;
  const BlockQ8_0x8* a[T];
  for (int t = 0; t < T; ++t)
    a[t] = reinterpret_cast<const BlockQ8_0x8*>(act + size_t(t) * a_stride);
  __m256 acc[kPassRows][T];
  for (int64_t r0 = 0; r0 < n_rows; r0 += kPassRows) {
    const int64_t rows = std::min(kPassRows, n_rows - r0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    }
    for (int64_t g0 = 0; g0 < n_groups; g0 += kPassGroups) {
      const int64_t groups = std::min(kPassGroups, n_groups - g0);
      for (int64_t r = 0; r < rows; ++r) {
        const BlockQ4_0x8* x = reinterpret_cast<const BlockQ4_0x8*>(w + size_t(r0 + r) * w_stride);
        // The weights are read a row's pass (up to 1152 bytes) at a time, a row apart: too short
        // a stream for the hardware prefetchers, so the next one is prefetched meanwhile.
        const char* next = nullptr;
        if (r + 1 < rows) {
          next = reinterpret_cast<const char*>(x + g0) + w_stride;
        } else if (g0 + kPassGroups < n_groups) {
          next = reinterpret_cast<const char*>(w + size_t(r0) * w_stride) +
                 size_t(g0 + kPassGroups) * sizeof(BlockQ4_0x8);
        }
        __m256 s[T];
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) s[t] = acc[r][t];
        for (int64_t g = g0; g < g0 + groups; ++g) {
          if (next) {
            const char* pf = next + (g - g0) * int64_t(sizeof(BlockQ4_0x8));
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 128, _MM_HINT_T0);
          }
          Nibbles q;
          unpack(x[g], &q);
          const __m256 dw = weight_scales(x[g]);
#pragma GCC unroll 8
          for (int t = 0; t < T; ++t) s[t] = fused(q, dw, a[t][g], s[t]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[r][t] = s[t];
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int t = 0; t < T; ++t) y[size_t(t) * y_stride + size_t(r0 + r)] = tree8(acc[r][t]);
    }
  }
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
