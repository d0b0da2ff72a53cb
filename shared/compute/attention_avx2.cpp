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

// The weighted sum of values over dims [0, 8C) of a head (v: position 0 of those dims), as the
// scalar loops: per position, when w_old[j] != 1, the sum is first rescaled by it (rounded to
// F16), then v[j] * w_new[j] is added with one fma (rounded to F16). With w_old[j] == 1 the
// rescale would change nothing (the sum holds F16 values), so it is skipped. The C accumulators
// stay in registers across positions.
template <int C>
void accumulate_values(const Half* v, int64_t stride, int64_t n_pos, const float* w_old,
                       const float* w_new, float* sum) {
  __m256 acc[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) acc[c] = _mm256_loadu_ps(sum + 8 * c);
  for (int64_t j = 0; j < n_pos; ++j) {
    const Half* vj = v + j * stride;
    const __m256 vs = _mm256_set1_ps(w_new[j]);
    if (w_old[j] != 1.0f) {
      const __m256 ms = _mm256_set1_ps(w_old[j]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[c] = round_f16(_mm256_mul_ps(acc[c], ms));
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      acc[c] = round_f16(_mm256_fmadd_ps(load_f16(vj + 8 * c), vs, acc[c]));
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(sum + 8 * c, acc[c]);
}

}  // namespace

void attend_head_f16c(const float* q, const Half* k, const Half* v, int64_t stride, int64_t n_pos,
                      int64_t head_dim, float scale, float* out) {
  // The scalar reference's steps, regrouped: all scores first, then the online softmax's weights,
  // then the weighted sum of values. Each value is computed exactly as there, but the three loops
  // carry no dependence on each other's latencies (a score's dot, its exp, the F16 updates).
  thread_local std::vector<Half> q16;
  thread_local std::vector<float> acc, w_old, w_new;
  q16.resize(size_t(head_dim));
  acc.assign(size_t(head_dim), 0.0f);
  w_old.resize(size_t(n_pos));
  w_new.resize(size_t(n_pos));
  fp32_to_fp16_row_f16c(q, q16.data(), head_dim);
  // w_new[j]: position j's score, then its weight; w_old[j]: what scales the sum before it.
  for (int64_t j = 0; j < n_pos; ++j) {
    w_new[size_t(j)] = vec_dot_f16_avx2(head_dim, k + j * stride, q16.data()) * scale;
  }
  float m = -INFINITY;
  float sum = 0.0f;
  for (int64_t j = 0; j < n_pos; ++j) {
    const float s = w_new[size_t(j)];
    float ms = 1.0f;
    float vs = 1.0f;
    if (s > m) {
      ms = std::exp(m - s);
      m = s;
    } else {
      vs = std::exp(s - m);
    }
    w_old[size_t(j)] = ms;
    w_new[size_t(j)] = vs;
    sum = std::fma(sum, ms, vs);
  }
  // Up to 64 dims (eight registers of sums) per pass over the positions.
  float* a = acc.data();
  int64_t d = 0;
  for (; d + 64 <= head_dim; d += 64) {
    accumulate_values<8>(v + d, stride, n_pos, w_old.data(), w_new.data(), a + d);
  }
  const int64_t chunks = (head_dim - d) / 8;
  if (chunks > 0) {
    simd::with_count(int(chunks), [&](auto c) {
      accumulate_values<decltype(c)::value>(v + d, stride, n_pos, w_old.data(), w_new.data(),
                                            a + d);
    });
  }
  d += 8 * chunks;
  for (; d < head_dim; ++d) {
    for (int64_t j = 0; j < n_pos; ++j) {
      const float ms = w_old[size_t(j)];
      if (ms != 1.0f) a[d] = round_f16(a[d] * ms);
      a[d] = round_f16(std::fma(_cvtsh_ss(v[j * stride + d]), w_new[size_t(j)], a[d]));
    }
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int64_t d = 0; d < head_dim; ++d) out[d] = a[d] * inv;
}

}  // namespace lb
