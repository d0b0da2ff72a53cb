// Run-time dispatch of the per-type kernels.
//
// LAYERBUS_SIMD=scalar|avx2|avx512 caps the SIMD level (for debugging or comparing variants): the
// detected level is min(what the CPU has, the cap). Any other value is reported on stderr and
// ignored.
#include "quant/kernels.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "quant/float_dot.hpp"
#include "quant/prefetch.hpp"
#include "quant/q4_0.hpp"
#include "quant/q4_0_x8.hpp"
#include "quant/q4_k.hpp"
#include "quant/q4_k_x8.hpp"
#include "quant/q6_k.hpp"
#include "quant/q8_0.hpp"
#include "quant/q8_k.hpp"
#include "util/error.hpp"

namespace lb {
namespace {

SimdLevel cpu_level() {
  __builtin_cpu_init();
  // GCC's __builtin_cpu_supports also checks that the OS saves the wider register state (XCR0).
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (!avx2) return SimdLevel::Scalar;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("bmi2");
  return avx512 ? SimdLevel::Avx512 : SimdLevel::Avx2;
}

SimdLevel detect() {
  SimdLevel level = cpu_level();
  if (const char* cap = std::getenv("LAYERBUS_SIMD"); cap && *cap) {
    SimdLevel c;
    if (std::strcmp(cap, "scalar") == 0) {
      c = SimdLevel::Scalar;
    } else if (std::strcmp(cap, "avx2") == 0) {
      c = SimdLevel::Avx2;
    } else if (std::strcmp(cap, "avx512") == 0) {
      c = SimdLevel::Avx512;
    } else {
      std::fprintf(stderr,
                   "layerbus: ignoring LAYERBUS_SIMD=%s (expected scalar, avx2 or avx512)\n", cap);
      return level;
    }
    if (c < level) level = c;
  }
  return level;
}

// A VecDotMultiFn for levels without a dedicated kernel: the vec_dot once per pair of rows. The
// weight rows are one stream, prefetched as matmul prefetches one-row decode.
template <VecDotFn dot>
void each_row(int64_t n, const void* w, size_t w_stride, int64_t n_rows, const void* a,
              size_t a_stride, int n_act, float* y, size_t y_stride) {
  const uint8_t* w0 = static_cast<const uint8_t*>(w);
  StreamPrefetch ahead{w0, w0 + size_t(n_rows) * w_stride};
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* wr = w0 + size_t(r) * w_stride;
    ahead.upto(wr + w_stride + kStreamPrefetchAhead);
    for (int t = 0; t < n_act; ++t) {
      y[size_t(t) * y_stride + size_t(r)] =
          dot(n, wr, static_cast<const uint8_t*>(a) + size_t(t) * a_stride);
    }
  }
}

// One row per weight type: scalar, AVX2, AVX-512.
using Row = Kernels[3];

const Row kF32 = {
    {GgmlType::F32, from_float_f32, to_float_f32, vec_dot_f32, gemm_dot_f32, each_row<vec_dot_f32>,
     nullptr},
    {GgmlType::F32, from_float_f32, to_float_f32, vec_dot_f32_avx2, gemm_dot_f32_avx2,
     each_row<vec_dot_f32_avx2>, nullptr},
    {GgmlType::F32, from_float_f32, to_float_f32, vec_dot_f32_avx512, gemm_dot_f32_avx512,
     each_row<vec_dot_f32_avx512>, nullptr},
};
const Row kF16 = {
    {GgmlType::F16, from_float_f16, to_float_f16, vec_dot_f16, gemm_dot_f16, each_row<vec_dot_f16>,
     nullptr},
    {GgmlType::F16, from_float_f16_f16c, to_float_f16, vec_dot_f16_avx2, gemm_dot_f16_avx2,
     each_row<vec_dot_f16_avx2>, nullptr},
    // zmm registers measured slower than the AVX2 kernels for F16
    {GgmlType::F16, from_float_f16_f16c, to_float_f16, vec_dot_f16_avx2, gemm_dot_f16_avx2,
     each_row<vec_dot_f16_avx2>, nullptr},
};
const Row kQ8_0 = {
    {GgmlType::Q8_0, quantize_row_q8_0, dequantize_row_q8_0, vec_dot_q8_0_q8_0, nullptr,
     each_row<vec_dot_q8_0_q8_0>, nullptr},
    {GgmlType::Q8_0, quantize_row_q8_0, dequantize_row_q8_0, vec_dot_q8_0_q8_0_avx2, nullptr,
     vec_dot_q8_0_q8_0_multi_avx2, vec_dot_q8_0_q8_0_rows_avx2},
    {GgmlType::Q8_0, quantize_row_q8_0, dequantize_row_q8_0, vec_dot_q8_0_q8_0_avx512, nullptr,
     vec_dot_q8_0_q8_0_multi_avx512, vec_dot_q8_0_q8_0_rows_avx512},
};
const Row kQ4_0 = {
    {GgmlType::Q8_0, quantize_row_q8_0, dequantize_row_q4_0, vec_dot_q4_0_q8_0, nullptr,
     each_row<vec_dot_q4_0_q8_0>, nullptr},
    {GgmlType::Q8_0, quantize_row_q8_0, dequantize_row_q4_0, vec_dot_q4_0_q8_0_avx2, nullptr,
     vec_dot_q4_0_q8_0_multi_avx2, vec_dot_q4_0_q8_0_rows_avx2},
    {GgmlType::Q8_0, quantize_row_q8_0, dequantize_row_q4_0, vec_dot_q4_0_q8_0_avx512, nullptr,
     vec_dot_q4_0_q8_0_multi_avx512, vec_dot_q4_0_q8_0_rows_avx512},
};
// No AVX2 kernel: weights are rearranged only where the AVX-512 one runs (repack_for).
const Row kQ4_0_X8 = {
    {GgmlType::Q8_0_X8, quantize_row_q8_0_x8, dequantize_row_q4_0_x8, vec_dot_q4_0_x8_q8_0_x8,
     nullptr, each_row<vec_dot_q4_0_x8_q8_0_x8>, nullptr},
    {GgmlType::Q8_0_X8, quantize_row_q8_0_x8, dequantize_row_q4_0_x8, vec_dot_q4_0_x8_q8_0_x8,
     nullptr, each_row<vec_dot_q4_0_x8_q8_0_x8>, nullptr},
    {GgmlType::Q8_0_X8, quantize_row_q8_0_x8_avx512, dequantize_row_q4_0_x8,
     vec_dot_q4_0_x8_q8_0_x8_avx512, nullptr, vec_dot_q4_0_x8_q8_0_x8_multi_avx512,
     vec_dot_q4_0_x8_q8_0_x8_rows_avx512},
};
const Row kQ4_K = {
    {GgmlType::Q8_K, quantize_row_q8_k, dequantize_row_q4_k, vec_dot_q4_k_q8_k, nullptr,
     each_row<vec_dot_q4_k_q8_k>, nullptr},
    {GgmlType::Q8_K, quantize_row_q8_k, dequantize_row_q4_k, vec_dot_q4_k_q8_k_avx2, nullptr,
     each_row<vec_dot_q4_k_q8_k_avx2>, vec_dot_q4_k_q8_k_rows_avx2},
    {GgmlType::Q8_K, quantize_row_q8_k, dequantize_row_q4_k, vec_dot_q4_k_q8_k_avx512, nullptr,
     vec_dot_q4_k_q8_k_multi_avx512, vec_dot_q4_k_q8_k_rows_avx512},
};
// No AVX2 kernel: weights are rearranged only where the AVX-512 one runs (repack_for).
const Row kQ4_K_X8 = {
    {GgmlType::Q8_K_X8, quantize_row_q8_k_x8, dequantize_row_q4_k_x8, vec_dot_q4_k_x8_q8_k_x8,
     nullptr, each_row<vec_dot_q4_k_x8_q8_k_x8>, nullptr},
    {GgmlType::Q8_K_X8, quantize_row_q8_k_x8, dequantize_row_q4_k_x8, vec_dot_q4_k_x8_q8_k_x8,
     nullptr, each_row<vec_dot_q4_k_x8_q8_k_x8>, nullptr},
    {GgmlType::Q8_K_X8, quantize_row_q8_k_x8_avx512, dequantize_row_q4_k_x8,
     vec_dot_q4_k_x8_q8_k_x8_avx512, nullptr, vec_dot_q4_k_x8_q8_k_x8_multi_avx512,
     vec_dot_q4_k_x8_q8_k_x8_rows_avx512},
};
const Row kQ6_K = {
    {GgmlType::Q8_K, quantize_row_q8_k, dequantize_row_q6_k, vec_dot_q6_k_q8_k, nullptr,
     each_row<vec_dot_q6_k_q8_k>, nullptr},
    {GgmlType::Q8_K, quantize_row_q8_k, dequantize_row_q6_k, vec_dot_q6_k_q8_k_avx2, nullptr,
     each_row<vec_dot_q6_k_q8_k_avx2>, nullptr},
    {GgmlType::Q8_K, quantize_row_q8_k, dequantize_row_q6_k, vec_dot_q6_k_q8_k_avx512, nullptr,
     each_row<vec_dot_q6_k_q8_k_avx512>, vec_dot_q6_k_q8_k_rows_avx512},
};

}  // namespace

SimdLevel detected_simd() {
  static const SimdLevel level = detect();
  return level;
}

const char* simd_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return "scalar";
    case SimdLevel::Avx2:
      return "avx2";
    case SimdLevel::Avx512:
      return "avx512";
  }
  return "unknown";
}

const Kernels& kernels_for(GgmlType weight_type) {
  return kernels_for(weight_type, detected_simd());
}

const Kernels& kernels_for(GgmlType weight_type, SimdLevel level) {
  if (level > detected_simd()) level = detected_simd();
  const int i = static_cast<int>(level);
  switch (weight_type) {
    case GgmlType::F32:
      return kF32[i];
    case GgmlType::F16:
      return kF16[i];
    case GgmlType::Q8_0:
      return kQ8_0[i];
    case GgmlType::Q4_0:
      return kQ4_0[i];
    case GgmlType::Q4_0_X8:
      return kQ4_0_X8[i];
    case GgmlType::Q4_K:
      return kQ4_K[i];
    case GgmlType::Q4_K_X8:
      return kQ4_K_X8[i];
    case GgmlType::Q6_K:
      return kQ6_K[i];
    default:
      break;
  }
  throw Error(std::string("tensor type ") + type_name(weight_type) + " (" +
              std::to_string(static_cast<uint32_t>(weight_type)) +
              ") is not supported by layerbus: no kernels for it (supported: f32, f16, q8_0, "
              "q4_0, q4_K, q6_K)");
}

Repack repack_for(GgmlType weight_type, int64_t cols, SimdLevel level) {
  if (level != SimdLevel::Avx512 || detected_simd() != SimdLevel::Avx512) {
    return {weight_type, nullptr};
  }
  if (weight_type == GgmlType::Q4_0 && cols % kQK4_0_X8 == 0) {
    return {GgmlType::Q4_0_X8, repack_row_q4_0_x8};
  }
  if (weight_type == GgmlType::Q4_K) return {GgmlType::Q4_K_X8, repack_row_q4_k_x8};
  return {weight_type, nullptr};
}

}  // namespace lb
