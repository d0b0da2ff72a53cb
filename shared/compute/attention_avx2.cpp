// attend_heads_simd: the scalar reference's operations, regrouped so the heads of a call share
// work and no step waits on the latency of the one before it:
//   1. scores: each block of positions' keys converted from F16 once, then every head's dot with
//      each key, the heads' sums folded together (lane i: head h0 + i);
//   2. the online softmax, one head per lane: running maxima, then all its exps in one call,
//      then the weights and sums;
//   3. the weighted sum of values, each block of positions' values converted once for all heads
//      (at the Avx512 level on 512-bit registers: attention_avx512.cpp).
// The F16 accumulators live in floats that always hold F16 values (every update is rounded
// through _mm256_cvtps_ph with round-to-nearest-even, exactly what fp32_to_fp16 does), so reading
// them back costs no conversion and the bits are the scalar ones.
#include <algorithm>
#include <cmath>
#include <vector>

#include "compute/attention.hpp"
#include "compute/attention_passes.hpp"
#include "compute/expf.hpp"
#include "quant/simd_x86.hpp"

namespace lb {
namespace {

using namespace attention_detail;

constexpr int64_t kBlock = 16;  // positions converted from F16 at a time; they stay in L1

inline __m256 round_f16(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

inline float round_f16(float x) {
  return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}

HeadSpan head_span(const KvRows& kv, int64_t h0, int64_t n_heads) {
  HeadSpan span{};
  const int64_t kv_first = h0 / kv.group;
  const int64_t kv_last = (h0 + n_heads - 1) / kv.group;
  span.first = kv_first * kv.head_dim;
  span.width = (kv_last - kv_first + 1) * kv.head_dim;
  for (int64_t i = 0; i < n_heads; ++i)
    span.offset[i] = ((h0 + i) / kv.group - kv_first) * kv.head_dim;
  return span;
}

// The span of positions [j0, j0 + n) of a cache (keys or values) as floats, span.width per row.
void convert_rows(const Half* cache, int64_t stride, const HeadSpan& span, int64_t j0, int64_t n,
                  float* rows) {
  for (int64_t j = 0; j < n; ++j) {
    fp16_to_fp32_row_f16c(cache + (j0 + j) * stride + span.first, rows + j * span.width,
                          span.width);
  }
}

// Pass 1: scores[8j + i] = scale * (q_i . k_j) with vec_dot_f16's sum (lanes past n_heads: 0).
// q holds the heads' queries already rounded to F16.
void scores(const KvRows& kv, const HeadSpan& span, const float* q, int64_t n_heads, float scale,
            float* rows, float* out) {
  const int64_t hd = kv.head_dim;
  const int64_t np = hd & ~int64_t(63);
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t j0 = 0; j0 < kv.n_pos; j0 += kBlock) {
    const int64_t n = std::min(kBlock, kv.n_pos - j0);
    convert_rows(kv.k, kv.stride, span, j0, n, rows);
    for (int64_t j = 0; j < n; ++j) {
      const float* row = rows + j * span.width;
      __m256 t[kLanes];
      if (hd == 64 && span.width == 64) {
        // One key for all heads, and a constant length: its eight registers are loaded once.
#pragma GCC unroll 8
        for (int64_t i = 0; i < kLanes; ++i)
          t[i] = i < n_heads ? simd::dot_lanes(row, q + 64 * i, 64) : _mm256_setzero_ps();
      } else {
        for (int64_t i = 0; i < kLanes; ++i)
          t[i] = i < n_heads ? simd::dot_lanes(row + span.offset[i], q + hd * i, np)
                             : _mm256_setzero_ps();
      }
      __m256 s = simd::hsum_each(t);
      if (np < hd) {
        alignas(32) float sums[kLanes];
        _mm256_store_ps(sums, s);
        for (int64_t i = 0; i < n_heads; ++i) {
          sums[i] = simd::f16_dot_tail(row + span.offset[i], q + hd * i, np, hd, sums[i]);
        }
        s = _mm256_load_ps(sums);
      }
      _mm256_storeu_ps(out + (j0 + j) * kLanes, _mm256_mul_ps(s, vscale));
    }
  }
}

// Pass 2: each lane's online softmax as the reference runs it. On return w_new[8j + i] is
// position j's weight vs and w_old[8j + i] the rescale ms applied before it (w_new comes in
// holding the scores); returns the lanes' sums S.
__m256 softmax(int64_t n_pos, float* w_new, float* w_old, float* args) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n_pos; ++j) {
    const __m256 s = _mm256_loadu_ps(w_new + j * kLanes);
    const __m256 is_max = _mm256_cmp_ps(s, m, _CMP_GT_OQ);
    // A new maximum: ms = exp(m_old - s); else vs = exp(s - m).
    _mm256_storeu_ps(args + j * kLanes,
                     _mm256_blendv_ps(_mm256_sub_ps(s, m), _mm256_sub_ps(m, s), is_max));
    _mm256_storeu_ps(w_old + j * kLanes, is_max);
    m = _mm256_blendv_ps(m, s, is_max);
  }
  expf_row(args, args, n_pos * kLanes);
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_pos; ++j) {
    const __m256 is_max = _mm256_loadu_ps(w_old + j * kLanes);
    const __m256 e = _mm256_loadu_ps(args + j * kLanes);
    const __m256 ms = _mm256_blendv_ps(one, e, is_max);
    const __m256 vs = _mm256_blendv_ps(e, one, is_max);
    _mm256_storeu_ps(w_old + j * kLanes, ms);
    _mm256_storeu_ps(w_new + j * kLanes, vs);
    sum = _mm256_fmadd_ps(sum, ms, vs);
  }
  return sum;
}

// Pass 3's inner loop: the weighted sum of values over dims [0, 8C) of one head for n positions
// (v: their first position, `stride` floats apart; weights every kLanes floats), as the scalar
// loops: per position, when w_old != 1, the sum is first rescaled by it (rounded to F16), then
// v * w_new is added with one fma (rounded to F16). With w_old == 1 the rescale would change
// nothing (the sum holds F16 values), so it is skipped. The C accumulators stay in registers.
template <int C>
void accumulate_values(const float* v, int64_t stride, int64_t n, const float* w_old,
                       const float* w_new, float* sum) {
  __m256 acc[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) acc[c] = _mm256_loadu_ps(sum + 8 * c);
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * stride;
    const __m256 vs = _mm256_set1_ps(w_new[j * kLanes]);
    if (w_old[j * kLanes] != 1.0f) {
      const __m256 ms = _mm256_set1_ps(w_old[j * kLanes]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[c] = round_f16(_mm256_mul_ps(acc[c], ms));
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      acc[c] = round_f16(_mm256_fmadd_ps(_mm256_loadu_ps(vj + 8 * c), vs, acc[c]));
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(sum + 8 * c, acc[c]);
}

// Pass 3 for one head over one block of positions: up to 64 dims (eight registers of sums) per
// pass over the positions, then the dims left over.
void accumulate_head(const float* v, int64_t stride, int64_t n, int64_t hd, const float* w_old,
                     const float* w_new, float* sum) {
  int64_t d = 0;
  for (; d + 64 <= hd; d += 64) accumulate_values<8>(v + d, stride, n, w_old, w_new, sum + d);
  const int64_t chunks = (hd - d) / 8;
  if (chunks > 0) {
    simd::with_count(int(chunks), [&](auto c) {
      accumulate_values<decltype(c)::value>(v + d, stride, n, w_old, w_new, sum + d);
    });
  }
  d += 8 * chunks;
  for (; d < hd; ++d) {
    for (int64_t j = 0; j < n; ++j) {
      const float ms = w_old[j * kLanes];
      if (ms != 1.0f) sum[d] = round_f16(sum[d] * ms);
      sum[d] = round_f16(std::fma(v[j * stride + d], w_new[j * kLanes], sum[d]));
    }
  }
}

}  // namespace

void attend_heads_simd(const KvRows& kv, const float* q, int64_t h0, int64_t n_heads, float scale,
                       float* out, SimdLevel level) {
  const int64_t hd = kv.head_dim;
  const HeadSpan span = head_span(kv, h0, n_heads);
  thread_local std::vector<Half> q16;
  thread_local std::vector<float> qf, rows, acc, w_new, w_old, args;
  q16.resize(size_t(n_heads * hd));
  qf.resize(size_t(n_heads * hd));
  rows.resize(size_t(kBlock * span.width));
  acc.assign(size_t(n_heads * hd), 0.0f);
  w_new.resize(size_t(kv.n_pos * kLanes));
  w_old.resize(w_new.size());
  args.resize(w_new.size());
  fp32_to_fp16_row_f16c(q, q16.data(), n_heads * hd);
  fp16_to_fp32_row_f16c(q16.data(), qf.data(), n_heads * hd);

  scores(kv, span, qf.data(), n_heads, scale, rows.data(), w_new.data());
  alignas(32) float sums[kLanes];
  _mm256_store_ps(sums, softmax(kv.n_pos, w_new.data(), w_old.data(), args.data()));
  for (int64_t j0 = 0; j0 < kv.n_pos; j0 += kBlock) {
    const int64_t n = std::min(kBlock, kv.n_pos - j0);
    convert_rows(kv.v, kv.stride, span, j0, n, rows.data());
    if (level >= SimdLevel::Avx512) {
      accumulate_block_avx512(rows.data(), span, n, hd, n_heads, w_old.data() + j0 * kLanes,
                              w_new.data() + j0 * kLanes, acc.data());
      continue;
    }
    for (int64_t i = 0; i < n_heads; ++i) {
      accumulate_head(rows.data() + span.offset[i], span.width, n, hd,
                      w_old.data() + j0 * kLanes + i, w_new.data() + j0 * kLanes + i,
                      acc.data() + i * hd);
    }
  }
  for (int64_t i = 0; i < n_heads; ++i) {
    const float inv = sums[i] == 0.0f ? 0.0f : 1.0f / sums[i];
    for (int64_t d = 0; d < hd; ++d) out[i * hd + d] = acc[size_t(i * hd + d)] * inv;
  }
}

}  // namespace lb
