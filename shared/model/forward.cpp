#include "model/forward.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compute/attention.hpp"
#include "compute/matmul.hpp"
#include "compute/ops.hpp"
#include "quant/f16.hpp"
#include "quant/kernels.hpp"
#include "quant/silu.hpp"
#include "util/error.hpp"

namespace lb {

RangeRunner::RangeRunner(const ModelWeights& weights, ThreadPool& pool, int64_t n_ctx)
    : w_(weights), pool_(pool), kv_(weights.hparams(), weights.begin(), weights.end(), n_ctx) {}

void RangeRunner::validate(const StepInput& in) const {
  const HParams& hp = w_.hparams();
  const size_t n = in.rows();
  if (n == 0) throw Error("step has no rows");
  if (in.pos.size() != n)
    throw Error("step has " + std::to_string(in.pos.size()) + " positions for " +
                std::to_string(n) + " rows");
  if (w_.has_embedding()) {
    if (in.tokens.size() != n)
      throw Error("step has " + std::to_string(in.tokens.size()) + " tokens for " +
                  std::to_string(n) + " rows");
    for (int32_t t : in.tokens) {
      if (t < 0 || t >= hp.n_vocab)
        throw Error("token id " + std::to_string(t) + " is outside the vocabulary of " +
                    std::to_string(hp.n_vocab));
    }
  } else if (in.hidden.size() != n * size_t(hp.dim)) {
    throw Error("step has " + std::to_string(in.hidden.size()) + " activation values, expected " +
                std::to_string(n) + " rows x " + std::to_string(hp.dim));
  }
  if (w_.has_head() && in.want_logits.size() != n) throw Error("step lacks a logits flag per row");
  if (!in.chunk.empty()) {
    if (in.chunk.size() != n) throw Error("step has chunk sizes for some rows only");
    for (size_t i = 0; i < n;) {
      const int64_t len = in.chunk[i];
      if (len < 1 || size_t(len) > n - i) throw Error("step has a chunk running past its rows");
      for (size_t r = i; r < i + size_t(len); ++r) {
        if (in.chunk[r] != len || in.seq[r] != in.seq[i])
          throw Error("step has a chunk mixing sequences");
      }
      i += size_t(len);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const bool starts_group = i == 0 || in.seq[i] != in.seq[i - 1];
    if (starts_group) {
      for (size_t j = 0; j < i; ++j) {
        if (in.seq[j] == in.seq[i])
          throw Error("sequence " + std::to_string(in.seq[i]) +
                      "'s rows are not contiguous in the step");
      }
      const int64_t held = kv_.n_pos(in.seq[i]);
      if (in.pos[i] < 0 || in.pos[i] > held) {
        throw Error("sequence " + std::to_string(in.seq[i]) + " starts at position " +
                    std::to_string(in.pos[i]) + " but its cache holds " + std::to_string(held));
      }
    } else if (in.pos[i] != in.pos[i - 1] + 1) {
      throw Error("sequence " + std::to_string(in.seq[i]) + " has non-consecutive positions");
    }
    if (in.pos[i] >= kv_.n_ctx())
      throw Error("position " + std::to_string(in.pos[i]) + " passes the context length " +
                  std::to_string(kv_.n_ctx()));
  }
}

void RangeRunner::attention(int64_t il, const StepInput& in, const float* q, float* out) {
  const HParams& hp = w_.hparams();
  const int64_t n = int64_t(in.rows());
  const float scale = 1.0f / std::sqrt(float(hp.head_dim));
  const int64_t layer = il - w_.begin();
  // A task is a block of a row's heads (they share key and value conversions), small enough
  // that every thread gets a task.
  const int64_t per_task = std::clamp(n * hp.n_heads / pool_.size(), int64_t(1), kMaxAttendHeads);
  const int64_t blocks = (hp.n_heads + per_task - 1) / per_task;
  pool_.run(n * blocks, [&](int64_t task) {
    const int64_t r = task / blocks;
    const int64_t h0 = task % blocks * per_task;
    const SeqKv& s = kv_.at(in.seq[size_t(r)]);
    const KvRows kv{s.keys(size_t(layer)), s.values(size_t(layer)),
                    hp.kv_dim(),           in.pos[size_t(r)] + 1,
                    hp.head_dim,           hp.n_heads / hp.n_kv_heads};
    const int64_t offset = r * hp.q_dim() + h0 * hp.head_dim;
    attend_heads(kv, q + offset, h0, std::min(per_task, hp.n_heads - h0), scale, out + offset);
  });
}

void RangeRunner::step(const StepInput& in, StepOutput& out) {
  validate(in);
  const HParams& hp = w_.hparams();
  const int64_t n = int64_t(in.rows());
  const int64_t dim = hp.dim;

  // Reserve cache space for every sequence's positions in this step.
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j < n && in.seq[size_t(j)] == in.seq[size_t(i)]) ++j;
    kv_.prepare(in.seq[size_t(i)], in.pos[size_t(i)], j - i);
    i = j;
  }

  // Per row, the rows of its chunk (the batch llama.cpp would run it in), and how many of those
  // want logits: llama.cpp computes the last layer's FFN and the head for those rows only.
  // Products over 2+ rows use llama.cpp's GEMM summation order (see compute/matmul.hpp); a row
  // never depends on other sequences' rows.
  std::vector<int64_t> chunk_rows(static_cast<size_t>(n)), out_rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n;) {
    const int64_t len = in.chunk.empty() ? 0 : in.chunk[size_t(i)];
    int64_t j = i + 1;
    if (len > 0) {
      j = i + len;
    } else {
      while (j < n && in.seq[size_t(j)] == in.seq[size_t(i)]) ++j;
    }
    int64_t outs = 0;
    for (int64_t r = i; r < j; ++r) outs += !in.want_logits.empty() && in.want_logits[size_t(r)];
    for (int64_t r = i; r < j; ++r) {
      chunk_rows[size_t(r)] = j - i;
      out_rows[size_t(r)] = outs;
    }
    i = j;
  }

  std::vector<float> x(size_t(n * dim));  // the residual stream
  if (w_.has_embedding()) {
    const Matrix& e = w_.token_embd();
    const Kernels& k = kernels_for(e.type);
    const size_t rb = row_bytes(e.type, dim);
    for (int64_t i = 0; i < n; ++i) {
      k.to_float(static_cast<const uint8_t*>(e.data) + size_t(in.tokens[size_t(i)]) * rb,
                 &x[size_t(i * dim)], dim);
    }
  } else {
    std::memcpy(x.data(), in.hidden.data(), x.size() * sizeof(float));
  }

  std::vector<float> xn(size_t(n * dim)), q(size_t(n * hp.q_dim())), k(size_t(n * hp.kv_dim())),
      v(size_t(n * hp.kv_dim())), att(size_t(n * hp.q_dim())), proj(size_t(n * dim)),
      gate(size_t(n * hp.ffn)), up(size_t(n * hp.ffn)), act(size_t(n * hp.ffn));
  // The cache's F16 conversion, at the CPU's SIMD level (the same bits at every level).
  static const Kernels& f16 = kernels_for(GgmlType::F16);
  const RopeParams rope_params{hp.rope_dims, hp.rope_base, hp.rope_freq_scale, hp.rope_neox,
                               w_.rope_freqs()};
  const int64_t half = hp.rope_dims / 2;
  std::vector<float> rope_cos(size_t(n * half)), rope_sin(size_t(n * half));
  for (int64_t i = 0; i < n; ++i) {
    rope_angles(in.pos[size_t(i)], rope_params, &rope_cos[size_t(i * half)],
                &rope_sin[size_t(i * half)]);
  }

  for (int64_t il = w_.begin(); il < w_.end(); ++il) {
    const LayerWeights& L = w_.layer(il);
    const int64_t layer = il - w_.begin();

    pool_.run(n, [&](int64_t i) {
      rms_norm(&x[size_t(i * dim)], L.attn_norm, &xn[size_t(i * dim)], dim, hp.rms_eps);
    });
    matmul(pool_,
           {{L.wq, xn.data(), q.data()}, {L.wk, xn.data(), k.data()}, {L.wv, xn.data(), v.data()}},
           n, chunk_rows.data());

    pool_.run(n, [&](int64_t i) {
      float* qi = &q[size_t(i * hp.q_dim())];
      float* ki = &k[size_t(i * hp.kv_dim())];
      float* vi = &v[size_t(i * hp.kv_dim())];
      const float* cos_i = &rope_cos[size_t(i * half)];
      const float* sin_i = &rope_sin[size_t(i * half)];
      if (L.bq) {
        add_inplace(qi, L.bq, hp.q_dim());
        add_inplace(ki, L.bk, hp.kv_dim());
        add_inplace(vi, L.bv, hp.kv_dim());
      }
      for (int64_t h = 0; h < hp.n_heads; ++h) {
        float* qh = qi + h * hp.head_dim;
        if (L.q_norm) rms_norm(qh, L.q_norm, qh, hp.head_dim, hp.rms_eps);
        rope_rotate(qh, cos_i, sin_i, hp.rope_dims, hp.rope_neox);
      }
      for (int64_t h = 0; h < hp.n_kv_heads; ++h) {
        float* kh = ki + h * hp.head_dim;
        if (L.k_norm) rms_norm(kh, L.k_norm, kh, hp.head_dim, hp.rms_eps);
        rope_rotate(kh, cos_i, sin_i, hp.rope_dims, hp.rope_neox);
      }
      SeqKv& s = kv_.at(in.seq[size_t(i)]);
      Half* kc = s.keys(size_t(layer)) + in.pos[size_t(i)] * hp.kv_dim();
      Half* vc = s.values(size_t(layer)) + in.pos[size_t(i)] * hp.kv_dim();
      f16.act_from_float(ki, kc, hp.kv_dim());
      f16.act_from_float(vi, vc, hp.kv_dim());
    });

    attention(il, in, q.data(), att.data());
    matmul(pool_, L.wo, att.data(), proj.data(), n, chunk_rows.data());
    add_inplace(x.data(), proj.data(), n * dim);

    pool_.run(n, [&](int64_t i) {
      rms_norm(&x[size_t(i * dim)], L.ffn_norm, &xn[size_t(i * dim)], dim, hp.rms_eps);
    });
    const int64_t* ffn_rows = il == hp.n_layers - 1 ? out_rows.data() : chunk_rows.data();
    matmul(pool_, {{L.w_gate, xn.data(), gate.data()}, {L.w_up, xn.data(), up.data()}}, n,
           ffn_rows);
    pool_.run(n, [&](int64_t i) {
      const size_t off = size_t(i * hp.ffn);
      swiglu_row(&gate[off], &up[off], &act[off], hp.ffn);
    });
    matmul(pool_, L.w_down, act.data(), proj.data(), n, ffn_rows);
    add_inplace(x.data(), proj.data(), n * dim);
  }

  if (!w_.has_head()) {
    out.hidden = std::move(x);
    out.logits.clear();
    return;
  }
  std::vector<float> rows;
  std::vector<int64_t> head_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (!in.want_logits[size_t(i)]) continue;
    head_rows.push_back(out_rows[size_t(i)]);
    rows.resize(rows.size() + size_t(dim));
    rms_norm(&x[size_t(i * dim)], w_.output_norm(), &rows[rows.size() - size_t(dim)], dim,
             hp.rms_eps);
  }
  const int64_t n_out = int64_t(rows.size()) / dim;
  out.hidden.clear();
  out.logits.assign(size_t(n_out * hp.n_vocab), 0.0f);
  if (n_out > 0) {
    matmul(pool_, w_.output(), rows.data(), out.logits.data(), n_out, head_rows.data());
  }
}

}  // namespace lb
