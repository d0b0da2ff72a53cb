// AVX2 Q8_0 . Q8_0 in ggml's order (see q8_0.hpp), bit-identical to the scalar reference: per
// block an exact int8 dot as eight int32 lanes (vpmaddubsw on |w| and the sign-moved a, then
// vpmaddwd), converted and fused into one float accumulator with d_w * d_a (F16C, two blocks'
// scales at a time). One accumulator, as in ggml: a second one would change the sums.
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// The exact int8 dot of a weight block with activation quants a, as eight float lanes.
struct IntDot {
  __m256 operator()(const BlockQ8_0& x, __m256i a) const {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs));
    return _mm256_cvtepi32_ps(simd::dot_i8_32(w, a));
  }
};

}  // namespace

float vec_dot_q8_0_q8_0_avx2(int64_t n, const void* w, const void* a) {
  return simd::q8_0_dot<BlockQ8_0>(n / kQK8_0, w, a, IntDot{});
}

void vec_dot_q8_0_q8_0_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* y) {
  simd::q8_0_dot_rows<BlockQ8_0>(n / kQK8_0, w, w_stride, a, y, IntDot{});
}

}  // namespace lb
