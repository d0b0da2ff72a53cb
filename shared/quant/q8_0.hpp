#pragma once
// Q8_0: blocks of 32 elements, value = qs[i] * d. Byte-identical to ggml's block_q8_0. Also the
// activation type of Q8_0 and Q4_0 weights.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant/f16.hpp"

namespace lb {

constexpr int64_t kQK8_0 = 32;

struct BlockQ8_0 {
  Half d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 layout");

// dst: n/32 BlockQ8_0. The activation quantizer ggml's x86 CPU backend uses: per block
// amax = max|x|, d = amax/127 (stored as fp16), q = round-half-to-even(x * (127/amax)).
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
void dequantize_row_q8_0(const void* src, float* dst, int64_t n);

// Weight row (Q8_0) . activation row (Q8_0), n a multiple of 32, in ggml's x86 order: eight
// float lanes (lane l: the exact int dot of elements 4l..4l+3 of a block), one fma per block
// with d_w * d_a, then hsum8. Every level gives the same bits.
float vec_dot_q8_0_q8_0(int64_t n, const void* w, const void* a);
float vec_dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* a);
void vec_dot_q8_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* y);
// The AVX2 level's VecDotMultiFn: vec_dot_q8_0_q8_0_avx2's bits per row.
void vec_dot_q8_0_q8_0_multi_avx2(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                  const void* a, size_t a_stride, int n_act, float* y,
                                  size_t y_stride);
float vec_dot_q8_0_q8_0_avx512(int64_t n, const void* w, const void* a);
// The AVX-512 level's VecDotMultiFn (n_act 1..kMaxDotActs): vec_dot_q8_0_q8_0_avx512's bits per
// row.
void vec_dot_q8_0_q8_0_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride);
// The AVX-512 level's VecDotRowsFn: vec_dot_q8_0_q8_0_avx512's bits per row.
void vec_dot_q8_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y);

// ggml's hsum_float_8 (x86 quants.c): lanes l and l + 4, then (0 + 2) + (1 + 3).
inline float hsum8(const float* a) {
  float q[4];
  for (int i = 0; i < 4; ++i) q[i] = a[i + 4] + a[i];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// Rounds to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int: adds 1.5 * 2^23 so the
// FPU's default rounding does the work). Used by every quantizer here.
inline int nearest_int(float x) {
  const float v = x + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace lb
