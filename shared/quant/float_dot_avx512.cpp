// AVX-512 F32 dots, bit-identical to the scalar references in float_dot.cpp (ggml's own order is
// an AVX-512 one, so here each accumulator is one zmm register). F16 has no AVX-512 variant:
// vcvtph2ps on 512-bit registers made it slower than the AVX2 kernel on Zen 4, so the AVX-512
// level uses the AVX2 F16 kernels.
//
// Only explicit FMA intrinsics fuse: products that ggml rounds before adding are added with
// _mm_add_ss (a builtin GCC cannot contract with the multiply), never with a plain `+`.
#include "quant/float_dot.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// _mm512_reduce_add_ps's fold, spelled out so it does not depend on the header's version.
inline float fold16(__m512 v) {
  return simd::hsum(_mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v)));
}

}  // namespace

float vec_dot_f32_avx512(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  const int64_t np = n & ~int64_t(63);
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (int64_t i = 0; i < np; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), s3);
  }
  __m128 s = _mm_set_ss(fold16(_mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3))));
  // The leftover elements as GCC compiled ggml's loop: rounded products in chunks of 16 and 8,
  // added in order; the last few by scalar fma.
  int64_t i = np;
  alignas(64) float p[16];
  for (; i + 16 <= n; i += 16) {
    _mm512_store_ps(p, _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (float v : p) s = _mm_add_ss(s, _mm_set_ss(v));
  }
  if (i + 8 <= n) {
    _mm256_store_ps(p, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (int l = 0; l < 8; ++l) s = _mm_add_ss(s, _mm_set_ss(p[l]));
    i += 8;
  }
  for (; i < n; ++i) s = _mm_fmadd_ss(_mm_set_ss(x[i]), _mm_set_ss(y[i]), s);
  return _mm_cvtss_f32(s);
}

float gemm_dot_f32_avx512(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc);
  }
  return fold16(acc);
}

}  // namespace lb
