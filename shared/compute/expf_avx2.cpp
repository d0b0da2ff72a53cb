// expf_row_avx2: glibc's expf (sysdeps/ieee754/flt-32/e_expf.c) as its FMA build executes it,
// four arguments per register. Its steps, each one rounding as there:
//   kd = fma(32/ln2, x, 0x1.8p52)   (k = round(x·32/ln2) lands in kd's low bits)
//   r  = fma(32/ln2, x, -(kd - 0x1.8p52))
//   s  = 2^(k/32) as a double: table[k % 32] with k/32 added to its exponent bits
//   y  = fma(fma(C0, r, C1), r·r, fma(C2, r, 1)) · s, rounded to float
#include <cmath>
#include <cstring>

#include "compute/expf.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

constexpr int kTableBits = 5;

// 2^(i/32) minus i/32 in the exponent field, so that adding k << (52 - 5) gives 2^(k/32).
alignas(32) constexpr uint64_t kTable[1 << kTableBits] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};

constexpr uint64_t kInvLn2Scaled = 0x40471547652b82fe;  // 32/ln2
constexpr uint64_t kShift = 0x4338000000000000;         // 0x1.8p52
constexpr uint64_t kC0 = 0x3ebc6af84b912394;            // the cubic's coefficients, scaled
constexpr uint64_t kC1 = 0x3f2ebfce50fac4f3;
constexpr uint64_t kC2 = 0x3f962e42ff0c52d6;

inline __m256d constant(uint64_t bits) {
  return _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(bits)));
}

inline __m128 exp4(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  const __m256d inv_ln2 = constant(kInvLn2Scaled);
  const __m256d shift = constant(kShift);
  const __m256d kd_shifted = _mm256_fmadd_pd(inv_ln2, xd, shift);
  const __m256i ki = _mm256_castpd_si256(kd_shifted);
  const __m256d r = _mm256_fmsub_pd(inv_ln2, xd, _mm256_sub_pd(kd_shifted, shift));
  const __m256i t =
      _mm256_i64gather_epi64(reinterpret_cast<const long long*>(kTable),
                             _mm256_and_si256(ki, _mm256_set1_epi64x((1 << kTableBits) - 1)), 8);
  const __m256d s =
      _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64(ki, 52 - kTableBits)));
  const __m256d z = _mm256_fmadd_pd(r, constant(kC0), constant(kC1));
  const __m256d r2 = _mm256_mul_pd(r, r);
  const __m256d y = _mm256_fmadd_pd(z, r2, _mm256_fmadd_pd(r, constant(kC2), _mm256_set1_pd(1.0)));
  return _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
}

// Lanes glibc sends down its special-case path: |x| >= 88 (top 12 bits of |x| above 0x42a),
// infinities and NaN.
inline int special_lanes(__m256 x) {
  const __m256i top =
      _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff));
  return _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x42a))));
}

}  // namespace

void expf_row_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 e = _mm256_set_m128(exp4(_mm256_extractf128_ps(v, 1)), exp4(_mm256_castps256_ps128(v)));
    if (const int special = special_lanes(v)) {
      alignas(32) float args[8], exps[8];
      _mm256_store_ps(args, v);
      _mm256_store_ps(exps, e);
      for (int l = 0; l < 8; ++l) {
        if (special >> l & 1) exps[l] = std::exp(args[l]);
      }
      e = _mm256_load_ps(exps);
    }
    _mm256_storeu_ps(y + i, e);  // y may be x
  }
  if (i < n) {
    alignas(32) float tail_x[8] = {};
    alignas(32) float tail_y[8];
    std::memcpy(tail_x, x + i, size_t(n - i) * sizeof(float));
    expf_row_avx2(tail_x, tail_y, 8);
    std::memcpy(y + i, tail_y, size_t(n - i) * sizeof(float));
  }
}

}  // namespace lb
