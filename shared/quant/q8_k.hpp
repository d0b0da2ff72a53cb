#pragma once
// Q8_K: the activation type of the K-quants. Blocks of 256, value = qs[i] * d (d a float), plus
// bsums[g] = sum of qs over the 16-element group g (the dots use them for the min/offset terms).
// Byte-identical to ggml's block_q8_K.
#include <cstdint>

namespace lb {

constexpr int64_t kQK_K = 256;

struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292, "block_q8_K layout");

// What ggml's x86 CPU backend uses (quantize_row_q8_K_ref): max = the value of largest magnitude,
// iscale = -127/max, q = min(127, nearest_int(iscale * x)), d = 1/iscale; all-zero blocks get
// d = 0 and zero quants (and, unlike ggml, zero bsums).
void quantize_row_q8_k(const float* src, void* dst, int64_t n);
void dequantize_row_q8_k(const void* src, float* dst, int64_t n);

}  // namespace lb
