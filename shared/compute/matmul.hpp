#pragma once
// Matrix products of weight matrices (any supported GgmlType) with float activations.
// Every output element is one vec_dot of a weight row with an activation row, computed the same
// way whatever the batch size, the batch's other rows or the thread count: a token's result never
// depends on what it was batched with, which is what lets every pipeline split agree exactly.
#include <cstdint>
#include <vector>

#include "compute/thread_pool.hpp"
#include "quant/ggml_type.hpp"

namespace lb {

// A weight matrix as stored in GGUF: `rows` rows of `cols` elements (cols = ne[0]).
struct Matrix {
  const void* data = nullptr;
  GgmlType type = GgmlType::F32;
  int64_t cols = 0;
  int64_t rows = 0;
};

// One product in a group: y[t][r] = w[r] . x[t] for t < n_tok, r < w.rows.
// x is [n_tok][w.cols] floats, y is [n_tok][w.rows] floats.
struct MatmulJob {
  Matrix w;
  const float* x;
  float* y;
};

// Runs all jobs (which share n_tok) as one parallel step: fewer wake-ups per layer in decode.
// Jobs with the same x are converted to the activation type once.
void matmul(ThreadPool& pool, const std::vector<MatmulJob>& jobs, int64_t n_tok);

inline void matmul(ThreadPool& pool, const Matrix& w, const float* x, float* y, int64_t n_tok) {
  matmul(pool, {MatmulJob{w, x, y}}, n_tok);
}

}  // namespace lb
