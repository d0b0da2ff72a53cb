// AVX-512 level (AVX512-VNNI on 256-bit registers) Q8_0 . Q8_0 in ggml's order (see q8_0.hpp),
// bit-identical to the scalar reference: per block one vpdpbusd on |w| and the sign-moved
// activations (exact; w = -128 works as |w| reads as unsigned 128) gives the eight int32 lanes
// ggml's VNNI path gives, fused into one float accumulator with d_w * d_a (F16C). 512-bit
// registers measured no faster on Zen 4.
#include "quant/q8_0.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

// |w| . (a moved onto w's signs): one vpdpbusd.
struct AbsDot {
  __m256i operator()(__m256i w_abs, __m256i a_signed) const {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w_abs, a_signed);
  }
};

}  // namespace

float vec_dot_q8_0_q8_0_avx512(int64_t n, const void* w, const void* a) {
  return simd::q8_0_dot<BlockQ8_0>(n / kQK8_0, w, a, AbsDot{});
}

void vec_dot_q8_0_q8_0_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride) {
  simd::q8_0_dot_multi<BlockQ8_0>(n / kQK8_0, w, w_stride, n_rows, a, a_stride, n_act, y, y_stride,
                                  AbsDot{});
}

void vec_dot_q8_0_q8_0_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y) {
  simd::q8_0_dot_rows<BlockQ8_0>(n / kQK8_0, w, w_stride, a, y, AbsDot{});
}

}  // namespace lb
