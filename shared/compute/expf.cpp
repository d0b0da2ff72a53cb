#include "compute/expf.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/kernels.hpp"

namespace lb {
namespace {

using ExpfRowFn = void (*)(const float* x, float* y, int64_t n);

// Another libm (musl, or a glibc that changed its expf) would make a vector variant disagree
// with llama.cpp built against it. Arguments: 2^16 bit patterns spread over every negative and
// positive float, which reaches each table entry and polynomial range many times over.
bool matches_libm(ExpfRowFn expf_row_simd) {
  const std::vector<float> x = spread_floats(65521);
  std::vector<float> got(x.size());
  expf_row_simd(x.data(), got.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = std::exp(x[i]);
    if (std::isnan(want) ? !std::isnan(got[i]) : std::memcmp(&want, &got[i], sizeof want) != 0)
      return false;
  }
  return true;
}

}  // namespace

std::vector<float> spread_floats(uint32_t step) {
  std::vector<float> x;
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += step) {
    const uint32_t bits = uint32_t(u);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    x.push_back(f);
  }
  return x;
}

void expf_row(const float* x, float* y, int64_t n) {
  static const ExpfRowFn simd = []() -> ExpfRowFn {
    const SimdLevel level = detected_simd();
    if (level >= SimdLevel::Avx512 && matches_libm(expf_row_avx512)) return expf_row_avx512;
    if (level >= SimdLevel::Avx2 && matches_libm(expf_row_avx2)) return expf_row_avx2;
    return nullptr;
  }();
  if (simd) {
    simd(x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
  }
}

}  // namespace lb
