// The batched compute paths against their single-row references, bit for bit: vec_dot_multi
// against vec_dot at every SIMD level, matmul over a batch against each row alone (and at any
// thread count).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "compute/matmul.hpp"
#include "compute/thread_pool.hpp"
#include "quant/f16.hpp"
#include "quant/float_dot.hpp"
#include "quant/kernels.hpp"
#include "quant/q4_0.hpp"
#include "quant/q4_0_x8.hpp"
#include "quant/q4_k.hpp"
#include "quant/q4_k_x8.hpp"
#include "quant/q6_k.hpp"
#include "quant/q8_0.hpp"
#include "test_support.hpp"

namespace {

using lbtest::random_floats;

using lb::GgmlType;
using lb::SimdLevel;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// `rows` weight rows of type `type` and `n` columns, quantized from random floats.
std::vector<uint8_t> weights(GgmlType type, int64_t rows, int64_t n, uint32_t seed) {
  const std::vector<float> f = random_floats(rows * n, seed, 0.1f);
  const size_t rb = lb::row_bytes(type, n);
  std::vector<uint8_t> w(rb * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = f.data() + r * n;
    void* dst = w.data() + size_t(r) * rb;
    switch (type) {
      case GgmlType::F32:
        std::memcpy(dst, src, rb);
        break;
      case GgmlType::F16:
        lb::from_float_f16(src, dst, n);
        break;
      case GgmlType::Q8_0:
        lb::quantize_row_q8_0(src, dst, n);
        break;
      case GgmlType::Q4_0:
        lb::quantize_row_q4_0_ref(src, dst, n);
        break;
      case GgmlType::Q4_0_X8: {
        std::vector<lb::BlockQ4_0> q(size_t(n / lb::kQK4_0));
        lb::quantize_row_q4_0_ref(src, q.data(), n);
        lb::repack_row_q4_0_x8(q.data(), dst, n);
        break;
      }
      case GgmlType::Q4_K:
        lb::quantize_row_q4_k_ref(src, dst, n);
        break;
      case GgmlType::Q4_K_X8: {
        std::vector<lb::BlockQ4_K> q(size_t(n / lb::kQK_K));
        lb::quantize_row_q4_k_ref(src, q.data(), n);
        lb::repack_row_q4_k_x8(q.data(), dst, n);
        break;
      }
      default:
        lb::quantize_row_q6_k_ref(src, dst, n);
        break;
    }
  }
  return w;
}

const GgmlType kTypes[] = {GgmlType::F32,     GgmlType::F16,  GgmlType::Q8_0,    GgmlType::Q4_0,
                           GgmlType::Q4_0_X8, GgmlType::Q4_K, GgmlType::Q4_K_X8, GgmlType::Q6_K};

// Types whose rows come in blocks of 256 elements.
bool blocks_of_256(GgmlType type) {
  return type == GgmlType::Q4_K || type == GgmlType::Q6_K || type == GgmlType::Q4_0_X8 ||
         type == GgmlType::Q4_K_X8;
}

TEST(VecDotMulti, SameBitsAsVecDotAtEveryLevel) {
  for (GgmlType type : kTypes) {
    const bool wide_blocks = blocks_of_256(type);
    // Odd and even block counts, whole and partial groups of eight (Q8_0 kernels take blocks in
    // pairs, Q4_0 kernels in eights, and passes of 64 blocks).
    const std::vector<int64_t> sizes = wide_blocks
                                           ? std::vector<int64_t>{256, 768, 2048}
                                           : std::vector<int64_t>{32, 96, 160, 288, 2048, 2080};
    for (int64_t n : sizes) {
      const int64_t n_rows = 35;  // more than a pass of 32 rows
      const std::vector<uint8_t> w = weights(type, n_rows, n, uint32_t(n));
      const size_t wb = lb::row_bytes(type, n);
      for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
        if (level > lb::detected_simd()) continue;
        const lb::Kernels& k = lb::kernels_for(type, level);
        const size_t ab = lb::row_bytes(k.act_type, n);
        std::vector<uint8_t> act(ab * lb::kMaxDotActs);
        for (int t = 0; t < lb::kMaxDotActs; ++t) {
          const std::vector<float> af = random_floats(n, uint32_t(100 * n + t), t + 1.0f);
          k.act_from_float(af.data(), act.data() + size_t(t) * ab, n);
        }
        for (int n_act = 1; n_act <= lb::kMaxDotActs; ++n_act) {
          std::vector<float> y(size_t(lb::kMaxDotActs * n_rows));
          k.vec_dot_multi(n, w.data(), wb, n_rows, act.data(), ab, n_act, y.data(), size_t(n_rows));
          for (int t = 0; t < n_act; ++t) {
            for (int64_t r = 0; r < n_rows; ++r) {
              const float want =
                  k.vec_dot(n, w.data() + size_t(r) * wb, act.data() + size_t(t) * ab);
              ASSERT_EQ(bits_of(y[size_t(t * n_rows + r)]), bits_of(want))
                  << lb::type_name(type) << " n=" << n << " " << lb::simd_name(level)
                  << " n_act=" << n_act << " act row " << t << " weight row " << r;
            }
          }
        }
      }
    }
  }
}

// vec_dot_rows (kDotRows weight rows, one activation row) against vec_dot row by row, bit for bit.
TEST(VecDotRows, SameBitsAsVecDotAtEveryLevel) {
  for (GgmlType type : kTypes) {
    const bool wide_blocks = blocks_of_256(type);
    const std::vector<int64_t> sizes = wide_blocks
                                           ? std::vector<int64_t>{256, 768, 2048}
                                           : std::vector<int64_t>{32, 64, 96, 160, 288, 2048};
    for (int64_t n : sizes) {
      const std::vector<uint8_t> w = weights(type, lb::kDotRows, n, uint32_t(n + 7));
      const size_t wb = lb::row_bytes(type, n);
      for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
        if (level > lb::detected_simd()) continue;
        const lb::Kernels& k = lb::kernels_for(type, level);
        if (!k.vec_dot_rows) continue;
        const size_t ab = lb::row_bytes(k.act_type, n);
        std::vector<uint8_t> act(ab);
        const std::vector<float> af = random_floats(n, uint32_t(3 * n), 2.0f);
        k.act_from_float(af.data(), act.data(), n);
        float y[lb::kDotRows];
        k.vec_dot_rows(n, w.data(), wb, act.data(), y);
        for (int r = 0; r < lb::kDotRows; ++r) {
          const float want = k.vec_dot(n, w.data() + size_t(r) * wb, act.data());
          EXPECT_EQ(bits_of(y[r]), bits_of(want))
              << lb::type_name(type) << " n=" << n << " " << lb::simd_name(level) << " row " << r;
        }
      }
    }
  }
}

// A batch of rows gives each row the bits it gets alone, whatever the thread count.
TEST(Matmul, BatchAndThreadsIrrelevant) {
  const int64_t cols = 512;
  const int64_t rows = 72;  // not a multiple of the rows per task
  // A decode-sized batch (one multi-row group of 5) and a larger one (groups of 8 and 3).
  for (int64_t n_tok : {5, 11}) {
    const std::vector<float> x = random_floats(n_tok * cols, 5);
    lb::ThreadPool one(1);
    lb::ThreadPool two(2);
    for (GgmlType type : kTypes) {
      const std::vector<uint8_t> w = weights(type, rows, cols, 9);
      const lb::Matrix m{w.data(), type, cols, rows};
      std::vector<float> batched(size_t(n_tok * rows));
      lb::matmul(two, m, x.data(), batched.data(), n_tok);
      for (int64_t t = 0; t < n_tok; ++t) {
        std::vector<float> alone(static_cast<size_t>(rows));
        lb::matmul(one, m, x.data() + t * cols, alone.data(), 1);
        for (int64_t r = 0; r < rows; ++r) {
          ASSERT_EQ(bits_of(batched[size_t(t * rows + r)]), bits_of(alone[size_t(r)]))
              << lb::type_name(type) << " n_tok " << n_tok << " token " << t << " row " << r;
        }
      }
    }
  }
}

}  // namespace
