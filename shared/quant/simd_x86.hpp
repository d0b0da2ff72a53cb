#pragma once
// Small helpers for the SIMD variants. Include ONLY from *_avx2.cpp / *_avx512.cpp files (they are
// the ones compiled with the matching instruction-set flags), and before any other header that
// pulls in immintrin.h.
//
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() (a self-initialised variable), which
// -Wuninitialized flags once inlined (GCC bug 105593, fixed in GCC 13): silenced for the
// intrinsic headers only, since the diagnostic state at their definitions is what counts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "quant/f16.hpp"
#include "quant/ggml_type.hpp"
#include "quant/prefetch.hpp"

// Internal linkage on purpose: AVX2 and AVX-512 files both compile these helpers with their own
// instruction-set flags, and an inline function with external linkage could have one file's copy
// (with AVX-512 encodings) serve the other's callers on a CPU without AVX-512.
namespace lb::simd {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// hsum of each of eight registers at once: lane i of the result is hsum(t[i]), bit for bit (the
// same pairs added in the same order: l + 4, then l + 2, then l + 1).
inline __m256 hsum_each(const __m256 (&t)[8]) {
  __m256 quads[4];  // [t[2i] lanes l + (l + 4) | t[2i + 1] lanes l + (l + 4)]
  for (int i = 0; i < 4; ++i) {
    quads[i] = _mm256_add_ps(_mm256_permute2f128_ps(t[2 * i], t[2 * i + 1], 0x20),
                             _mm256_permute2f128_ps(t[2 * i], t[2 * i + 1], 0x31));
  }
  __m256 pairs[2];  // [t[4i] 0+2, 1+3, t[4i+2] 0+2, 1+3 | the same for t[4i+1], t[4i+3]]
  for (int i = 0; i < 2; ++i) {
    pairs[i] = _mm256_add_ps(_mm256_shuffle_ps(quads[2 * i], quads[2 * i + 1], 0x44),
                             _mm256_shuffle_ps(quads[2 * i], quads[2 * i + 1], 0xee));
  }
  // [t0, t2, t4, t6 | t1, t3, t5, t7], put back in order.
  const __m256 sums = _mm256_add_ps(_mm256_shuffle_ps(pairs[0], pairs[1], 0x88),
                                    _mm256_shuffle_ps(pairs[0], pairs[1], 0xdd));
  return _mm256_permutevar8x32_ps(sums, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Eight consecutive F32 or F16 values as floats.
inline __m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
inline __m256 load8(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float to_f32(float x) {
  return x;
}
inline float to_f32(Half h) {
  return _cvtsh_ss(h);
}

// ggml_vec_dot_f32's main loop (see float_dot.hpp) over the first np (a multiple of 64) elements
// of F32 or F16 rows: its four sixteen-lane accumulators combined and the sixteen lanes folded to
// eight (l + 8), ready for hsum. Named registers rather than an array: GCC -O2 kept an
// accumulator array on the stack.
template <typename T>
inline __m256 dot_lanes(const T* x, const T* y, int64_t np) {
  __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l, a2l = a0l, a2h = a0l,
         a3l = a0l, a3h = a0l;
  for (int64_t i = 0; i < np; i += 64) {
    a0l = _mm256_fmadd_ps(load8(x + i), load8(y + i), a0l);
    a0h = _mm256_fmadd_ps(load8(x + i + 8), load8(y + i + 8), a0h);
    a1l = _mm256_fmadd_ps(load8(x + i + 16), load8(y + i + 16), a1l);
    a1h = _mm256_fmadd_ps(load8(x + i + 24), load8(y + i + 24), a1h);
    a2l = _mm256_fmadd_ps(load8(x + i + 32), load8(y + i + 32), a2l);
    a2h = _mm256_fmadd_ps(load8(x + i + 40), load8(y + i + 40), a2h);
    a3l = _mm256_fmadd_ps(load8(x + i + 48), load8(y + i + 48), a3l);
    a3h = _mm256_fmadd_ps(load8(x + i + 56), load8(y + i + 56), a3h);
  }
  const __m256 lo = _mm256_add_ps(_mm256_add_ps(a0l, a2l), _mm256_add_ps(a1l, a3l));
  const __m256 hi = _mm256_add_ps(_mm256_add_ps(a0h, a2h), _mm256_add_ps(a1h, a3h));
  return _mm256_add_ps(hi, lo);
}

// vec_dot_f16's leftover (see float_dot.hpp): elements [i, n) of F16 values (given as F16, or
// as floats converted from F16), each product rounded to float and added in double to sum.
template <typename T>
inline float f16_dot_tail(const T* x, const T* y, int64_t i, int64_t n, double sum) {
  for (; i + 8 <= n; i += 8) {
    alignas(32) float p[8];
    _mm256_store_ps(p, _mm256_mul_ps(load8(x + i), load8(y + i)));
    for (float v : p) sum += static_cast<double>(v);
  }
  for (; i < n; ++i) {
    sum += static_cast<double>(
        _mm_cvtss_f32(_mm_mul_ss(_mm_set_ss(to_f32(x[i])), _mm_set_ss(to_f32(y[i])))));
  }
  return static_cast<float>(sum);
}

// Two 16-byte pieces (e.g. the quants of two blocks) as one 256-bit register.
inline __m256i load_pair(const void* lo, const void* hi) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1);
}

// The low and the high nibbles of 32 bytes (4-bit quants), each as bytes 0..15.
inline void split_nibbles(__m256i bytes, __m256i* lo, __m256i* hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  *lo = _mm256_and_si256(bytes, m4);
  *hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4);
}

// Four pairs of per-block int32 partial sums (Q4_0's eight-block groups) -> the dots of blocks
// 0, 2, 4, 6, 1, 3, 5, 7: three vphaddd.
inline __m256i fold_pairs(const __m256i (&v)[4]) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
}

// The 4-bit quants of eight Q4_0 blocks, blocks 2p and 2p + 1 in register p (a 128-bit lane
// each): the low nibbles (quants 0..15) in lo[p], the high ones (16..31) in hi[p].
struct NibblePairs {
  __m256i lo[4], hi[4];
};

template <typename Block>
inline void nibble_pairs(const Block* x, NibblePairs* q) {
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    split_nibbles(load_pair(x[2 * p].qs, x[2 * p + 1].qs), &q->lo[p], &q->hi[p]);
  }
}

// The 8-bit quants of eight Q8_0 blocks in the same pairs: quants 0..15 in lo[p], 16..31 in hi[p].
template <typename Block>
inline void quant_pairs(const Block* y, __m256i (&lo)[4], __m256i (&hi)[4]) {
#pragma GCC unroll 4
  for (int p = 0; p < 4; ++p) {
    lo[p] = load_pair(y[2 * p].qs, y[2 * p + 1].qs);
    hi[p] = load_pair(y[2 * p].qs + 16, y[2 * p + 1].qs + 16);
  }
}

// The F16 scales d of blocks x[0..7] as floats, lanes in block order 0, 2, 4, 6, 1, 3, 5, 7 (the
// order Q4_0's eight-block groups fold their sums in), assembled in general-purpose registers.
template <typename Block>
inline __m256 scales8(const Block* x) {
  const uint64_t even =
      uint64_t(x[0].d) | uint64_t(x[2].d) << 16 | uint64_t(x[4].d) << 32 | uint64_t(x[6].d) << 48;
  const uint64_t odd =
      uint64_t(x[1].d) | uint64_t(x[3].d) << 16 | uint64_t(x[5].d) << 32 | uint64_t(x[7].d) << 48;
  return _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128(static_cast<long long>(even)),
                                          static_cast<long long>(odd), 1));
}

inline float hsum(__m128 v) {
  __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// fp16 -> 8 copies of its float value, with F16C (no scalar conversion).
inline __m256 broadcast_half(const Half& h) {
  int16_t bits;
  std::memcpy(&bits, &h, sizeof bits);
  return _mm256_cvtph_ps(_mm_set1_epi16(bits));
}

// d_w * d_a of two blocks, [block 0, block 1, ...] in the low lanes: one F16C conversion of the
// four halves. (A 64K-entry float table was tried instead: its lines get evicted by the weight
// stream and it halved the DRAM-bound speed.)
inline __m128 scale_pair(Half w0, Half w1, Half a0, Half a1) {
  const uint64_t bits = static_cast<uint64_t>(w0) | (static_cast<uint64_t>(w1) << 16) |
                        (static_cast<uint64_t>(a0) << 32) | (static_cast<uint64_t>(a1) << 48);
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(bits)));
  return _mm_mul_ps(f, _mm_movehl_ps(f, f));
}

// Blocks b..b+7 of R weight rows (x[r]) against eight activation blocks y, for grouped_dot_rows,
// from a Q4_0 kernel family K: the block types W and A; Act, eight activation blocks as
// K::prepare(y, &act) leaves them (once for all rows); K::weight_scales(x) the eight weight
// scales in lane order; K::fuse(nibbles, scales, act, &acc) one group's dots fused into acc. The
// R > 1 weight streams are prefetched (one row is one stream, which matmul prefetches). Always
// inlined, and so are K's steps: GCC otherwise called the group step once per group with the
// accumulators in memory, which cost a sixth of the speed.
template <int R, typename K>
__attribute__((always_inline)) inline void q4_0_group_rows(const typename K::W* const* x, int64_t b,
                                                           const typename K::A* y, __m256* acc) {
  using WBlock = typename K::W;
  typename K::Act act;
  K::prepare(y, &act);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const WBlock* xb = x[r] + b;
    if constexpr (R > 1) prefetch_block(xb, 8 * sizeof(WBlock));
    NibblePairs q;
    nibble_pairs(xb, &q);
    K::fuse(q, K::weight_scales(xb), act, &acc[r]);
  }
}

// R weight rows (x[r]) of nb blocks against one activation row, eight blocks at a time (a Q4_0
// kernel family K): q4_0_group_rows fuses blocks b..b+7 of every row into acc[r]. The last
// blocks are zero-padded to a group: a zero block adds fma(0, 0, acc) = acc (the accumulators are
// never -0), so the lanes past the end keep their sums. out[r] = hsum(acc[r]).
template <int R, typename K>
inline void grouped_dot_rows(int64_t nb, const typename K::W* const* x, const typename K::A* y,
                             float* out) {
  using WBlock = typename K::W;
  using ABlock = typename K::A;
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) q4_0_group_rows<R, K>(x, b, y + b, acc);
  if (b < nb) {
    WBlock xt[R][8] = {};
    ABlock yt[8] = {};
    const WBlock* xp[R];
    for (int r = 0; r < R; ++r) {
      std::memcpy(xt[r], x[r] + b, size_t(nb - b) * sizeof(WBlock));
      xp[r] = xt[r];
    }
    std::memcpy(yt, y + b, size_t(nb - b) * sizeof(ABlock));
    q4_0_group_rows<R, K>(xp, 0, yt, acc);
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// Activation groups prepared per pass of grouped_dot_acts: T rows of them (at most 8 x 8 x 320
// bytes) stay in L1 while the weight rows pass over them.
constexpr int kGroupPass = 8;
// Weight rows per pass of grouped_dot_acts, whose accumulators are kept between passes.
constexpr int64_t kGroupPassRows = 32;

// n_rows weight rows (w + r * w_stride) of nb blocks against T activation rows (act + t *
// a_stride), eight blocks at a time (a Q4_0 kernel family K, see q4_0_group_rows),
// kGroupPassRows rows by kGroupPass groups at a time: each activation group is prepared once per
// pass, each weight group unpacked once for all activation rows. A last partial group is
// zero-padded, as grouped_dot_rows pads it, and every (weight row, activation row) accumulator
// takes its groups in order: vec_dot's bits.
template <int T, typename K>
void grouped_dot_acts(int64_t nb, const uint8_t* w, size_t w_stride, int64_t n_rows,
                      const uint8_t* act, size_t a_stride, float* y, size_t y_stride) {
  using WBlock = typename K::W;
  using ABlock = typename K::A;
  using ActGroup = typename K::Act;
  const int64_t n_groups = (nb + 7) / 8;
  ActGroup prepared[T][kGroupPass];
  __m256 acc[kGroupPassRows][T];
  const auto add_group = [&](const WBlock* x, int g, __m256* a) {
    NibblePairs q;
    nibble_pairs(x, &q);
    const __m256 dw = K::weight_scales(x);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) K::fuse(q, dw, prepared[t][g], &a[t]);
  };
  for (int64_t r0 = 0; r0 < n_rows; r0 += kGroupPassRows) {
    const int64_t rows = std::min(kGroupPassRows, n_rows - r0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    }
    for (int64_t g0 = 0; g0 < n_groups; g0 += kGroupPass) {
      const int groups = int(std::min<int64_t>(kGroupPass, n_groups - g0));
      const int64_t tail = 8 * (g0 + groups) > nb ? nb - 8 * (g0 + groups - 1) : 0;
      for (int t = 0; t < T; ++t) {
        const ABlock* yt = reinterpret_cast<const ABlock*>(act + size_t(t) * a_stride);
        for (int g = 0; g < groups; ++g) {
          const int64_t b = 8 * (g0 + g);
          if (b + 8 <= nb) {
            K::prepare(yt + b, &prepared[t][g]);
          } else {
            ABlock pad[8] = {};
            std::memcpy(pad, yt + b, size_t(tail) * sizeof(ABlock));
            K::prepare(pad, &prepared[t][g]);
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const WBlock* x = reinterpret_cast<const WBlock*>(w + size_t(r0 + r) * w_stride);
        // The weights are read a row's pass (up to 1152 bytes) at a time, a row apart: too short
        // a stream for the hardware prefetchers, so the next one is prefetched meanwhile.
        const uint8_t* next = nullptr;
        if (r + 1 < rows) {
          next = reinterpret_cast<const uint8_t*>(x + 8 * g0) + w_stride;
        } else if (g0 + kGroupPass < n_groups) {
          next = w + size_t(r0) * w_stride + size_t(8 * (g0 + kGroupPass)) * sizeof(WBlock);
        }
        __m256 a[T];
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) a[t] = acc[r][t];
        const int full = tail ? groups - 1 : groups;
        for (int g = 0; g < full; ++g) {
          if (next) {
            const char* pf = reinterpret_cast<const char*>(next) + 8 * g * sizeof(WBlock);
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 128, _MM_HINT_T0);
          }
          add_group(x + 8 * (g0 + g), g, a);
        }
        if (tail) {
          WBlock pad[8] = {};
          std::memcpy(pad, x + 8 * (g0 + full), size_t(tail) * sizeof(WBlock));
          add_group(pad, full, a);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[r][t] = a[t];
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int t = 0; t < T; ++t) y[size_t(t) * y_stride + size_t(r0 + r)] = hsum(acc[r][t]);
    }
  }
}

// [s0 x 4, s1 x 4] from the low two lanes of s.
inline __m256 spread_pair(__m128 s) {
  return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(s),
                                  _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
}

// Byte-shuffle masks picking int16 element s of a 128-bit lane, replicated (Q4_K sub-block
// scales); built at compile time.
struct ScaleMasks {
  alignas(32) uint8_t m[8][32];
};
constexpr ScaleMasks make_scale_masks() {
  ScaleMasks masks{};
  for (int s = 0; s < 8; ++s) {
    for (int i = 0; i < 32; ++i) masks.m[s][i] = static_cast<uint8_t>(2 * s + (i & 1));
  }
  return masks;
}
constexpr ScaleMasks kScaleMasks = make_scale_masks();

inline __m256i scale_mask(int s) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kScaleMasks.m[s]));
}

// The kDotRows weight rows a VecDotRowsFn gets (w + r * w_stride bytes), as block pointers.
template <typename Block>
inline void dot_row_blocks(const void* w, size_t w_stride, const Block* (&x)[kDotRows]) {
  for (int r = 0; r < kDotRows; ++r) {
    x[r] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * w_stride);
  }
}

// The exact int8 dot of a Q8_0 weight block with activation quants a, as eight float lanes:
// abs_dot(|w|, a moved onto w's signs) is the level's exact dot of unsigned by signed bytes in
// int32 lanes, four bytes each (w = -128 works: |w| reads as unsigned 128).
template <typename Block, typename AbsDot>
inline __m256 q8_0_block_dot(const Block& x, __m256i a, AbsDot abs_dot) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
  return _mm256_cvtepi32_ps(abs_dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)));
}

// ggml's Q8_0 . Q8_0 order (see q8_0.hpp) over nb blocks of R weight rows (x[r]) against one
// activation row: per block the exact integer dot as eight float lanes (q8_0_block_dot), fused
// with d_w * d_a into the row's accumulator, the scales of two blocks converted at a time; folded
// as ggml's hsum_float_8. The levels differ only in abs_dot. Each row takes the one-row fmas in
// their order (R chains hide the fma latency that bounds one row); the activation quants are
// loaded once for all rows, and R > 1 weight streams are prefetched.
template <int R, typename Block, typename AbsDot>
inline void sum_q8_0_rows(const Block* const* x, const Block* y, int64_t nb, AbsDot abs_dot,
                          float* out) {
  __m256 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b + 1].qs));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      // One row is one stream, which matmul prefetches.
      if constexpr (R > 1) prefetch_block(&x[r][b], 2 * sizeof(Block));
      const __m128 s = scale_pair(x[r][b].d, x[r][b + 1].d, y[b].d, y[b + 1].d);
      acc[r] =
          _mm256_fmadd_ps(_mm256_broadcastss_ps(s), q8_0_block_dot(x[r][b], a0, abs_dot), acc[r]);
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(s)),
                               q8_0_block_dot(x[r][b + 1], a1, abs_dot), acc[r]);
    }
  }
  if (b < nb) {
    const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m128 s = scale_pair(x[r][b].d, x[r][b].d, y[b].d, y[b].d);
      acc[r] =
          _mm256_fmadd_ps(_mm256_broadcastss_ps(s), q8_0_block_dot(x[r][b], a0, abs_dot), acc[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// A level's Q8_0 VecDotFn and VecDotRowsFn, given its abs_dot.
template <typename Block, typename AbsDot>
inline float q8_0_dot(int64_t nb, const void* w, const void* a, AbsDot abs_dot) {
  const Block* x = static_cast<const Block*>(w);
  float y;
  sum_q8_0_rows<1>(&x, static_cast<const Block*>(a), nb, abs_dot, &y);
  return y;
}

template <typename Block, typename AbsDot>
inline void q8_0_dot_rows(int64_t nb, const void* w, size_t w_stride, const void* a, float* y,
                          AbsDot abs_dot) {
  const Block* x[kDotRows];
  dot_row_blocks(w, w_stride, x);
  sum_q8_0_rows<kDotRows>(x, static_cast<const Block*>(a), nb, abs_dot, y);
}

// The same order for one weight row (x) against T activation rows (a[t]): each activation row's
// accumulator takes the one-row fmas in their order (d_w * d_a is one float product whichever way
// the halves are converted); the weight loads and |w| are shared, the row's stream prefetched.
template <int T, typename Block, typename AbsDot>
inline void sum_q8_0_acts(const Block* x, const Block* const* a, int64_t nb, AbsDot abs_dot,
                          float* y, size_t y_stride) {
  __m256 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const float dw = _cvtsh_ss(x[b].d);
    prefetch_block(&x[b], sizeof(Block));
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i w_abs = _mm256_sign_epi8(w, w);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t][b].qs));
      const __m256 dot = _mm256_cvtepi32_ps(abs_dot(w_abs, _mm256_sign_epi8(av, w)));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * _cvtsh_ss(a[t][b].d)), dot, acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) y[size_t(t) * y_stride] = hsum(acc[t]);
}

// Calls f(std::integral_constant<int, T>{}) with T = n (1 to 8), so kernels can be templates on a
// count of rows or registers (multi-row kernels: up to kMaxDotActs activation rows).
template <typename F>
inline void with_count(int n, F&& f) {
  static_assert(kMaxDotActs == 8, "one case per row count");
  switch (n) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    case 6:
      return f(std::integral_constant<int, 6>{});
    case 7:
      return f(std::integral_constant<int, 7>{});
    default:
      return f(std::integral_constant<int, 8>{});
  }
}

// A level's Q8_0 VecDotMultiFn, given its abs_dot: sum_q8_0_acts row by row.
template <typename Block, typename AbsDot>
inline void q8_0_dot_multi(int64_t nb, const void* w, size_t w_stride, int64_t n_rows,
                           const void* a, size_t a_stride, int n_act, float* y, size_t y_stride,
                           AbsDot abs_dot) {
  with_count(n_act, [&](auto t) {
    constexpr int T = decltype(t)::value;
    const Block* acts[T];
    for (int i = 0; i < T; ++i) {
      acts[i] =
          reinterpret_cast<const Block*>(static_cast<const uint8_t*>(a) + size_t(i) * a_stride);
    }
    for (int64_t r = 0; r < n_rows; ++r) {
      const Block* x =
          reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + size_t(r) * w_stride);
      sum_q8_0_acts<T>(x, acts, nb, abs_dot, y + r, y_stride);
    }
  });
}

// A Q4_0 kernel family's VecDotFn, VecDotRowsFn and VecDotMultiFn (n_act 1..kMaxDotActs). The
// one-row dot is q4_0_group_rows<1, K>, so the kDotRows kernel equals it by construction.
template <typename K>
inline float q4_0_dot(int64_t nb, const void* w, const void* a) {
  const typename K::W* x = static_cast<const typename K::W*>(w);
  float y;
  grouped_dot_rows<1, K>(nb, &x, static_cast<const typename K::A*>(a), &y);
  return y;
}

template <typename K>
inline void q4_0_dot_rows(int64_t nb, const void* w, size_t w_stride, const void* a, float* y) {
  const typename K::W* x[kDotRows];
  dot_row_blocks(w, w_stride, x);
  grouped_dot_rows<kDotRows, K>(nb, x, static_cast<const typename K::A*>(a), y);
}

template <typename K>
inline void q4_0_dot_multi(int64_t nb, const void* w, size_t w_stride, int64_t n_rows,
                           const void* a, size_t a_stride, int n_act, float* y, size_t y_stride) {
  with_count(n_act, [&](auto t) {
    grouped_dot_acts<decltype(t)::value, K>(nb, static_cast<const uint8_t*>(w), w_stride, n_rows,
                                            static_cast<const uint8_t*>(a), a_stride, y, y_stride);
  });
}

}  // namespace
}  // namespace lb::simd
