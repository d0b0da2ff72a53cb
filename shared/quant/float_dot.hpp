#pragma once
// F32 and F16 weights: row converters in the kernel-table signatures, and dot products. As in
// ggml, F16 weights take F16 activations and F32 weights F32 activations. The scalar dots form
// each product in float and sum in double (ggml's scalar path); the SIMD ones sum in float.
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

float vec_dot_f16(int64_t n, const void* w, const void* a);
float vec_dot_f16_avx2(int64_t n, const void* w, const void* a);  // also the AVX-512 level's

}  // namespace lb
