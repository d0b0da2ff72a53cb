#include "compute/matmul.hpp"

#include <algorithm>

#include "quant/kernels.hpp"
#include "util/aligned.hpp"
#include "util/error.hpp"

namespace lb {

namespace {

// Rows per task: small enough to balance two threads on small matrices, large enough that a
// task's weight rows stay in cache while every token of a prompt batch passes over them.
constexpr int64_t kRowsPerTask = 16;
// Rows per task for up to kMaxDotActs activation rows (decode, one pass over the weights): longer
// sequential weight streams per task, which the hardware prefetchers follow better (one thread
// decoding Q4_0 streamed at 86% of memchr's bandwidth with 128 rows, 70% with 64 split in four);
// still 16+ tasks per 2048-row matrix for balance.
constexpr int64_t kRowsPerDecodeTask = 128;

// One job with its activations converted to the weight type's activation type.
struct PreparedJob {
  const MatmulJob* job;
  const Kernels* k;
  const uint8_t* act;  // [n_tok] rows of act_row_bytes
  size_t act_row_bytes;
  size_t w_row_bytes;
  int64_t first_task;
};

}  // namespace

void matmul(ThreadPool& pool, const std::vector<MatmulJob>& jobs, int64_t n_tok,
            MatmulRows chunk_rows) {
  if (jobs.empty() || n_tok <= 0) return;

  // Convert each distinct (x, activation type) once.
  struct Converted {
    const float* x;
    GgmlType type;
    int64_t cols;
    AlignedVector<uint8_t> bytes;  // X8 activation rows (whole 320-byte blocks) all start on a line
  };
  std::vector<Converted> converted;
  std::vector<PreparedJob> prepared;
  int64_t n_tasks = 0;
  const int64_t rows_per_task = n_tok <= kMaxDotActs ? kRowsPerDecodeTask : kRowsPerTask;
  for (const MatmulJob& job : jobs) {
    const Kernels& k = kernels_for(job.w.type);
    const size_t act_row = row_bytes(k.act_type, job.w.cols);
    auto it = std::find_if(converted.begin(), converted.end(), [&](const Converted& c) {
      return c.x == job.x && c.type == k.act_type && c.cols == job.w.cols;
    });
    if (it == converted.end()) {
      converted.push_back({job.x, k.act_type, job.w.cols, AlignedVector<uint8_t>(act_row * n_tok)});
      it = converted.end() - 1;
      for (int64_t t = 0; t < n_tok; ++t) {
        k.act_from_float(job.x + t * job.w.cols, it->bytes.data() + t * act_row, job.w.cols);
      }
    }
    prepared.push_back(
        {&job, &k, it->bytes.data(), act_row, row_bytes(job.w.type, job.w.cols), n_tasks});
    n_tasks += (job.w.rows + rows_per_task - 1) / rows_per_task;
  }
  // The act pointers stay valid as `converted` grows: moving a vector keeps its heap buffer.

  pool.run(n_tasks, [&](int64_t task) {
    const PreparedJob* pj = &prepared[0];
    for (const PreparedJob& p : prepared) {
      if (p.first_task > task) break;
      pj = &p;
    }
    const Matrix& w = pj->job->w;
    const int64_t r0 = (task - pj->first_task) * rows_per_task;
    const int64_t r1 = std::min(w.rows, r0 + rows_per_task);
    const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
    float* y = pj->job->y;
    // llamafile's GEMM takes the product when the shape suits it (else ggml's dot does).
    const bool gemm_shape = pj->k->gemm_dot && w.cols % kGemmCols == 0 && w.rows % kGemmRows == 0;
    const auto uses_gemm = [&](int64_t t) {
      return gemm_shape && chunk_rows && chunk_rows[t] >= 2;
    };
    for (int64_t t = 0; t < n_tok;) {
      const uint8_t* a = pj->act + t * pj->act_row_bytes;
      float* yt = y + t * w.rows;
      if (uses_gemm(t)) {
        for (int64_t r = r0; r < r1; ++r)
          yt[r] = pj->k->gemm_dot(w.cols, wdata + r * pj->w_row_bytes, a);
        ++t;
        continue;
      }
      // Up to kMaxDotActs consecutive dot-order rows share each weight row's loads.
      int64_t n_act = 1;
      while (n_act < kMaxDotActs && t + n_act < n_tok && !uses_gemm(t + n_act)) ++n_act;
      int64_t r = r0;
      if (n_act == 1 && pj->k->vec_dot_rows) {
        // Decode: kDotRows weight rows share the activation row's loads. The rows are taken from
        // the task's rows split in kDotRows parts, so the weights stay long sequential streams
        // (neighbouring rows restart a stream every row, which the prefetchers lose on).
        const int64_t part = (r1 - r0) / kDotRows;
        const size_t stride = size_t(part) * pj->w_row_bytes;
        for (int64_t i = 0; i < part; ++i) {
          float yr[kDotRows];
          pj->k->vec_dot_rows(w.cols, wdata + (r0 + i) * pj->w_row_bytes, stride, a, yr);
          for (int j = 0; j < kDotRows; ++j) yt[r0 + j * part + i] = yr[j];
        }
        r = r0 + kDotRows * part;
      }
      if (n_act == 1) {
        for (; r < r1; ++r) yt[r] = pj->k->vec_dot(w.cols, wdata + r * pj->w_row_bytes, a);
      } else {
        pj->k->vec_dot_multi(w.cols, wdata + r * pj->w_row_bytes, pj->w_row_bytes, r1 - r, a,
                             pj->act_row_bytes, int(n_act), yt + r, size_t(w.rows));
      }
      t += n_act;
    }
  });
}

}  // namespace lb
