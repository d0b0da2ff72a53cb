// expf_row_avx512: glibc's expf as its FMA build executes it (compute/expf_glibc.hpp), eight
// arguments per 512-bit register of doubles, the table held in registers (two permutes where the
// AVX2 variant gathers from memory).
#include "compute/expf.hpp"
#include "compute/expf_glibc.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

using namespace expf_glibc;

inline __m512d constant(uint64_t bits) {
  return _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(bits)));
}

// table[k % 32] for eight lanes: entries 0-15 and 16-31 each by one permute, bit 4 choosing.
inline __m512i table_entries(__m512i k) {
  const __m512i t0 = _mm512_load_si512(kTable);
  const __m512i t1 = _mm512_load_si512(kTable + 8);
  const __m512i t2 = _mm512_load_si512(kTable + 16);
  const __m512i t3 = _mm512_load_si512(kTable + 24);
  const __mmask8 high = _mm512_test_epi64_mask(k, _mm512_set1_epi64(16));
  return _mm512_mask_blend_epi64(high, _mm512_permutex2var_epi64(t0, k, t1),
                                 _mm512_permutex2var_epi64(t2, k, t3));
}

inline __m256 exp8(__m256 x) {
  const __m512d xd = _mm512_cvtps_pd(x);
  const __m512d inv_ln2 = constant(kInvLn2Scaled);
  const __m512d shift = constant(kShift);
  const __m512d kd_shifted = _mm512_fmadd_pd(inv_ln2, xd, shift);
  const __m512i ki = _mm512_castpd_si512(kd_shifted);
  const __m512d r = _mm512_fmsub_pd(inv_ln2, xd, _mm512_sub_pd(kd_shifted, shift));
  const __m512d s = _mm512_castsi512_pd(
      _mm512_add_epi64(table_entries(ki), _mm512_slli_epi64(ki, 52 - kTableBits)));
  const __m512d z = _mm512_fmadd_pd(r, constant(kC0), constant(kC1));
  const __m512d r2 = _mm512_mul_pd(r, r);
  const __m512d y = _mm512_fmadd_pd(z, r2, _mm512_fmadd_pd(r, constant(kC2), _mm512_set1_pd(1.0)));
  return _mm512_cvtpd_ps(_mm512_mul_pd(y, s));
}

// Lanes glibc sends down its special-case path.
inline __mmask16 special_lanes(__m512 x) {
  const __m512i top =
      _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 20), _mm512_set1_epi32(0x7ff));
  return _mm512_cmpgt_epi32_mask(top, _mm512_set1_epi32(kSpecialTop));
}

}  // namespace

void expf_row_avx512(const float* x, float* y, int64_t n) {
  row_in_blocks<16>(x, y, n, [](const float* in, float* e) -> uint32_t {
    const __m512 v = _mm512_loadu_ps(in);
    _mm256_store_ps(e, exp8(_mm512_castps512_ps256(v)));
    _mm256_store_ps(e + 8, exp8(_mm512_extractf32x8_ps(v, 1)));
    return special_lanes(v);
  });
}

}  // namespace lb
