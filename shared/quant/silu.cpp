// Scalar reference of ggml's SwiGLU (see silu.hpp) and the run-time dispatch. std::fma stands for
// each fused multiply-add of ggml_v_expf; this file is compiled without FMA instructions, so no
// other operation gets fused.
#include "quant/silu.hpp"

#include <cmath>

#include "quant/kernels.hpp"

namespace lb {

float ggml_v_expf(float x) {
  const float r = 0x1.8p23f;  // adding it rounds x / ln 2 to an integer
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  return std::ldexp(j, static_cast<int>(n));  // _mm512_scalef_ps: one rounding, also subnormal
}

void swiglu_ref(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end) {
  for (int64_t i = 0; i < poly_end; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + ggml_v_expf(0.0f - g))) * up[i];  // ggml_v_silu
  }
  for (int64_t i = poly_end; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];  // ggml_silu_f32, libm's expf
  }
}

void swiglu_split(const float* gate, const float* up, float* out, int64_t n, int64_t poly_end) {
  static const SimdLevel level = detected_simd();
  switch (level) {
    case SimdLevel::Avx512:
      swiglu_avx512(gate, up, out, n, poly_end);
      return;
    case SimdLevel::Avx2:
      swiglu_avx2(gate, up, out, n, poly_end);
      return;
    case SimdLevel::Scalar:
      break;
  }
  swiglu_ref(gate, up, out, n, poly_end);
}

}  // namespace lb
