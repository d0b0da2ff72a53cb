// Scalar references of the F32/F16 dots: the exact summation orders of llama.cpp's AVX-512 CPU
// backend (see float_dot.hpp), written lane by lane. std::fma stands for each fused
// multiply-add; the plain `a + b` and `a * b` below must not be contracted, which holds as this
// file is compiled without FMA instructions (the SIMD files do their own, explicit FMAs).
#include "quant/float_dot.hpp"

#include <cmath>
#include <cstring>

#include "quant/f16.hpp"

namespace lb {
namespace {

// ggml's main loop: four sixteen-lane accumulators over n & ~63 elements, combined and folded.
template <typename Load>
float main_loop_sum(int64_t np, Load load_product_fma) {
  float acc[4][16] = {};
  for (int64_t i = 0; i < np; i += 64) {
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 16; ++l) acc[j][l] = load_product_fma(i + 16 * j + l, acc[j][l]);
    }
  }
  float sum[16];
  for (int l = 0; l < 16; ++l) sum[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
  return fold16(sum);
}

}  // namespace

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
  const int64_t np = n & ~int64_t(63);
  float sum = main_loop_sum(np, [&](int64_t i, float acc) { return std::fma(x[i], y[i], acc); });
  // The leftover loop `sumf += x[i]*y[i]` as GCC vectorised it: whole chunks of 16 and then 8
  // products, added one by one in order (unfused), and a scalar fma for each of the rest.
  int64_t i = np;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; ++l) sum += x[i + l] * y[i + l];
  }
  if (i + 8 <= n) {
    for (int l = 0; l < 8; ++l) sum += x[i + l] * y[i + l];
    i += 8;
  }
  for (; i < n; ++i) sum = std::fma(x[i], y[i], sum);
  return sum;
}

float gemm_dot_f32(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  float acc[16] = {};
  for (int64_t i = 0; i < n; i += 16) {
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(x[i + l], y[i + l], acc[l]);
  }
  return fold16(acc);
}

float vec_dot_f16(int64_t n, const void* w, const void* a) {
  const Half* x = static_cast<const Half*>(w);
  const Half* y = static_cast<const Half*>(a);
  const int64_t np = n & ~int64_t(63);
  // ggml_float (double) sum: the folded main loop, then each leftover product rounded to float.
  double sum = np ? main_loop_sum(np,
                                  [&](int64_t i, float acc) {
                                    return std::fma(fp16_to_fp32(x[i]), fp16_to_fp32(y[i]), acc);
                                  })
                  : 0.0;
  for (int64_t i = np; i < n; ++i) {
    sum += static_cast<double>(fp16_to_fp32(x[i]) * fp16_to_fp32(y[i]));
  }
  return static_cast<float>(sum);
}

float gemm_dot_f16(int64_t n, const void* w, const void* a) {
  const Half* x = static_cast<const Half*>(w);
  const Half* y = static_cast<const Half*>(a);
  float acc[16] = {};
  for (int64_t i = 0; i < n; i += 16) {
    for (int l = 0; l < 16; ++l) {
      acc[l] = std::fma(fp16_to_fp32(x[i + l]), fp16_to_fp32(y[i + l]), acc[l]);
    }
  }
  return fold16(acc);
}

}  // namespace lb
