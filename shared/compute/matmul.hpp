#pragma once
// Matrix products of weight matrices (any supported GgmlType) with float activations.
// Every output element is one dot of a weight row with an activation row, in the order llama.cpp
// would compute it. That order can depend on how many rows of the same sequence llama.cpp would
// have multiplied at once (its chunk of the step: see MatmulRows), never on the step's other rows
// or the thread count: a token's result never depends on what it was batched with, which is what
// lets every pipeline split agree exactly.
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

// Per activation row t, the number of rows its sequence has in this product: the size of the
// sequence's chunk of the step (1 for a decode step, the prompt length for a prompt). llama.cpp
// multiplies a chunk of 2+ rows of F32/F16 weights with llamafile's GEMM kernels and a single row
// with ggml's dot kernels, and the two sum in different orders; to match it exactly, pass these.
// nullptr means every row counts as alone (the dot order).
using MatmulRows = const int64_t*;

// Runs all jobs (which share n_tok) as one parallel step: fewer wake-ups per layer in decode.
// Jobs with the same x are converted to the activation type once.
void matmul(ThreadPool& pool, const std::vector<MatmulJob>& jobs, int64_t n_tok,
            MatmulRows chunk_rows = nullptr);

inline void matmul(ThreadPool& pool, const Matrix& w, const float* x, float* y, int64_t n_tok,
                   MatmulRows chunk_rows = nullptr) {
  matmul(pool, {MatmulJob{w, x, y}}, n_tok, chunk_rows);
}

}  // namespace lb
