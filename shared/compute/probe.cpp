#include "compute/probe.hpp"

#include <chrono>
#include <vector>

#include "compute/matmul.hpp"
#include "quant/kernels.hpp"

namespace lb {

double probe_compute_score(ThreadPool& pool, int millis) {
  // 1024 x 1024 Q8_0 weights (1 MiB): small enough to stay in cache, so this measures compute
  // rather than memory bandwidth, which the planner accounts for through bytes.
  constexpr int64_t kDim = 1024;
  const Kernels& k = kernels_for(GgmlType::Q8_0);
  std::vector<float> x(kDim * kDim);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 2654435761u % 2001) - 1000) / 1000.0f;
  std::vector<uint8_t> w(row_bytes(GgmlType::Q8_0, kDim) * kDim);
  for (int64_t r = 0; r < kDim; ++r)
    k.act_from_float(&x[r * kDim], &w[r * row_bytes(GgmlType::Q8_0, kDim)], kDim);
  const Matrix m{w.data(), GgmlType::Q8_0, kDim, kDim};
  std::vector<float> y(kDim);
  const auto t0 = std::chrono::steady_clock::now();
  const auto until = t0 + std::chrono::milliseconds(millis);
  int64_t runs = 0;
  do {
    matmul(pool, m, x.data(), y.data(), 1);
    ++runs;
  } while (std::chrono::steady_clock::now() < until);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(runs) * kDim * kDim / secs / 1e9;
}

}  // namespace lb
