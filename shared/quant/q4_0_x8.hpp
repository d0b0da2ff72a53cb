#pragma once
// Q4_0_X8: Q4_0 weights rearranged when they are loaded (never stored in a file) so the SIMD
// kernels need no shuffles: eight consecutive blocks of a row form a group, their scales first,
// then their quants four bytes at a time, so that one 32-bit lane of a 256-bit register holds one
// block. The activation type Q8_0_X8 is Q8_0 rearranged the same way, with the scales as floats and
// -8 x each block's quant sum computed once per activation row (the - 8 of every Q4_0 quant).
//
// The dot products are Q4_0's, bit for bit (q4_0.hpp): lane k of a group is block 8g + k, which is
// accumulator k of vec_dot_q4_0_q8_0. Only rows whose length is a multiple of 256 are rearranged.
#include <cstddef>
#include <cstdint>

#include "quant/f16.hpp"

namespace lb {

constexpr int64_t kQK4_0_X8 = 256;

// Byte of an X8 group's 128 quant bytes that holds byte j (0..15) of lane k: chunk j / 4, lane k,
// byte j % 4. Q4_K_X8 lays out its sub-blocks the same way.
constexpr int x8_slot(int k, int j) {
  return 32 * (j / 4) + 4 * k + j % 4;
}

struct BlockQ4_0x8 {
  Half d[8];
  uint8_t qs[128];  // 32-byte chunk c, bytes 4k..4k+3: block k's qs[4c..4c+3]
};
static_assert(sizeof(BlockQ4_0x8) == 144, "eight block_q4_0");

struct BlockQ8_0x8 {
  float d[8];
  int32_t neg8sum[8];  // -8 * (sum of block k's quants)
  int8_t lo[128];      // 32-byte chunk c, bytes 4k..4k+3: block k's qs[4c..4c+3]
  int8_t hi[128];      // the same for qs[16 + 4c..16 + 4c + 3]
};
static_assert(sizeof(BlockQ8_0x8) == 320, "eight block_q8_0, rearranged");

// One row of n Q4_0 weights (n a multiple of 256) into the X8 layout, and back to floats.
void repack_row_q4_0_x8(const void* src, void* dst, int64_t n);
void dequantize_row_q4_0_x8(const void* src, float* dst, int64_t n);
// quantize_row_q8_0's values, in the X8 layout; the AVX-512 level's variant gives the same bytes.
void quantize_row_q8_0_x8(const float* src, void* dst, int64_t n);
void quantize_row_q8_0_x8_avx512(const float* src, void* dst, int64_t n);

// The scalar reference on the X8 layout, and the AVX-512 level's kernels (VecDotFn,
// VecDotRowsFn, VecDotMultiFn): all give vec_dot_q4_0_q8_0's bits. Decode through the kDotRows
// kernel, its four streams prefetched a block at a time (prefetch.hpp), took 0.90x the time per
// token of one prefetched stream per task on Intel Emerald Rapids (1.1B, 2 threads, the two taken
// in turn in one process, 26 tokens a round, 10 rounds twice). On AMD Zen 5 an earlier session
// found one stream faster than four, when the four streams were not prefetched.
float vec_dot_q4_0_x8_q8_0_x8(int64_t n, const void* w, const void* a);
float vec_dot_q4_0_x8_q8_0_x8_avx512(int64_t n, const void* w, const void* a);
void vec_dot_q4_0_x8_q8_0_x8_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                         float* y);
void vec_dot_q4_0_x8_q8_0_x8_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                          const void* a, size_t a_stride, int n_act, float* y,
                                          size_t y_stride);

}  // namespace lb
