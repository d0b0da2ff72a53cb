#include "quant/float_dot.hpp"
#include "quant/simd_x86.hpp"

namespace lb {

float vec_dot_f32_avx2(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  }
  float sum = simd::hsum(_mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3)));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float vec_dot_f16_avx2(int64_t n, const void* w, const void* a) {
  const Half* x = static_cast<const Half*>(w);
  const Half* y = static_cast<const Half*>(a);
  auto load = [](const Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  };
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(load(x + i), load(y + i), s0);
    s1 = _mm256_fmadd_ps(load(x + i + 8), load(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(load(x + i + 16), load(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(load(x + i + 24), load(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load(x + i), load(y + i), s0);
  float sum = simd::hsum(_mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3)));
  for (; i < n; ++i) sum += _cvtsh_ss(x[i]) * _cvtsh_ss(y[i]);
  return sum;
}

}  // namespace lb
