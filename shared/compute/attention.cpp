#include "compute/attention.hpp"

#include <cmath>
#include <vector>

#include "quant/kernels.hpp"

namespace lb {

void attend_heads(const KvRows& kv, const float* q, int64_t h0, int64_t n_heads, float scale,
                  float* out) {
  static const SimdLevel level = detected_simd();
  if (level >= SimdLevel::Avx2) {
    attend_heads_simd(kv, q, h0, n_heads, scale, out, level);
  } else {
    for (int64_t i = 0; i < n_heads; ++i) {
      attend_head_scalar(kv, q + i * kv.head_dim, h0 + i, scale, out + i * kv.head_dim);
    }
  }
}

void attend_head_scalar(const KvRows& kv, const float* q, int64_t h, float scale, float* out) {
  // ggml_compute_forward_flash_attn_ext_f16_one_chunk with an F16 cache, step for step:
  // q rounded to F16; each score one ggml_vec_dot_f16 (the F16 kernel, same bits at every SIMD
  // level); an online softmax whose sum S = S*ms + vs GCC compiles to one fma; the weighted sum
  // of values kept in F16, each update one fma rounded to F16 (ggml_vec_mad_f16 /
  // ggml_vec_scale_f16); at the end the F16 sum times 1/S.
  static const Kernels& f16 = kernels_for(GgmlType::F16, SimdLevel::Scalar);
  const int64_t head_dim = kv.head_dim;
  const Half* k = kv.k + (h / kv.group) * head_dim;
  const Half* v = kv.v + (h / kv.group) * head_dim;
  thread_local std::vector<Half> q16;
  thread_local std::vector<Half> acc;
  q16.resize(size_t(head_dim));
  acc.assign(size_t(head_dim), 0);
  f16.act_from_float(q, q16.data(), head_dim);
  float m = -INFINITY;
  float sum = 0.0f;
  for (int64_t j = 0; j < kv.n_pos; ++j) {
    const Half* kj = k + j * kv.stride;
    const Half* vj = v + j * kv.stride;
    const float s = f16.vec_dot(head_dim, kj, q16.data()) * scale;
    float ms = 1.0f;  // rescales what was accumulated when a new maximum appears
    float vs = 1.0f;  // weight of this position
    if (s > m) {
      const float m_old = m;
      m = s;
      ms = std::exp(m_old - m);
      for (int64_t d = 0; d < head_dim; ++d) {
        acc[size_t(d)] = fp32_to_fp16(fp16_to_fp32(acc[size_t(d)]) * ms);
      }
    } else {
      vs = std::exp(s - m);
    }
    for (int64_t d = 0; d < head_dim; ++d) {
      acc[size_t(d)] =
          fp32_to_fp16(std::fma(fp16_to_fp32(vj[d]), vs, fp16_to_fp32(acc[size_t(d)])));
    }
    sum = std::fma(sum, ms, vs);
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int64_t d = 0; d < head_dim; ++d) out[d] = fp16_to_fp32(acc[size_t(d)]) * inv;
}

}  // namespace lb
