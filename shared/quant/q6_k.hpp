#pragma once
// Q6_K: super-blocks of 256 elements = 16 groups of 16, value = d * scales[g] * (q - 32) with
// 6-bit q (0..63). For half h (128 elements; ql + 64h, qh + 32h) and l in 0..31:
//   element 128h + l      = low nibble of ql[l]      | bits 0-1 of qh[l] << 4
//   element 128h + l + 32 = low nibble of ql[l + 32] | bits 2-3 of qh[l] << 4
//   element 128h + l + 64 = high nibble of ql[l]     | bits 4-5 of qh[l] << 4
//   element 128h + l + 96 = high nibble of ql[l + 32]| bits 6-7 of qh[l] << 4
// Byte-identical to ggml's block_q6_K. Activations: Q8_K (quant/q8_k.hpp).
#include <cstddef>
#include <cstdint>

#include "quant/f16.hpp"
#include "quant/q8_k.hpp"

namespace lb {

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];  // low 4 bits
  uint8_t qh[kQK_K / 4];  // high 2 bits
  int8_t scales[kQK_K / 16];
  Half d;
};
static_assert(sizeof(BlockQ6_K) == 210, "block_q6_K layout");

// Weight quantizer: per group a least-squares scale over a few candidate grids, group scales
// quantized to int8 against the super-block d (not ggml's exact search; valid, similar quality).
void quantize_row_q6_k_ref(const float* src, void* dst, int64_t n);
void dequantize_row_q6_k(const void* src, float* dst, int64_t n);

// Weight row (Q6_K) . activation row (Q8_K), n a multiple of 256.
float vec_dot_q6_k_q8_k(int64_t n, const void* w, const void* a);
float vec_dot_q6_k_q8_k_avx2(int64_t n, const void* w, const void* a);
float vec_dot_q6_k_q8_k_avx512(int64_t n, const void* w, const void* a);
// The AVX-512 level's VecDotRowsFn (vec_dot_q6_k_q8_k_avx512's bits).
void vec_dot_q6_k_q8_k_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* out);

}  // namespace lb
