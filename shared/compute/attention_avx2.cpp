// attend_head with F16C and FMA: the scalar reference's operations element for element, eight
// head dimensions at a time. The F16 accumulator lives in floats that always hold F16 values
// (every update is rounded through _mm256_cvtps_ph with round-to-nearest-even, exactly what
// fp32_to_fp16 does), so reading it back costs no conversion and the bits are the scalar ones.
#include <cmath>
#include <vector>

#include "compute/attention.hpp"
#include "quant/float_dot.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

inline __m256 round_f16(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

inline float round_f16(float x) {
  return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}

inline __m256 load_f16(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace

void attend_head_f16c(const float* q, const Half* k, const Half* v, int64_t stride, int64_t n_pos,
                      int64_t head_dim, float scale, float* out) {
  thread_local std::vector<Half> q16;
  thread_local std::vector<float> acc;
  q16.resize(size_t(head_dim));
  acc.assign(size_t(head_dim), 0.0f);
  fp32_to_fp16_row_f16c(q, q16.data(), head_dim);
  float* a = acc.data();
  const int64_t n8 = head_dim & ~int64_t(7);
  float m = -INFINITY;
  float sum = 0.0f;
  for (int64_t j = 0; j < n_pos; ++j) {
    const Half* kj = k + j * stride;
    const Half* vj = v + j * stride;
    const float s = vec_dot_f16_avx2(head_dim, kj, q16.data()) * scale;
    float ms = 1.0f;
    float vs = 1.0f;
    if (s > m) {
      const float m_old = m;
      m = s;
      ms = std::exp(m_old - m);
      // Rescale, then add this position with weight 1: two roundings, as the scalar loops.
      const __m256 msv = _mm256_set1_ps(ms);
      int64_t d = 0;
      for (; d < n8; d += 8) {
        const __m256 scaled = round_f16(_mm256_mul_ps(_mm256_loadu_ps(a + d), msv));
        _mm256_storeu_ps(a + d,
                         round_f16(_mm256_fmadd_ps(load_f16(vj + d), _mm256_set1_ps(vs), scaled)));
      }
      for (; d < head_dim; ++d) {
        a[d] = round_f16(std::fma(_cvtsh_ss(vj[d]), vs, round_f16(a[d] * ms)));
      }
    } else {
      vs = std::exp(s - m);
      const __m256 vsv = _mm256_set1_ps(vs);
      int64_t d = 0;
      for (; d < n8; d += 8) {
        _mm256_storeu_ps(a + d,
                         round_f16(_mm256_fmadd_ps(load_f16(vj + d), vsv, _mm256_loadu_ps(a + d))));
      }
      for (; d < head_dim; ++d) a[d] = round_f16(std::fma(_cvtsh_ss(vj[d]), vs, a[d]));
    }
    sum = std::fma(sum, ms, vs);
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int64_t d = 0; d < head_dim; ++d) out[d] = a[d] * inv;
}

}  // namespace lb
