#pragma once
// What the X8 layouts' SIMD kernels (q4_0_x8.hpp, q4_k_x8.hpp) share: a 32-bit lane per block (or
// sub-block), the nibble unpacking, the exact per-lane integer dots, the final tree sum, the
// pass structure of the multi-row kernels, and the activation quantizers' store into the layout.
// Include ONLY from *_avx512.cpp files, after quant/simd_x86.hpp (internal linkage, as there).
#include <algorithm>

#include "quant/simd_x86.hpp"

namespace lb::simd {
namespace {

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// The X8 layouts' final sum of eight lane accumulators: ((0 + 1) + (4 + 5)) + ((2 + 3) + (6 + 7)).
inline float tree8(__m256 v) {
  const __m256 pairs = _mm256_add_ps(v, _mm256_permute_ps(v, 0xb1));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehl_ps(q, q)));
}

// 128 bytes of X8 nibbles in 512-bit registers: lo[h] and hi[h] hold the low and high nibbles of
// chunks 2h and 2h + 1 (64 consecutive bytes) side by side, so lane k + 8 holds the four bytes of
// block k that follow lane k's. One 512-bit vpdpbusd does the work of two 256-bit ones, in the
// same time on a core with full-width AVX-512 (AMD Zen 5), so in L2, paired against the 256-bit
// kernels: eight activation rows 1.44x (Q4_0) and 1.2x (Q4_K) as fast, one row 1.3x and 1.19x.
struct Nibbles {
  __m512i lo[2], hi[2];
};

__attribute__((always_inline)) inline void unpack_nibbles(const uint8_t* qs, Nibbles* q) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    __m512i b = _mm512_loadu_si512(qs + 64 * h);
    // Keeps the quants in a register: GCC otherwise folds the load into both the and and the
    // shift, reading every 64 bytes twice.
    asm("" : "+v"(b));
    q->lo[h] = _mm512_and_si512(b, m4);
    q->hi[h] = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);
  }
}

// start + the exact dot of each lane's 32 unsigned nibbles with its 32 signed activation quants
// (lo, hi: 128 bytes each, the X8 layout): the two halves of the 512-bit sums are added, which is
// exact (integers), so every lane's dot is the one a 256-bit lane would have made. One chain of
// four vpdpbusd rather than two of two and an add: eight activation rows of the 1.1B Q4_0 model
// took 0.98x the time per step (fresh pairs of model copies), one row and Q4_K no different.
__attribute__((always_inline)) inline __m256i lane_dots(const Nibbles& q, const int8_t* lo,
                                                        const int8_t* hi, __m256i start) {
  __m512i s = _mm512_zextsi256_si512(start);
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) s = _mm512_dpbusd_epi32(s, q.lo[h], _mm512_loadu_si512(lo + 64 * h));
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) s = _mm512_dpbusd_epi32(s, q.hi[h], _mm512_loadu_si512(hi + 64 * h));
  return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
}

// The AVX-512 activation quantizers' common step: eight 32-quant blocks (q[k][0]: block k's quants
// 0..15 as int32, q[k][1]: its quants 16..31) narrowed to bytes and stored in the X8 layout's lo
// and hi halves (x8_slot: one 4x8 transpose of 32-bit words per half).
inline void store_x8_quants(const __m512i (&q)[8][2], int8_t* lo, int8_t* hi) {
  // Word w (0..31) of the pair (blocks 0-3, blocks 4-7) is quants 4(w % 4).. of block w / 4; the
  // output's word p of chunk pair h holds word (p / 8 + 2h) of block p % 8.
  alignas(64) static constexpr int32_t kIdx[2][16] = {
      {0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29},
      {2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31}};
  int8_t* const dst[2] = {lo, hi};
  for (int half = 0; half < 2; ++half) {
    __m512i blocks[2];
    for (int g = 0; g < 2; ++g) {
      const auto bytes = [&](int k) { return _mm512_cvtepi32_epi8(q[4 * g + k][half]); };
      __m512i b = _mm512_castsi128_si512(bytes(0));
      b = _mm512_inserti32x4(b, bytes(1), 1);
      b = _mm512_inserti32x4(b, bytes(2), 2);
      blocks[g] = _mm512_inserti32x4(b, bytes(3), 3);
    }
    for (int h = 0; h < 2; ++h) {
      const __m512i idx = _mm512_load_si512(kIdx[h]);
      _mm512_storeu_si512(dst[half] + 64 * h, _mm512_permutex2var_epi32(blocks[0], idx, blocks[1]));
    }
  }
}

// Blocks per pass: T activation rows of them (at most 8 x 8 x 320 bytes) stay in L1 while the
// weight rows pass over them.
constexpr int64_t kPassBlocks = 8;
// Weight rows per pass, whose accumulators are kept between passes.
constexpr int64_t kPassRows = 32;
// How many row passes ahead the weights are prefetched. One pass (a few hundred cycles of
// compute) is less than a load from DRAM takes with two threads streaming: eight activation rows
// of Q4_0 went from about 150 to 190 GB/s x rows (two threads, weights from DRAM) with four.
constexpr int64_t kPrefetchPasses = 4;

// Weight rows (w + r * w_stride, blocks of WBlock) against T activation rows (act + t * a_stride,
// blocks of ABlock), kPassRows rows by kPassBlocks blocks at a time. block(w, a, b, acc) adds
// weight block w against activation blocks a[t][b] into acc[t]; finish(acc) gives the dot. Every
// (weight row, activation row) accumulator takes its blocks in order: vec_dot's bits.
template <int T, typename WBlock, typename ABlock, typename Acc, typename Block, typename Finish>
void multi_pass(int64_t n_blocks, const uint8_t* w, size_t w_stride, int64_t n_rows,
                const uint8_t* act, size_t a_stride, float* y, size_t y_stride, Block block,
                Finish finish) {
  const ABlock* a[T];
  for (int t = 0; t < T; ++t) a[t] = reinterpret_cast<const ABlock*>(act + size_t(t) * a_stride);
  Acc acc[kPassRows][T];
  const int64_t n_passes = (n_blocks + kPassBlocks - 1) / kPassBlocks;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kPassRows) {
    const int64_t rows = std::min(kPassRows, n_rows - r0);
    for (int64_t b0 = 0; b0 < n_blocks; b0 += kPassBlocks) {
      const int64_t b1 = std::min(b0 + kPassBlocks, n_blocks);
      for (int64_t r = 0; r < rows; ++r) {
        const WBlock* x = reinterpret_cast<const WBlock*>(w + size_t(r0 + r) * w_stride);
        // The weights are read a row's pass (up to 1152 bytes) at a time, a row apart: too short
        // a stream for the hardware prefetchers, so the row's pass kPrefetchPasses later in this
        // order is prefetched meanwhile, into the next kPassRows rows when this group's passes
        // run out (stopping there instead left a group's first kPrefetchPasses rows to wait on
        // DRAM: fresh pairs of model copies, 1.1B Q4_0, took 0.95x the time per step with 8 and
        // 4 activation rows, 0.93x with 2, and Q4_K 0.96x with 8, once the prefetch went on).
        const char* next = nullptr;
        int64_t next_blocks = 0;
        int64_t ahead = b0 / kPassBlocks * rows + r + kPrefetchPasses;
        int64_t ahead_r0 = r0, ahead_rows = rows;
        if (ahead >= n_passes * rows) {
          ahead -= n_passes * rows;
          ahead_r0 = r0 + kPassRows;
          ahead_rows = std::min(kPassRows, n_rows - ahead_r0);
        }
        if (ahead_r0 < n_rows && ahead / ahead_rows < n_passes) {
          const int64_t first = ahead / ahead_rows * kPassBlocks;
          next_blocks = std::min(kPassBlocks, n_blocks - first);
          next =
              reinterpret_cast<const char*>(w + size_t(ahead_r0 + ahead % ahead_rows) * w_stride) +
              size_t(first) * sizeof(WBlock);
        }
        Acc s[T];
        // Zero at a row's first pass, rather than clearing acc (8 KiB at 8 activation rows) for
        // every kPassRows rows: 0.98x the time per 8-row step of the 1.1B Q4_0 model.
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) s[t] = b0 == 0 ? Acc{} : acc[r][t];
        for (int64_t b = b0; b < b1; ++b) {
          if (b - b0 < next_blocks) {
            const char* pf = next + (b - b0) * int64_t(sizeof(WBlock));
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            _mm_prefetch(pf + 128, _MM_HINT_T0);
          }
          block(x[b], a, b, s);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[r][t] = s[t];
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int t = 0; t < T; ++t) y[size_t(t) * y_stride + size_t(r0 + r)] = finish(acc[r][t]);
    }
  }
}

// The entry points (VecDotFn, VecDotRowsFn, VecDotMultiFn) of an X8 kernel family K: a struct
// with the block types W and A, rows<R>(n, x, y, out) for R weight rows (x[r]) against one
// activation row, and acts<T>(n, w, w_stride, n_rows, act, a_stride, y, y_stride) for T
// activation rows. The one-row dot is rows<1>, so the others equal it bit for bit by construction.
template <typename K>
float x8_dot(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const typename K::W*>(w);
  float y;
  K::template rows<1>(n, &x, static_cast<const typename K::A*>(a), &y);
  return y;
}

template <typename K>
void x8_dot_rows(int64_t n, const void* w, size_t w_stride, const void* a, float* y) {
  const typename K::W* x[kDotRows];
  dot_row_blocks(w, w_stride, x);
  K::template rows<kDotRows>(n, x, static_cast<const typename K::A*>(a), y);
}

template <typename K>
void x8_dot_multi(int64_t n, const void* w, size_t w_stride, int64_t n_rows, const void* a,
                  size_t a_stride, int n_act, float* y, size_t y_stride) {
  with_count(n_act, [&](auto t) {
    K::template acts<decltype(t)::value>(n, static_cast<const uint8_t*>(w), w_stride, n_rows,
                                         static_cast<const uint8_t*>(a), a_stride, y, y_stride);
  });
}

}  // namespace
}  // namespace lb::simd
