// Attention's fast paths against their references, bit for bit: the eight-lane expf against
// std::exp, and attend_heads_simd at each SIMD level the CPU has (heads sharing KV heads or not,
// every head_dim path) against attend_head_scalar one head at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "compute/attention.hpp"
#include "compute/expf.hpp"
#include "quant/f16.hpp"
#include "quant/kernels.hpp"
#include "test_support.hpp"

namespace {

using lbtest::random_floats;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

bool have_avx2() {
  return lb::detected_simd() >= lb::SimdLevel::Avx2;
}

// Every 251st bit pattern (both signs, subnormals, the special range, infinities, NaNs), and a
// dense run of the softmax's arguments (-20, 0], through a vector variant of expf_row.
void expect_libm_bits(void (*expf_row_simd)(const float*, float*, int64_t)) {
  std::vector<float> x = lb::spread_floats(251);
  for (float f = -20.0f; f <= 0.0f; f += 1.0f / 4096) x.push_back(f);
  for (float f : {-INFINITY, INFINITY, -0.0f, 0.0f, 88.0f, -88.0f, 88.72f, -103.5f, -104.0f})
    x.push_back(f);
  x.resize(x.size() + 5, -1.0f);  // a length that is not a multiple of eight or sixteen
  std::vector<float> y(x.size());
  expf_row_simd(x.data(), y.data(), int64_t(x.size()));
  size_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = std::exp(x[i]);
    const bool same = std::isnan(want) ? std::isnan(y[i]) : bits_of(y[i]) == bits_of(want);
    if (!same && ++mismatches <= 5) {
      ADD_FAILURE() << "exp(" << x[i] << ") = " << y[i] << ", libm says " << want;
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << x.size() << " arguments";
}

TEST(Expf, Avx2SameBitsAsLibm) {
  if (!have_avx2()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  expect_libm_bits(lb::expf_row_avx2);
}

TEST(Expf, Avx512SameBitsAsLibm) {
  if (lb::detected_simd() < lb::SimdLevel::Avx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  expect_libm_bits(lb::expf_row_avx512);
}

struct Case {
  int64_t n_heads, n_kv_heads, head_dim, n_pos, per_call;
  float q_scale;  // large values spread the scores past exp's fast range
};

TEST(Attention, SimdSameBitsAsScalar) {
  if (!have_avx2()) GTEST_SKIP() << "no F16C on this CPU";
  std::vector<lb::SimdLevel> levels = {lb::SimdLevel::Avx2};
  if (lb::detected_simd() >= lb::SimdLevel::Avx512) {
    levels.push_back(lb::SimdLevel::Avx512);
  } else {
    std::printf("no AVX-512 on this CPU: its attention path goes untested here\n");
  }
  const std::vector<Case> cases = {
      {32, 4, 64, 150, 8, 1.5f},  // TinyLlama's shape: eight heads per KV head
      {8, 8, 64, 37, 8, 1.5f},    // no GQA: each head its own KV head
      {6, 2, 64, 300, 4, 1.5f},   // calls spanning two KV heads
      {14, 2, 128, 37, 8, 1.5f},  // seven heads per KV head, a partial last call
      {8, 4, 100, 300, 8, 1.5f},  // dims past 64 and a tail of 4
      {8, 4, 16, 2, 8, 1.5f},     // the golden models' head sizes
      {8, 4, 8, 1, 3, 1.5f},     {8, 2, 64, 300, 8, 400.0f},  // scores hundreds apart
      {12, 4, 72, 40, 5, 1.5f},  // calls of 5, 5 and 2 heads: groups of four, one and two
  };
  for (const Case& c : cases) {
    const int64_t hd = c.head_dim;
    const int64_t stride = c.n_kv_heads * hd;
    const std::vector<float> kf = random_floats(c.n_pos * stride, uint32_t(c.n_pos), 2.0f);
    const std::vector<float> vf = random_floats(c.n_pos * stride, uint32_t(c.n_pos + 1), 3.0f);
    std::vector<lb::Half> k(kf.size()), v(vf.size());
    lb::fp32_to_fp16_row(kf.data(), k.data(), int64_t(k.size()));
    lb::fp32_to_fp16_row(vf.data(), v.data(), int64_t(v.size()));
    const std::vector<float> q = random_floats(c.n_heads * hd, uint32_t(hd), c.q_scale);
    const lb::KvRows kv{k.data(), v.data(), stride, c.n_pos, hd, c.n_heads / c.n_kv_heads};
    const float scale = 1.0f / std::sqrt(float(hd));
    std::vector<float> want(q.size()), got(q.size());
    for (int64_t h = 0; h < c.n_heads; ++h) {
      lb::attend_head_scalar(kv, q.data() + h * hd, h, scale, want.data() + h * hd);
    }
    for (lb::SimdLevel level : levels) {
      for (int64_t h0 = 0; h0 < c.n_heads; h0 += c.per_call) {
        lb::attend_heads_simd(kv, q.data() + h0 * hd, h0, std::min(c.per_call, c.n_heads - h0),
                              scale, got.data() + h0 * hd, level);
      }
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(bits_of(got[i]), bits_of(want[i]))
            << lb::simd_name(level) << ", " << c.n_heads << " heads, " << c.n_kv_heads
            << " KV heads, head_dim " << hd << ", " << c.n_pos << " positions, q scale "
            << c.q_scale << ": head " << int64_t(i) / hd << " dim " << int64_t(i) % hd;
      }
    }
  }
}

}  // namespace
