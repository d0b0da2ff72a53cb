// AVX2 F32/F16 dots, bit-identical to the scalar references in float_dot.cpp: each sixteen-lane
// accumulator of ggml's AVX-512 order lives in two ymm registers (lanes 0-7 and 8-15).
//
// Only explicit FMA intrinsics fuse: products that ggml rounds before adding are added with
// _mm_add_ss (a builtin GCC cannot contract with the multiply), never with a plain `+`.
#include "quant/float_dot.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// The fold of a sixteen-lane value held as (lo, hi) (see fold16 in float_dot.hpp).
inline float fold16(__m256 lo, __m256 hi) {
  return simd::hsum(_mm256_add_ps(hi, lo));
}

// llamafile's GEMM order (see gemm_dot in kernels.hpp): one sixteen-lane accumulator over n (a
// multiple of 16) elements, folded.
template <typename T>
float gemm_loop(const T* x, const T* y, int64_t n) {
  __m256 lo = _mm256_setzero_ps();
  __m256 hi = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    lo = _mm256_fmadd_ps(simd::load8(x + i), simd::load8(y + i), lo);
    hi = _mm256_fmadd_ps(simd::load8(x + i + 8), simd::load8(y + i + 8), hi);
  }
  return fold16(lo, hi);
}

// Adds the 8 products x[i..i+8) * y[i..i+8) (each rounded) to s one by one, in order.
inline __m128 add_products_8(__m128 s, const float* x, const float* y) {
  alignas(32) float p[8];
  _mm256_store_ps(p, _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(y)));
  for (float v : p) s = _mm_add_ss(s, _mm_set_ss(v));
  return s;
}

}  // namespace

float vec_dot_f32_avx2(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  const int64_t np = n & ~int64_t(63);
  __m128 s = _mm_set_ss(simd::hsum(simd::dot_lanes(x, y, np)));
  int64_t i = np;
  for (; i + 16 <= n; i += 16) {
    s = add_products_8(s, x + i, y + i);
    s = add_products_8(s, x + i + 8, y + i + 8);
  }
  if (i + 8 <= n) {
    s = add_products_8(s, x + i, y + i);
    i += 8;
  }
  for (; i < n; ++i) s = _mm_fmadd_ss(_mm_set_ss(x[i]), _mm_set_ss(y[i]), s);
  return _mm_cvtss_f32(s);
}

float gemm_dot_f32_avx2(int64_t n, const void* w, const void* a) {
  return gemm_loop(static_cast<const float*>(w), static_cast<const float*>(a), n);
}

float vec_dot_f16_avx2(int64_t n, const void* w, const void* a) {
  const Half* x = static_cast<const Half*>(w);
  const Half* y = static_cast<const Half*>(a);
  const int64_t np = n & ~int64_t(63);
  return simd::f16_dot_tail(x, y, np, n, np ? simd::hsum(simd::dot_lanes(x, y, np)) : 0.0);
}

float gemm_dot_f16_avx2(int64_t n, const void* w, const void* a) {
  return gemm_loop(static_cast<const Half*>(w), static_cast<const Half*>(a), n);
}

}  // namespace lb
