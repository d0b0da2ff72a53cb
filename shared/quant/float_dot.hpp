#pragma once
// F32 and F16 weights: row converters in the kernel-table signatures, and dot products. As in
// ggml, F16 weights take F16 activations and F32 weights F32 activations.
//
// Every dot here follows one exact float summation order, the one llama.cpp's CPU backend uses
// on an AVX-512 machine, and every SIMD variant gives the same bits as its scalar reference
// (so AVX2 and AVX-512 machines agree bit for bit):
//
// vec_dot_f32 — ggml_vec_dot_f32 (decode, and products llamafile's GEMM declines): sixteen-lane
//   accumulators a0..a3 take elements [64i + 16j, 64i + 16j + 16) by fma over the first
//   n & ~63 elements; then (a0 + a2) + (a1 + a3) lane-wise, and the 16 lanes fold as
//   _mm512_reduce_add_ps does (l + 8, then + 4, + 2, + 1). The remaining elements continue that
//   float sum in order, the way GCC compiled ggml's scalar leftover loop: products in chunks of
//   16, then one chunk of 8, each product rounded and added in order; the last (< 8) by fma.
// gemm_dot_f32 — llamafile's tinyBLAS<16> (ggml's F32 products of 2+ rows when cols % 16 == 0
//   and rows % 4 == 0): one sixteen-lane accumulator over all elements by fma, then folded as
//   above. n must be a multiple of 16.
// vec_dot_f16 — ggml_vec_dot_f16: the vec_dot_f32 main loop on the F16 values, its folded sum
//   taken to double, then the remaining products (each rounded to float) added in double.
// gemm_dot_f16 — tinyBLAS<16> on F16 rows: as gemm_dot_f32 on the F16 values.
#include <cstdint>

namespace lb {

void from_float_f32(const float* src, void* dst, int64_t n);  // a copy
void to_float_f32(const void* src, float* dst, int64_t n);    // a copy
void from_float_f16(const float* src, void* dst, int64_t n);  // round to nearest even
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16_f16c(const float* src, void* dst, int64_t n);  // same bits, F16C

float vec_dot_f32(int64_t n, const void* w, const void* a);
float vec_dot_f32_avx2(int64_t n, const void* w, const void* a);
float vec_dot_f32_avx512(int64_t n, const void* w, const void* a);

float gemm_dot_f32(int64_t n, const void* w, const void* a);
float gemm_dot_f32_avx2(int64_t n, const void* w, const void* a);
float gemm_dot_f32_avx512(int64_t n, const void* w, const void* a);

float vec_dot_f16(int64_t n, const void* w, const void* a);
float vec_dot_f16_avx2(int64_t n, const void* w, const void* a);  // also the AVX-512 level's

float gemm_dot_f16(int64_t n, const void* w, const void* a);
float gemm_dot_f16_avx2(int64_t n, const void* w, const void* a);  // also the AVX-512 level's

// The fold of sixteen lanes that _mm512_reduce_add_ps performs (GCC's and Clang's headers):
// lanes l and l + 8, then l and l + 4, then l and l + 2, then the last two.
inline float fold16(const float* a) {
  float h[8];
  for (int i = 0; i < 8; ++i) h[i] = a[i + 8] + a[i];
  float q[4];
  for (int i = 0; i < 4; ++i) q[i] = h[i + 4] + h[i];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

}  // namespace lb
