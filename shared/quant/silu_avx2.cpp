// AVX2 SwiGLU giving the AVX-512 level's bits (ggml_v_expf's AVX-512 formula, see silu.hpp),
// eight lanes at a time. AVX2 has no vscalefps: 2^n is built from n's bits, which is exact
// while n stays in the normal range [-126, 127]; a block with any lane outside it (e^-x
// subnormal or overflowing, |x| > ~87) takes the scalar reference instead.
#include <cmath>

#include "quant/silu.hpp"
#include "quant/simd_x86.hpp"

namespace lb {

void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end) {
  int64_t i = 0;
  for (; i + 8 <= poly_end; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    const __m256 nx = _mm256_sub_ps(_mm256_setzero_ps(), x);
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(nx, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 k = _mm256_sub_ps(z, r);
    const __m256 in_range = _mm256_and_ps(_mm256_cmp_ps(k, _mm256_set1_ps(-126.0f), _CMP_GE_OQ),
                                          _mm256_cmp_ps(k, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
    if (_mm256_movemask_ps(in_range) != 0xff) {
      for (int l = 0; l < 8; ++l) {
        const float g = gate[i + l];
        out[i + l] = (g / (1.0f + ggml_v_expf(0.0f - g))) * up[i + l];
      }
      continue;
    }
    const __m256 b = _mm256_fnmadd_ps(k, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(k, _mm256_set1_ps(0x1.62e4p-1f), nx));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
            _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256i ki = _mm256_cvtps_epi32(k);  // k is integral
    const __m256 pow2 =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ki, _mm256_set1_epi32(127)), 23));
    __m256 e = _mm256_mul_ps(j, pow2);  // one rounding, as vscalefps
    // Keeps GCC from contracting this multiply with the add below into an fma (ggml adds the
    // rounded e^-x).
    __asm__("" : "+x"(e));
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  if (i < n) swiglu_ref(gate + i, up + i, out + i, n - i, poly_end - i);
}

}  // namespace lb
