#include "quant/float_dot.hpp"

#include <cstring>

#include "quant/f16.hpp"

namespace lb {

void from_float_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void to_float_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void from_float_f16(const float* src, void* dst, int64_t n) {
  fp32_to_fp16_row(src, static_cast<Half*>(dst), n);
}

void to_float_f16(const void* src, float* dst, int64_t n) {
  fp16_to_fp32_row(static_cast<const Half*>(src), dst, n);
}

void from_float_f16_f16c(const float* src, void* dst, int64_t n) {
  fp32_to_fp16_row_f16c(src, static_cast<Half*>(dst), n);
}

float vec_dot_f32(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

float vec_dot_f16(int64_t n, const void* w, const void* a) {
  const Half* x = static_cast<const Half*>(w);
  const Half* y = static_cast<const Half*>(a);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i)
    sum += static_cast<double>(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
  return static_cast<float>(sum);
}

}  // namespace lb
