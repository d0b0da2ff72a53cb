// AVX2 F32/F16 dots, bit-identical to the scalar references in float_dot.cpp: each sixteen-lane
// accumulator of ggml's AVX-512 order lives in two ymm registers (lanes 0-7 and 8-15).
//
// Only explicit FMA intrinsics fuse: products that ggml rounds before adding are added with
// _mm_add_ss (a builtin GCC cannot contract with the multiply), never with a plain `+`.
#include "quant/float_dot.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m256 load_f32(const float* p) {
  return _mm256_loadu_ps(p);
}
inline __m256 load_f16(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The fold of a sixteen-lane value held as (lo, hi) (see fold16 in float_dot.hpp).
inline float fold16(__m256 lo, __m256 hi) {
  return simd::hsum(_mm256_add_ps(hi, lo));
}

// ggml's main loop over the first np (a multiple of 64) elements, folded to one float. Named
// registers rather than an array: GCC -O2 kept an accumulator array on the stack.
template <typename T, typename Load>
float main_loop(const T* x, const T* y, int64_t np, Load load) {
  __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l, a2l = a0l, a2h = a0l,
         a3l = a0l, a3h = a0l;
  for (int64_t i = 0; i < np; i += 64) {
    a0l = _mm256_fmadd_ps(load(x + i), load(y + i), a0l);
    a0h = _mm256_fmadd_ps(load(x + i + 8), load(y + i + 8), a0h);
    a1l = _mm256_fmadd_ps(load(x + i + 16), load(y + i + 16), a1l);
    a1h = _mm256_fmadd_ps(load(x + i + 24), load(y + i + 24), a1h);
    a2l = _mm256_fmadd_ps(load(x + i + 32), load(y + i + 32), a2l);
    a2h = _mm256_fmadd_ps(load(x + i + 40), load(y + i + 40), a2h);
    a3l = _mm256_fmadd_ps(load(x + i + 48), load(y + i + 48), a3l);
    a3h = _mm256_fmadd_ps(load(x + i + 56), load(y + i + 56), a3h);
  }
  const __m256 lo = _mm256_add_ps(_mm256_add_ps(a0l, a2l), _mm256_add_ps(a1l, a3l));
  const __m256 hi = _mm256_add_ps(_mm256_add_ps(a0h, a2h), _mm256_add_ps(a1h, a3h));
  return fold16(lo, hi);
}

// llamafile's GEMM order (see gemm_dot in kernels.hpp): one sixteen-lane accumulator over n (a
// multiple of 16) elements, folded.
template <typename T, typename Load>
float gemm_loop(const T* x, const T* y, int64_t n, Load load) {
  __m256 lo = _mm256_setzero_ps();
  __m256 hi = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    lo = _mm256_fmadd_ps(load(x + i), load(y + i), lo);
    hi = _mm256_fmadd_ps(load(x + i + 8), load(y + i + 8), hi);
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
  __m128 s = _mm_set_ss(main_loop(x, y, np, load_f32));
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
  return gemm_loop(static_cast<const float*>(w), static_cast<const float*>(a), n, load_f32);
}

float vec_dot_f16_avx2(int64_t n, const void* w, const void* a) {
  const Half* x = static_cast<const Half*>(w);
  const Half* y = static_cast<const Half*>(a);
  const int64_t np = n & ~int64_t(63);
  double sum = np ? main_loop(x, y, np, load_f16) : 0.0;
  int64_t i = np;
  for (; i + 8 <= n; i += 8) {
    alignas(32) float p[8];
    _mm256_store_ps(p, _mm256_mul_ps(load_f16(x + i), load_f16(y + i)));
    for (float v : p) sum += static_cast<double>(v);
  }
  for (; i < n; ++i) {
    sum += static_cast<double>(
        _mm_cvtss_f32(_mm_mul_ss(_mm_set_ss(_cvtsh_ss(x[i])), _mm_set_ss(_cvtsh_ss(y[i])))));
  }
  return static_cast<float>(sum);
}

float gemm_dot_f16_avx2(int64_t n, const void* w, const void* a) {
  return gemm_loop(static_cast<const Half*>(w), static_cast<const Half*>(a), n, load_f16);
}

}  // namespace lb
