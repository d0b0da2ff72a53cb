#include "compute/attention.hpp"

#include <cmath>
#include <vector>

namespace lb {

void attend_head(const float* q, const Half* k, const Half* v, int64_t stride, int64_t n_pos,
                 int64_t head_dim, float scale, float* out) {
  std::vector<float> q16(static_cast<size_t>(head_dim));  // q after the round trip through F16
  for (int64_t d = 0; d < head_dim; ++d) q16[size_t(d)] = fp16_to_fp32(fp32_to_fp16(q[d]));
  std::vector<Half> acc(static_cast<size_t>(head_dim), 0);
  float m = -INFINITY;
  float sum = 0.0f;
  for (int64_t j = 0; j < n_pos; ++j) {
    const Half* kj = k + j * stride;
    const Half* vj = v + j * stride;
    float s = 0.0f;
    for (int64_t d = 0; d < head_dim; ++d) s += q16[size_t(d)] * fp16_to_fp32(kj[d]);
    s *= scale;
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
      acc[size_t(d)] = fp32_to_fp16(std::fma(fp16_to_fp32(vj[d]), vs, fp16_to_fp32(acc[size_t(d)])));
    }
    sum = sum * ms + vs;
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int64_t d = 0; d < head_dim; ++d) out[d] = fp16_to_fp32(acc[size_t(d)]) * inv;
}

}  // namespace lb
