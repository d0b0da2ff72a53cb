// AVX-512 level (AVX512-VNNI on 256-bit registers) Q4_0 . Q8_0: the two-block layout of
// q4_0_avx2.cpp with vpdpbusd for the exact integer dots sum(q * a) - 8 * sum(a). 512-bit
// registers measured no faster here (Zen 4 splits them), so this level stays at 256 bits.
#include "quant/q4_0.hpp"
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m128i load128(const void* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// The nibbles of blocks x[0], x[1] (block 0 in the low 128 bits): elements 0..15 of each, then
// 16..31.
struct NibblePair {
  __m256i lo, hi;
};

inline NibblePair unpack_pair(const BlockQ4_0* x) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i q = _mm256_set_m128i(load128(x[1].qs), load128(x[0].qs));
  return {_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)};
}

// Blocks 0 and 1: 8 int32 lanes, 4 per block (block 0 in the low 128 bits).
inline __m256i dot_pair(const NibblePair& q, const BlockQ8_0* y) {
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i a_lo = _mm256_set_m128i(load128(y[1].qs), load128(y[0].qs));
  const __m256i a_hi = _mm256_set_m128i(load128(y[1].qs + 16), load128(y[0].qs + 16));
  const __m256i qa = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, q.lo, a_lo), q.hi, a_hi);
  const __m256i a8 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, eight, a_lo), eight, a_hi);
  return _mm256_sub_epi32(qa, a8);
}

inline __m256i dot_pair(const BlockQ4_0* x, const BlockQ8_0* y) {
  return dot_pair(unpack_pair(x), y);
}

// The last odd block: its 32 nibbles in element order.
inline __m256i unpack_one(const BlockQ4_0& x) {
  const __m128i q = load128(x.qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
}

// The last odd block's int32 lanes against activation block y.
inline __m256i dot_one(__m256i u, const BlockQ8_0& y) {
  const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs));
  const __m256i zero = _mm256_setzero_si256();
  return _mm256_sub_epi32(_mm256_dpbusd_epi32(zero, u, av),
                          _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(8), av));
}

// [d_w * d_a of block 0] x 4, then block 1 x 4.
inline __m256 scale_pair(const BlockQ4_0* x, const BlockQ8_0* y) {
  return simd::spread_pair(simd::scale_pair(x[0].d, x[1].d, y[0].d, y[1].d));
}

// Two halves as floats in the low two lanes.
inline __m128 halves_pair(Half h0, Half h1) {
  const uint32_t bits = uint32_t(h0) | (uint32_t(h1) << 16);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(bits)));
}

}  // namespace

float vec_dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK4_0;
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    acc0 =
        _mm256_fmadd_ps(scale_pair(x + b, y + b), _mm256_cvtepi32_ps(dot_pair(x + b, y + b)), acc0);
    acc1 = _mm256_fmadd_ps(scale_pair(x + b + 2, y + b + 2),
                           _mm256_cvtepi32_ps(dot_pair(x + b + 2, y + b + 2)), acc1);
  }
  if (b + 2 <= nb) {
    acc0 =
        _mm256_fmadd_ps(scale_pair(x + b, y + b), _mm256_cvtepi32_ps(dot_pair(x + b, y + b)), acc0);
    b += 2;
  }
  if (b < nb) {
    const __m256 d = _mm256_broadcastss_ps(simd::scale_pair(x[b].d, x[b].d, y[b].d, y[b].d));
    acc1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_one(unpack_one(x[b]), y[b])), acc1);
  }
  return simd::hsum(_mm256_add_ps(acc0, acc1));
}

namespace {

// vec_dot_q4_0_q8_0_avx512 for T activation rows: each row gets that function's accumulators and
// fmas in its order; the nibbles and the weight scales are unpacked once for all rows (d_w * d_a
// is one float product however the conversions are grouped).
template <int T>
void dot_multi(int64_t n, const BlockQ4_0* x, const uint8_t* act, size_t a_stride, float* out,
               size_t out_stride) {
  const BlockQ8_0* y[T];
  __m256 acc0[T];
  __m256 acc1[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    y[t] = reinterpret_cast<const BlockQ8_0*>(act + size_t(t) * a_stride);
    acc0[t] = _mm256_setzero_ps();
    acc1[t] = _mm256_setzero_ps();
  }
  const int64_t nb = n / kQK4_0;
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const NibblePair q0 = unpack_pair(x + b);
    const NibblePair q1 = unpack_pair(x + b + 2);
    const __m128 dw0 = halves_pair(x[b].d, x[b + 1].d);
    const __m128 dw1 = halves_pair(x[b + 2].d, x[b + 3].d);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const BlockQ8_0* yb = y[t] + b;
      const __m256 d0 = simd::spread_pair(_mm_mul_ps(dw0, halves_pair(yb[0].d, yb[1].d)));
      const __m256 d1 = simd::spread_pair(_mm_mul_ps(dw1, halves_pair(yb[2].d, yb[3].d)));
      acc0[t] = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(dot_pair(q0, yb)), acc0[t]);
      acc1[t] = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(dot_pair(q1, yb + 2)), acc1[t]);
    }
  }
  if (b + 2 <= nb) {
    const NibblePair q0 = unpack_pair(x + b);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      acc0[t] = _mm256_fmadd_ps(scale_pair(x + b, y[t] + b),
                                _mm256_cvtepi32_ps(dot_pair(q0, y[t] + b)), acc0[t]);
    }
    b += 2;
  }
  if (b < nb) {
    const __m256i u = unpack_one(x[b]);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m256 d =
          _mm256_broadcastss_ps(simd::scale_pair(x[b].d, x[b].d, y[t][b].d, y[t][b].d));
      acc1[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_one(u, y[t][b])), acc1[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    out[size_t(t) * out_stride] = simd::hsum(_mm256_add_ps(acc0[t], acc1[t]));
  }
}

}  // namespace

void vec_dot_q4_0_q8_0_multi_avx512(int64_t n, const void* w, const void* a, size_t a_stride,
                                    int n_act, float* y, size_t y_stride) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const uint8_t* act = static_cast<const uint8_t*>(a);
  simd::with_act_count(
      n_act, [&](auto t) { dot_multi<decltype(t)::value>(n, x, act, a_stride, y, y_stride); });
}

namespace {

// Four halves as floats.
inline __m128 halves_quad(Half h0, Half h1, Half h2, Half h3) {
  const uint64_t bits =
      uint64_t(h0) | (uint64_t(h1) << 16) | (uint64_t(h2) << 32) | (uint64_t(h3) << 48);
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(bits)));
}

// sum(q * a) - 8 * sum(a) of a block pair with the activations' part given.
inline __m256i dot_pair_shared(const NibblePair& q, __m256i a_lo, __m256i a_hi, __m256i a8) {
  const __m256i zero = _mm256_setzero_si256();
  return _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, q.lo, a_lo), q.hi, a_hi),
                          a8);
}

// The activations of block pair y[0], y[1] as dot_pair loads them, and 8 * their lane sums.
struct ActPair {
  __m256i lo, hi, a8;
};

inline ActPair act_pair(const BlockQ8_0* y) {
  const __m256i eight = _mm256_set1_epi8(8);
  const __m256i zero = _mm256_setzero_si256();
  ActPair p;
  p.lo = _mm256_set_m128i(load128(y[1].qs), load128(y[0].qs));
  p.hi = _mm256_set_m128i(load128(y[1].qs + 16), load128(y[0].qs + 16));
  p.a8 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, eight, p.lo), eight, p.hi);
  return p;
}

}  // namespace

// vec_dot_q4_0_q8_0_avx512 for two weight rows: per row that function's accumulators, int32
// lanes and fmas in its order (d_w * d_a is one float product however the conversions are
// grouped); the activation loads, their -8 offset sums and scales are shared.
void vec_dot_q4_0_q8_0_x2_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out) {
  const BlockQ4_0* x[2] = {
      static_cast<const BlockQ4_0*>(w),
      reinterpret_cast<const BlockQ4_0*>(static_cast<const uint8_t*>(w) + w_stride)};
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  const int64_t nb = n / kQK4_0;
  const __m256i lo_idx = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m256i hi_idx = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  __m256 acc0[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  __m256 acc1[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    const ActPair p0 = act_pair(y + b);
    const ActPair p1 = act_pair(y + b + 2);
    const __m128 da = halves_quad(y[b].d, y[b + 1].d, y[b + 2].d, y[b + 3].d);
#pragma GCC unroll 2
    for (int r = 0; r < 2; ++r) {
      const BlockQ4_0* xb = x[r] + b;
      const __m256 s =
          _mm256_castps128_ps256(_mm_mul_ps(halves_quad(xb[0].d, xb[1].d, xb[2].d, xb[3].d), da));
      const __m256i i0 = dot_pair_shared(unpack_pair(xb), p0.lo, p0.hi, p0.a8);
      const __m256i i1 = dot_pair_shared(unpack_pair(xb + 2), p1.lo, p1.hi, p1.a8);
      acc0[r] =
          _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s, lo_idx), _mm256_cvtepi32_ps(i0), acc0[r]);
      acc1[r] =
          _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s, hi_idx), _mm256_cvtepi32_ps(i1), acc1[r]);
    }
  }
  if (b + 2 <= nb) {
    const ActPair p0 = act_pair(y + b);
#pragma GCC unroll 2
    for (int r = 0; r < 2; ++r) {
      acc0[r] = _mm256_fmadd_ps(
          scale_pair(x[r] + b, y + b),
          _mm256_cvtepi32_ps(dot_pair_shared(unpack_pair(x[r] + b), p0.lo, p0.hi, p0.a8)), acc0[r]);
    }
    b += 2;
  }
  if (b < nb) {
#pragma GCC unroll 2
    for (int r = 0; r < 2; ++r) {
      const __m256 d =
          _mm256_broadcastss_ps(simd::scale_pair(x[r][b].d, x[r][b].d, y[b].d, y[b].d));
      acc1[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_one(unpack_one(x[r][b]), y[b])), acc1[r]);
    }
  }
#pragma GCC unroll 2
  for (int r = 0; r < 2; ++r) out[r] = simd::hsum(_mm256_add_ps(acc0[r], acc1[r]));
}

}  // namespace lb
