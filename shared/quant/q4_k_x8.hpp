#pragma once
// Q4_K_X8: Q4_K weights rearranged when they are loaded (never stored in a file), as Q4_0_X8 is
// (q4_0_x8.hpp): within each super-block, one 32-bit lane of a 256-bit register holds one of the
// eight 32-element sub-blocks, so vpdpbusd sums every sub-block in its own lane and the sub-block
// scales and mins apply lane by lane, with no byte shuffles. A byte holds quants i and i + 16 of
// one sub-block (Q4_K pairs quants of two sub-blocks). The 6-bit scales and mins are regrouped
// (all scales, then all mins) so one bit-deposit unpacks each eight. Same 144 bytes per block.
//
// The activation type Q8_K_X8 is Q8_K rearranged the same way, with per-sub-block quant sums.
// The dot's order is its own (below), the same bits at every level; it agrees with Q4_K's within
// rounding, as Q4_K's own levels do with each other.
#include <cstddef>
#include <cstdint>

#include "quant/f16.hpp"
#include "quant/q8_k.hpp"

namespace lb {

struct BlockQ4_Kx8 {
  Half d;
  Half dmin;
  // Scale k in bits 6k..6k+5 of bytes 0..5, min k likewise in bytes 6..11.
  uint8_t scales[12];
  uint8_t qs[128];  // 32-byte chunk c, byte 4k + j: sub-block k's quants 4c+j (low), 16+4c+j (high)
};
static_assert(sizeof(BlockQ4_Kx8) == 144, "block_q4_K's size");

// The quants come first and the block is padded to 320 bytes, so that in a 64-byte aligned row
// every 32-byte quant load stays within one cache line (the kernels' loads are mostly these).
struct BlockQ8_Kx8 {
  int8_t lo[128];   // 32-byte chunk c, bytes 4k..4k+3: sub-block k's quants 4c..4c+3
  int8_t hi[128];   // the same for quants 16 + 4c..16 + 4c + 3
  int32_t sums[8];  // sum of sub-block k's quants
  float d;
  uint8_t pad[28];
};
static_assert(sizeof(BlockQ8_Kx8) == 320, "block_q8_K's values, cache-line sized");

// One row of n Q4_K weights (n a multiple of 256) into the X8 layout, and back to floats (the
// values dequantize_row_q4_k gives).
void repack_row_q4_k_x8(const void* src, void* dst, int64_t n);
void dequantize_row_q4_k_x8(const void* src, float* dst, int64_t n);
// quantize_row_q8_k's values, in the X8 layout; the AVX-512 level's variant gives the same bytes.
void quantize_row_q8_k_x8(const float* src, void* dst, int64_t n);
void quantize_row_q8_k_x8_avx512(const float* src, void* dst, int64_t n);

// Weight row . activation row. Per super-block b and sub-block k the exact integer dot p_k and
// quant sum s_k; accumulators (one per k) acc_d[k] += (d_a * d) * float(sc_k * p_k) and
// acc_m[k] += (d_a * dmin) * float(m_k * s_k), each one fma; the result is tree(acc_d) -
// tree(acc_m), tree(a) = ((a0 + a1) + (a4 + a5)) + ((a2 + a3) + (a6 + a7)).
float vec_dot_q4_k_x8_q8_k_x8(int64_t n, const void* w, const void* a);
// The AVX-512 level's VecDotFn, VecDotRowsFn and VecDotMultiFn (the reference's bits).
float vec_dot_q4_k_x8_q8_k_x8_avx512(int64_t n, const void* w, const void* a);
void vec_dot_q4_k_x8_q8_k_x8_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                         float* y);
void vec_dot_q4_k_x8_q8_k_x8_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                          const void* a, size_t a_stride, int n_act, float* y,
                                          size_t y_stride);

}  // namespace lb
