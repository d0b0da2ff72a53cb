#include "compute/matmul.hpp"

#include <algorithm>

#include "quant/kernels.hpp"
#include "quant/prefetch.hpp"
#include "util/aligned.hpp"
#include "util/error.hpp"

namespace lb {

namespace {

// Rows per task: small enough to balance two threads on small matrices, large enough that a
// task's weight rows stay in cache while every token of a prompt batch passes over them.
constexpr int64_t kRowsPerTask = 16;
// Rows per task for up to kMaxDotActs activation rows (decode, one pass over the weights): long
// sequential weight streams per task, which the prefetchers follow better, and few task starts.
// Decode of the 1.1B Q4_0 model with 2 threads, paired token by token over fresh pairs of model
// copies: 128-row tasks take 1.05x the time per token, 1024-row ones 1.02x. The tail tasks
// (kTailSplit) keep the threads finishing together.
constexpr int64_t kRowsPerDecodeTask = 512;
// The run's last rows go in tasks this many times smaller: the threads then finish within a small
// task of each other, instead of one waiting up to a whole long task for the other. With 8 rows a
// task takes 20-60 us, and an 8-row step of the 1.1B model ran 3-5% faster split so; one-row
// decode, whose tasks take a few microseconds, showed no difference.
constexpr int64_t kTailSplit = 4;
static_assert(kRowsPerTask % kTailSplit == 0 && kRowsPerDecodeTask % kTailSplit == 0,
              "tail tasks are whole fractions of a task");

// One job with its activations converted to the weight type's activation type.
struct PreparedJob {
  const MatmulJob* job;
  const Kernels* k;
  const uint8_t* act;  // [n_tok] rows of act_row_bytes
  size_t act_row_bytes;
  size_t w_row_bytes;
};

// Rows [r0, r1) of one job.
struct Task {
  const PreparedJob* job;
  int64_t r0, r1;
};

// The jobs' rows in tasks of rows_per_task, but the run's last `tail` rows in tasks of
// rows_per_task / kTailSplit. Task boundaries never change a result: every row is its own dot.
std::vector<Task> split_tasks(const std::vector<PreparedJob>& jobs, int64_t rows_per_task,
                              int64_t tail) {
  std::vector<Task> tasks;
  int64_t left = 0;
  for (const PreparedJob& p : jobs) left += p.job->w.rows;
  for (const PreparedJob& p : jobs) {
    for (int64_t r0 = 0; r0 < p.job->w.rows;) {
      const int64_t size =
          left > tail ? std::min(rows_per_task, left - tail) : rows_per_task / kTailSplit;
      const int64_t r1 = std::min(p.job->w.rows, r0 + size);
      tasks.push_back({&p, r0, r1});
      left -= r1 - r0;
      r0 = r1;
    }
  }
  return tasks;
}

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
      uint8_t* bytes = it->bytes.data();
      pool.run(n_tok, [&](int64_t t) {
        k.act_from_float(job.x + t * job.w.cols, bytes + t * act_row, job.w.cols);
      });
    }
    prepared.push_back({&job, &k, it->bytes.data(), act_row, row_bytes(job.w.type, job.w.cols)});
  }
  // The act pointers stay valid as `converted` grows: moving a vector keeps its heap buffer.
  const int64_t tail = pool.size() > 1 ? pool.size() * rows_per_task : 0;
  const std::vector<Task> tasks = split_tasks(prepared, rows_per_task, tail);

  pool.run(int64_t(tasks.size()), [&](int64_t task) {
    const PreparedJob* pj = tasks[size_t(task)].job;
    const Matrix& w = pj->job->w;
    const int64_t r0 = tasks[size_t(task)].r0;
    const int64_t r1 = tasks[size_t(task)].r1;
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
        StreamPrefetch ahead{wdata + r * pj->w_row_bytes, wdata + r1 * pj->w_row_bytes};
        for (; r < r1; ++r) {
          ahead.upto(wdata + (r + 1) * pj->w_row_bytes + kStreamPrefetchAhead);
          yt[r] = pj->k->vec_dot(w.cols, wdata + r * pj->w_row_bytes, a);
        }
      } else {
        pj->k->vec_dot_multi(w.cols, wdata + r * pj->w_row_bytes, pj->w_row_bytes, r1 - r, a,
                             pj->act_row_bytes, int(n_act), yt + r, size_t(w.rows));
      }
      t += n_act;
    }
  });
}

}  // namespace lb
