#pragma once
// What attend_heads_simd's passes (attention_avx2.cpp) share with the 512-bit variant of pass 3
// (attention_avx512.cpp).
#include <cstdint>

#include "compute/attention.hpp"

namespace lb::attention_detail {

constexpr int64_t kLanes = kMaxAttendHeads;  // the softmax's registers: one head per lane

// Where the heads of a call find their keys and values: the KV heads they read form one
// contiguous span of each position's cache row, [first, first + width) in halves.
struct HeadSpan {
  int64_t first;
  int64_t width;
  int64_t offset[kLanes];  // head h0 + i's KV head, from the span's start
};

// Pass 3 over one block of n positions, on 512-bit registers (needs the Avx512 level). rows: the
// positions' values as floats, span.width per position; w_old / w_new: the softmax's rescales and
// weights, position j's for head i at [kLanes * j + i]; acc: the heads' F16 sums, head_dim floats
// per head. Each position updates each head's sums as attend_head_scalar does: when w_old != 1 a
// rescale by it rounded to F16, then v * w_new added with one fma rounded to F16.
void accumulate_block_avx512(const float* rows, const HeadSpan& span, int64_t n, int64_t head_dim,
                             int64_t n_heads, const float* w_old, const float* w_new, float* acc);

}  // namespace lb::attention_detail
