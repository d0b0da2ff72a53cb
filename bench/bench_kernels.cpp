// Throughput of the vec_dot kernels: GB/s of weight bytes streamed by a matrix-vector product
// (rows x 5632 weights, the decode hot path), per weight type and SIMD level on one thread, plus
// the best level on two threads (rows split in halves), next to the memory read bandwidth of this
// machine (plain vector loads over the buffer, bench_read.hpp) for reference; then, in L2, the
// kernels decode steps use: several weight rows per call, and a batch of activation rows.
//
// Times are per-thread CPU times (CLOCK_THREAD_CPUTIME_ID; for two threads the slower one), so
// other processes sharing the cores do not skew the figures; memory stalls still count.
//
// The weights are several distinct copies of a 2048 x 5632 matrix, LAYERBUS_BENCH_MIB (default
// 512) MiB in all, so every pass streams from DRAM rather than the last-level cache.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_read.hpp"
#include "quant/float_dot.hpp"
#include "quant/ggml_type.hpp"
#include "quant/kernels.hpp"
#include "quant/q4_0.hpp"
#include "quant/q4_0_x8.hpp"
#include "quant/q4_k.hpp"
#include "quant/q4_k_x8.hpp"
#include "quant/q6_k.hpp"
#include "quant/q8_0.hpp"
#include "util/aligned.hpp"

namespace {

constexpr int64_t kRows = 2048;
constexpr int64_t kCols = 5632;  // a multiple of 256: valid for every type
constexpr int kPasses = 5;

double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Runs part(0) here and, for two threads, part(1) on a second thread; returns the larger of the
// two threads' CPU times.
template <typename F>
double timed(int threads, F&& part) {
  double other = 0.0;
  std::thread t;
  if (threads == 2) {
    t = std::thread([&] {
      const double t0 = thread_seconds();
      part(1);
      other = thread_seconds() - t0;
    });
  }
  const double t0 = thread_seconds();
  part(0);
  const double mine = thread_seconds() - t0;
  if (t.joinable()) t.join();
  return std::max(mine, other);
}

size_t total_bytes() {
  size_t mib = 512;
  if (const char* env = std::getenv("LAYERBUS_BENCH_MIB"); env && *env) {
    mib = std::max<size_t>(1, std::strtoul(env, nullptr, 10));
  }
  return mib << 20;
}

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// Best GB/s over kPasses of reading `bytes` bytes with part(i) on `threads` threads, thread i
// taking its share.
template <typename F>
double best_gbps(size_t bytes, int threads, F&& part) {
  timed(threads, part);  // warm up (page faults, frequency)
  double best = 0.0;
  for (int i = 0; i < kPasses; ++i) best = std::max(best, bytes / timed(threads, part) / 1e9);
  return best;
}

volatile float g_sink_f;
volatile uint64_t g_sink_u;

float dot_rows(const lb::Kernels& k, const uint8_t* weights, size_t row, size_t begin, size_t end,
               const void* act) {
  float sum = 0.0f;
  for (size_t r = begin; r < end; ++r) sum += k.vec_dot(kCols, weights + r * row, act);
  return sum;
}

struct TypeCase {
  lb::GgmlType type;
  void (*quantize)(const float*, void*, int64_t);  // weight quantizer
};

// Q4_0 and Q4_K as the engine holds them on AVX-512 machines (repack_for).
void quantize_q4_0_x8(const float* src, void* dst, int64_t n) {
  std::vector<lb::BlockQ4_0> q(size_t(n / lb::kQK4_0));
  lb::quantize_row_q4_0_ref(src, q.data(), n);
  lb::repack_row_q4_0_x8(q.data(), dst, n);
}
void quantize_q4_k_x8(const float* src, void* dst, int64_t n) {
  std::vector<lb::BlockQ4_K> q(size_t(n / lb::kQK_K));
  lb::quantize_row_q4_k_ref(src, q.data(), n);
  lb::repack_row_q4_k_x8(q.data(), dst, n);
}

}  // namespace

int main() {
  const size_t target = total_bytes();
  std::printf(
      "vec_dot single-thread weight streaming, %lld x %lld matrices, %zu MiB of weights "
      "per pass, best of %d passes; CPU level: %s\n\n",
      static_cast<long long>(kRows), static_cast<long long>(kCols), target >> 20, kPasses,
      lb::simd_name(lb::detected_simd()));

  // Reference: memory bandwidth of reads and of memcpy.
  double read1 = 0.0;
  double read2 = 0.0;
  {
    lb::AlignedVector<uint8_t> buf(target, 1);
    auto scan = [&](size_t begin, size_t end) {
      g_sink_u = lbbench::read_or(buf.data() + begin, end - begin);
    };
    read1 = best_gbps(target, 1, [&](int) { scan(0, target); });
    read2 = best_gbps(target, 2, [&](int i) { scan(i * (target / 2), (i + 1) * (target / 2)); });
    std::vector<uint8_t> dst(target / 2);
    const double copy_gbps = best_gbps(target / 2, 1, [&](int) {
      std::memcpy(dst.data(), buf.data(), dst.size());
      g_sink_u = static_cast<uint64_t>(dst[dst.size() / 3]);
    });
    std::printf("%-30s %8.2f GB/s\n", "read, 1 thread", read1);
    std::printf("%-30s %8.2f GB/s\n", "read, 2 threads", read2);
    std::printf("%-30s %8.2f GB/s (bytes copied; reads + writes = 2x)\n\n", "memcpy, 1 thread",
                copy_gbps);
  }

  const TypeCase types[] = {
      {lb::GgmlType::F32, nullptr},
      {lb::GgmlType::F16, lb::from_float_f16},
      {lb::GgmlType::Q8_0, lb::quantize_row_q8_0},
      {lb::GgmlType::Q4_0, lb::quantize_row_q4_0_ref},
      {lb::GgmlType::Q4_0_X8, quantize_q4_0_x8},
      {lb::GgmlType::Q4_K, lb::quantize_row_q4_k_ref},
      {lb::GgmlType::Q4_K_X8, quantize_q4_k_x8},
      {lb::GgmlType::Q6_K, lb::quantize_row_q6_k_ref},
  };
  const lb::SimdLevel levels[] = {lb::SimdLevel::Scalar, lb::SimdLevel::Avx2,
                                  lb::SimdLevel::Avx512};

  std::printf("%-6s %10s %7s", "type", "row bytes", "copies");
  for (lb::SimdLevel level : levels) std::printf(" %8s", lb::simd_name(level));
  std::printf(" %8s %8s %9s\n", "% read1", "2 thr", "% read2");

  const std::vector<float> act = random_floats(kCols, 1);
  const std::vector<float> wf = random_floats(kRows * kCols, 2);
  // One buffer for every type, allocated once: fresh large allocations per type made the
  // figures depend on the order of the types (page placement), not on the kernels.
  lb::AlignedVector<uint8_t> weights;  // aligned as the engine's weights and activations are
  weights.reserve(target + (64u << 20));
  std::string l2_table;
  std::string decode_table;
  for (const TypeCase& tc : types) {
    const size_t row = lb::row_bytes(tc.type, kCols);
    const size_t matrix = row * kRows;
    const size_t copies = std::max<size_t>(1, (target + matrix - 1) / matrix);
    const size_t rows = kRows * copies;
    // One quantized matrix, copied into every slot (the values do not change the timing).
    if (weights.size() < matrix * copies) weights.resize(matrix * copies);
    {
      for (int64_t r = 0; r < kRows; ++r) {
        const float* src = wf.data() + r * kCols;
        uint8_t* dst = weights.data() + r * row;
        if (tc.quantize) {
          tc.quantize(src, dst, kCols);
        } else {
          std::memcpy(dst, src, row);
        }
      }
      for (size_t c = 1; c < copies; ++c) {
        std::memcpy(weights.data() + c * matrix, weights.data(), matrix);
      }
    }
    std::printf("%-6s %10zu %7zu", lb::type_name(tc.type), row, copies);
    double best = 0.0;
    for (lb::SimdLevel level : levels) {
      if (level > lb::detected_simd()) {
        std::printf(" %8s", "n/a");
        continue;
      }
      const lb::Kernels& k = lb::kernels_for(tc.type, level);
      lb::AlignedVector<uint8_t> a(lb::row_bytes(k.act_type, kCols) + 64);
      k.act_from_float(act.data(), a.data(), kCols);
      const double gbps = best_gbps(matrix * copies, 1, [&](int) {
        g_sink_f = dot_rows(k, weights.data(), row, 0, rows, a.data());
      });
      best = std::max(best, gbps);
      std::printf(" %8.2f", gbps);
      std::fflush(stdout);
    }
    // Two threads at the best level, each taking half of the rows.
    const lb::Kernels& k = lb::kernels_for(tc.type);
    lb::AlignedVector<uint8_t> a(lb::row_bytes(k.act_type, kCols) + 64);
    k.act_from_float(act.data(), a.data(), kCols);
    const double two = best_gbps(matrix * copies, 2, [&](int i) {
      const size_t half = rows / 2;
      g_sink_f = dot_rows(k, weights.data(), row, i * half, i ? rows : half, a.data());
    });
    std::printf(" %7.1f%% %8.2f %8.1f%%\n", 100.0 * best / read1, two, 100.0 * two / read2);

    // The same kernels on 512 KiB of rows that stay in L2: their compute-bound speed.
    const size_t l2_rows = std::max<size_t>(1, (512u << 10) / row);
    const int reps = static_cast<int>(std::max<size_t>(1, (64u << 20) / (l2_rows * row)));
    std::string line;
    for (lb::SimdLevel level : levels) {
      char cell[32];
      if (level > lb::detected_simd()) {
        std::snprintf(cell, sizeof cell, " %8s", "n/a");
      } else {
        const lb::Kernels& kl = lb::kernels_for(tc.type, level);
        lb::AlignedVector<uint8_t> al(lb::row_bytes(kl.act_type, kCols) + 64);
        kl.act_from_float(act.data(), al.data(), kCols);
        const int r = level == lb::SimdLevel::Scalar ? std::max(1, reps / 16) : reps;
        const double gbps = best_gbps(l2_rows * row * r, 1, [&](int) {
          float sum = 0.0f;
          for (int i = 0; i < r; ++i)
            sum += dot_rows(kl, weights.data(), row, 0, l2_rows, al.data());
          g_sink_f = sum;
        });
        std::snprintf(cell, sizeof cell, " %8.2f", gbps);
      }
      line += cell;
    }
    l2_table += std::string(lb::type_name(tc.type)) +
                std::string(25 - std::strlen(lb::type_name(tc.type)), ' ') + line + "\n";

    // The decode kernels matmul calls, on the same rows in L2 at the best level: kDotRows weight
    // rows per call against one activation row, and 64-row ranges against kMaxDotActs rows.
    {
      const int64_t range = std::min<int64_t>(64, int64_t(l2_rows));
      const int64_t rows_l2 = int64_t(l2_rows) / range * range;
      lb::AlignedVector<uint8_t> acts(lb::row_bytes(k.act_type, kCols) * lb::kMaxDotActs + 64);
      const size_t ab = lb::row_bytes(k.act_type, kCols);
      for (int t = 0; t < lb::kMaxDotActs; ++t) {
        const std::vector<float> af = random_floats(kCols, uint32_t(10 + t));
        k.act_from_float(af.data(), acts.data() + size_t(t) * ab, kCols);
      }
      char cell[64];
      if (k.vec_dot_rows) {
        const int64_t part = rows_l2 / lb::kDotRows;
        const double gbps = best_gbps(size_t(rows_l2) * row * size_t(reps), 1, [&](int) {
          float sum = 0.0f;
          float y[lb::kDotRows];
          for (int i = 0; i < reps; ++i) {
            for (int64_t r = 0; r < part; ++r) {
              k.vec_dot_rows(kCols, weights.data() + size_t(r) * row, size_t(part) * row,
                             acts.data(), y);
              sum += y[0];
            }
          }
          g_sink_f = sum;
        });
        std::snprintf(cell, sizeof cell, " %10.2f", gbps);
      } else {
        std::snprintf(cell, sizeof cell, " %10s", "-");
      }
      std::string line2 = cell;
      {
        std::vector<float> y(size_t(lb::kMaxDotActs * rows_l2));
        const int r = std::max(1, reps / lb::kMaxDotActs);
        const double gbps = best_gbps(size_t(rows_l2) * row * size_t(r), 1, [&](int) {
          for (int i = 0; i < r; ++i) {
            for (int64_t r0 = 0; r0 < rows_l2; r0 += range) {
              k.vec_dot_multi(kCols, weights.data() + size_t(r0) * row, row, range, acts.data(), ab,
                              lb::kMaxDotActs, y.data() + r0, size_t(rows_l2));
            }
          }
          g_sink_f = y[0];
        });
        std::snprintf(cell, sizeof cell, " %16.2f", gbps * lb::kMaxDotActs);
      }
      line2 += cell;
      decode_table += std::string(lb::type_name(tc.type)) +
                      std::string(8 - std::strlen(lb::type_name(tc.type)), ' ') + line2 + "\n";
    }
  }
  std::printf("\nin L2 (512 KiB of rows, repeated): compute-bound GB/s\n%-25s", "type");
  for (lb::SimdLevel level : levels) std::printf(" %8s", lb::simd_name(level));
  std::printf("\n%s", l2_table.c_str());
  std::printf(
      "\nin L2, the decode kernels at the best level: vec_dot_rows (%d weight rows per call) in "
      "GB/s,\nvec_dot_multi (up to 64 weight rows x %d activation rows per call) in GB/s x "
      "activation "
      "rows\n%-8s %10s %16s\n%s",
      lb::kDotRows, lb::kMaxDotActs, "type", "rows", "multi", decode_table.c_str());
  return 0;
}
