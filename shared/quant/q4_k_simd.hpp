#pragma once
// The per-super-block pieces every Q4_K . Q8_K SIMD kernel shares. Include ONLY from
// q4_k_avx2.cpp / q4_k_avx512.cpp, after quant/simd_x86.hpp (internal linkage, as there).
#include "quant/q4_k.hpp"
#include "quant/q8_k.hpp"
#include "quant/simd_x86.hpp"

namespace lb::simd {
namespace {

// [d, dmin] of a super-block as floats, in lanes 0 and 1.
inline __m128 q4_k_d_dmin(const BlockQ4_K& x) {
  uint32_t dd;
  std::memcpy(&dd, &x.d, sizeof dd);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd)));
}

// The eight 6-bit sub-block scales (low 128 bits) and eight mins (high 128 bits) as 16-bit lanes.
inline __m256i q4_k_scales_mins(const BlockQ4_K& x) {
  uint32_t u[4];
  unpack_scales_q4_k(x.scales, u);
  return _mm256_cvtepu8_epi16(_mm_setr_epi32(static_cast<int>(u[0]), static_cast<int>(u[1]),
                                             static_cast<int>(u[2]), static_cast<int>(u[3])));
}

// bsums[2s] + bsums[2s+1]: the activation sums of the eight 32-element sub-blocks (Q8_K keeps
// sums of 16), which the mins multiply.
inline __m128i q8_k_pair_sums(const BlockQ8_K& y) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.bsums));
  return _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
}

}  // namespace
}  // namespace lb::simd
