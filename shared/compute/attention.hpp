#pragma once
// Causal attention of a row's query heads over one sequence's cached keys and values (F16).
#include <cstdint>

#include "quant/f16.hpp"
#include "quant/kernels.hpp"

namespace lb {

// One sequence's cache for one layer, as attention reads it.
struct KvRows {
  const Half* k;     // position 0, KV head 0
  const Half* v;     // position 0, KV head 0
  int64_t stride;    // halves from one position to the next (all KV heads' dims)
  int64_t n_pos;     // attend over positions [0, n_pos)
  int64_t head_dim;  // dims per head, queries and KV alike
  int64_t group;     // query heads per KV head: query head h reads KV head h / group
};

// The most query heads attend_heads_simd takes at once: one per float lane of an AVX2 register.
constexpr int64_t kMaxAttendHeads = 8;

// For each query head h in [h0, h0 + n_heads) (n_heads <= kMaxAttendHeads):
// out[h - h0] = softmax(scale * q[h - h0] . k[j]) . v[j] over positions j, where q and out hold
// head_dim floats per head, consecutively. Follows ggml's CPU flash-attention with an F16 cache
// (its one-query-row kernel, which it uses for decode steps and prompt chunks of fewer than 64
// rows) bit for bit: q rounded to F16, an online softmax, and the weighted sum of values
// accumulated in F16. Not followed: the tiled kernel ggml switches to for chunks of 64+ query
// rows when head_dim % 16 == 0 (F32 q, F32 accumulators), and its split-KV decode path for caches
// of 512+ cells, which depends on llama.cpp's thread count.
// Runs attend_heads_simd at the CPU's level when it has the Avx2 level (F16C, FMA), else
// attend_head_scalar.
void attend_heads(const KvRows& kv, const float* q, int64_t h0, int64_t n_heads, float scale,
                  float* out);

// The scalar reference, one query head h at a time (q and out: that head's dims).
void attend_head_scalar(const KvRows& kv, const float* q, int64_t h, float scale, float* out);

// The same bits as the reference, with the heads' work shared: each position's keys and values
// are converted from F16 once for all heads reading them, the softmax runs one head per lane,
// and its exps are glibc's expf eight at a time (compute/expf.hpp). Needs the Avx2 level; at the
// Avx512 level the weighted sum of values runs on 512-bit registers, four heads at a time.
void attend_heads_simd(const KvRows& kv, const float* q, int64_t h0, int64_t n_heads, float scale,
                       float* out, SimdLevel level);

}  // namespace lb
