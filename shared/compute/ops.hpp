#pragma once
// The element-wise and per-row operations of a llama-family layer, written as plain loops in the
// same arithmetic order as ggml's CPU backend (as built for x86-64 with AVX-512, the FMAs GCC
// forms included) so results match llama.cpp to the last bits.
#include <cstdint>

namespace lb {

// y = (x * 1/sqrt(mean(x^2) + eps)) * w, over n elements (sum of squares in double, as ggml).
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// Rotary position embedding: pairs (2i, 2i+1) of a head vector, or (i, i + dims/2) in the NeoX
// layout, over its first `dims` elements, rotated by angles that depend on the position only.
// freq_factors (may be null) divide each angle.
struct RopeParams {
  int64_t dims;
  float base;
  float freq_scale;
  bool neox;
  const float* freq_factors;
};
// The cosines and sines of a position's dims/2 angles (computed once per position: every head of
// every layer rotates by the same ones).
void rope_angles(int64_t pos, const RopeParams& p, float* cos, float* sin);
// Rotates one head vector in place by angles from rope_angles.
void rope_rotate(float* x, const float* cos, const float* sin, int64_t dims, bool neox);

// SwiGLU, one row at a time as ggml computes it, is quant/silu.hpp's swiglu_row.

// x += y
void add_inplace(float* x, const float* y, int64_t n);

}  // namespace lb
