#pragma once
// Q4_0: blocks of 32 elements, value = (q - 8) * d with 4-bit q; byte qs[j] holds element j in its
// low nibble and element j + 16 in its high nibble. Byte-identical to ggml's block_q4_0.
// Activations: Q8_0 (quant/q8_0.hpp).
#include <cstddef>
#include <cstdint>

#include "quant/f16.hpp"

namespace lb {

constexpr int64_t kQK4_0 = 32;

struct BlockQ4_0 {
  Half d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "block_q4_0 layout");

// Weight quantizer (what ggml's quantize_row_q4_0_ref does, so files match llama-quantize's
// unweighted output): d = (value of largest magnitude) / -8, q = min(15, trunc(x/d + 8.5)).
void quantize_row_q4_0_ref(const float* src, void* dst, int64_t n);
void dequantize_row_q4_0(const void* src, float* dst, int64_t n);

// Q4_0's final sum of its eight dot accumulators (below), which the X8 layouts' dots share.
inline float sum_tree8(const float a[8]) {
  return ((a[0] + a[1]) + (a[4] + a[5])) + ((a[2] + a[3]) + (a[6] + a[7]));
}

// Weight row (Q4_0) . activation row (Q8_0), n a multiple of 32. Not ggml's order, but one every
// level follows bit for bit (the scalar reference defines it): per block the exact integer dot
// sum((q - 8) * a), fused with d_w * d_a into accumulator (block % 8); at the end the eight
// accumulators are summed as ((0 + 1) + (4 + 5)) + ((2 + 3) + (6 + 7)). One float lane per block
// (rather than ggml's eight) lets the SIMD kernels convert and fuse eight blocks at once.
float vec_dot_q4_0_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q4_0_q8_0_avx2(int64_t n, const void* w, const void* a);
void vec_dot_q4_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out);
// The AVX2 level's VecDotMultiFn: vec_dot_q4_0_q8_0's bits per (weight row, activation row).
void vec_dot_q4_0_q8_0_multi_avx2(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                  const void* a, size_t a_stride, int n_act, float* y,
                                  size_t y_stride);
float vec_dot_q4_0_q8_0_avx512(int64_t n, const void* w, const void* a);
// The AVX-512 level's VecDotMultiFn and VecDotRowsFn: vec_dot_q4_0_q8_0's bits per row.
void vec_dot_q4_0_q8_0_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride);
void vec_dot_q4_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y);

}  // namespace lb
