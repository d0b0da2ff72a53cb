#pragma once
// Causal attention of one query head over a sequence's cached keys and values (F16).
#include <cstdint>

#include "quant/f16.hpp"

namespace lb {

// out[head_dim] = softmax(scale * q . k[j]) . v[j] over positions j in [0, n_pos).
// k and v point at position 0 of this head's KV head; consecutive positions are `stride` halves
// apart. Follows ggml's CPU flash-attention with an F16 cache (its one-query-row kernel, which
// it uses for decode steps and prompt chunks of fewer than 64 rows) bit for bit: q rounded to
// F16, an online softmax, and the weighted sum of values accumulated in F16. Not followed: the
// tiled kernel ggml switches to for chunks of 64+ query rows when head_dim % 16 == 0 (F32 q,
// F32 accumulators), and its split-KV decode path for caches of 512+ cells, which depends on
// llama.cpp's thread count.
// Picks attend_head_f16c when the CPU has the Avx2 level (F16C, FMA), else the scalar one.
void attend_head(const float* q, const Half* k, const Half* v, int64_t stride, int64_t n_pos,
                 int64_t head_dim, float scale, float* out);

// The two variants, bit-identical (tests compare them): the scalar reference, and one converting
// and accumulating eight head dimensions per instruction (needs the Avx2 level).
void attend_head_scalar(const float* q, const Half* k, const Half* v, int64_t stride, int64_t n_pos,
                        int64_t head_dim, float scale, float* out);
void attend_head_f16c(const float* q, const Half* k, const Half* v, int64_t stride, int64_t n_pos,
                      int64_t head_dim, float scale, float* out);

}  // namespace lb
