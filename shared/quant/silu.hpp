#pragma once
// SwiGLU as ggml's CPU backend computes it on an AVX-512 machine (ggml_vec_swiglu_f32):
// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x), where e^-x comes from ggml_v_expf (a
// polynomial, not libm's expf) for the first n & ~15 elements of a row, sixteen at a time, and
// from expf for the rest. The split is per row. Every level gives the same bits.
#include <cstdint>

namespace lb {

// ggml_v_expf's AVX-512 formula for one lane: e^x = 2^n * p(b), n = round(x / ln 2), b the
// remainder, p a degree-5 polynomial; |n| > 192 gives 0 or infinity.
float ggml_v_expf(float x);

// Elements [0, poly_end) take e^-x from ggml_v_expf, elements [poly_end, n) from expf.
void swiglu_ref(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end);
void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end);
void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end);
// At the best level this CPU has (see kernels.hpp's detected_simd).
void swiglu_split(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end);

// One row of n elements exactly as ggml: poly_end = n & ~15.
inline void swiglu_row(const float* gate, const float* up, float* out, int64_t n) {
  swiglu_split(gate, up, out, n, n & ~int64_t(15));
}

}  // namespace lb
