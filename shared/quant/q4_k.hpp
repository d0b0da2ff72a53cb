#pragma once
// Q4_K: super-blocks of 256 elements = 8 sub-blocks of 32, value = d*sc[s]*q - dmin*m[s] with
// 4-bit q and 6-bit sc/m packed into scales[12]. qs[32*j + l] holds element 64*j + l in its low
// nibble and element 64*j + 32 + l in its high nibble. Byte-identical to ggml's block_q4_K.
// Activations: Q8_K (quant/q8_k.hpp).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant/f16.hpp"
#include "quant/q8_k.hpp"

namespace lb {

struct BlockQ4_K {
  Half d;     // scale of the sub-block scales
  Half dmin;  // scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "block_q4_K layout");

// Unpacks scales[12] into words: out[0], out[1] = sc[0..3], sc[4..7] and out[2], out[3] =
// m[0..3], m[4..7], one 6-bit value a byte (little endian; what ggml's get_scale_min_k4 gives).
inline void unpack_scales_q4_k(const uint8_t* scales, uint32_t out[4]) {
  uint32_t u[3];
  std::memcpy(u, scales, 12);
  out[0] = u[0] & 0x3f3f3f3fu;
  out[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
  out[2] = u[1] & 0x3f3f3f3fu;
  out[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
}

// Weight quantizer: per sub-block a least-squares fit of scale and min over a few candidate grids
// (not ggml's exact search, but a valid block of similar quality).
void quantize_row_q4_k_ref(const float* src, void* dst, int64_t n);
void dequantize_row_q4_k(const void* src, float* dst, int64_t n);

// Weight row (Q4_K) . activation row (Q8_K), n a multiple of 256.
float vec_dot_q4_k_q8_k(int64_t n, const void* w, const void* a);
float vec_dot_q4_k_q8_k_avx2(int64_t n, const void* w, const void* a);
void vec_dot_q4_k_q8_k_rows_avx2(int64_t n, const void* w, size_t w_stride, const void* a,
                                 float* out);
float vec_dot_q4_k_q8_k_avx512(int64_t n, const void* w, const void* a);
// The AVX-512 level's VecDotMultiFn (n_act 1..kMaxDotActs): vec_dot_q4_k_q8_k_avx512's bits per
// row.
void vec_dot_q4_k_q8_k_multi_avx512(int64_t n, const void* w, size_t w_stride, int64_t n_rows,
                                    const void* a, size_t a_stride, int n_act, float* y,
                                    size_t y_stride);
// The AVX-512 level's VecDotRowsFn: vec_dot_q4_k_q8_k_avx512's bits per row.
void vec_dot_q4_k_q8_k_rows_avx512(int64_t n, const void* w, size_t w_stride, const void* a,
                                   float* y);

}  // namespace lb
