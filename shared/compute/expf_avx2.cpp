// expf_row_avx2: glibc's expf as its FMA build executes it (compute/expf_glibc.hpp), four
// arguments per register.
#include "compute/expf.hpp"
#include "compute/expf_glibc.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

using namespace expf_glibc;

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

// Lanes glibc sends down its special-case path.
inline int special_lanes(__m256 x) {
  const __m256i top =
      _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff));
  return _mm256_movemask_ps(
      _mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(kSpecialTop))));
}

}  // namespace

void expf_row_avx2(const float* x, float* y, int64_t n) {
  row_in_blocks<8>(x, y, n, [](const float* in, float* e) -> uint32_t {
    const __m256 v = _mm256_loadu_ps(in);
    _mm_store_ps(e, exp4(_mm256_castps256_ps128(v)));
    _mm_store_ps(e + 4, exp4(_mm256_extractf128_ps(v, 1)));
    return uint32_t(special_lanes(v));
  });
}

}  // namespace lb
