// AVX2 Q8_0 . Q8_0 in ggml's order (see q8_0.hpp), bit-identical to the scalar reference: per
// block an exact int8 dot as eight int32 lanes (vpmaddubsw on |w| and the sign-moved a, then
// vpmaddwd), converted and fused into one float accumulator with d_w * d_a (F16C, two blocks'
// scales at a time). One accumulator, as in ggml: a second one would change the sums. The loops
// (one row, kDotRows rows, several activation rows) are simd_x86.hpp's, shared with AVX-512.
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// |w| . (a moved onto w's signs): vpmaddubsw, then vpmaddwd against ones.
struct AbsDot {
  __m256i operator()(__m256i w_abs, __m256i a_signed) const {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w_abs, a_signed), _mm256_set1_epi16(1));
  }
};

}  // namespace

float vec_dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  return simd::q8_0_dot<BlockQ8_0>(n / kQK8_0, w, a, AbsDot{});
}

void vec_dot_q8_0_q8_0_multi_avx2(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                  const void* a, size_t a_stride, int n_act, float* y,
                                  size_t y_stride) {
  simd::q8_0_dot_multi<BlockQ8_0>(n / kQK8_0, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride,
                                  AbsDot{});
}

void vec_dot_q8_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* y) {
  simd::q8_0_dot_rows<BlockQ8_0>(n / kQK8_0, w, w_stride, a, y, AbsDot{});
}

}  // namespace lb
