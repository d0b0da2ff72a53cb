// Tensor types: fp16 conversion, block layouts, quantizers, dequantizers and the dot products at
// every SIMD level this CPU has (compared with the scalar reference).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/f16.hpp"
#include "quant/float_dot.hpp"
#include "quant/ggml_type.hpp"
#include "quant/kernels.hpp"
#include "quant/q4_0.hpp"
#include "quant/q4_0_x8.hpp"
#include "quant/q4_k.hpp"
#include "quant/q4_k_x8.hpp"
#include "quant/q6_k.hpp"
#include "quant/q8_0.hpp"
#include "quant/q8_k.hpp"
#include "quant/silu.hpp"
#include "util/aligned.hpp"
#include "util/error.hpp"

namespace {

using lb::GgmlType;
using lb::Half;
using lb::SimdLevel;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Random floats whose scale changes from one 32-element run to the next (1e-3 .. 10), with an
// occasional outlier, so blocks of every size see different ranges.
std::vector<float> test_data(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> expo(-3.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<float> v(static_cast<size_t>(n));
  float scale = 1.0f;
  for (int64_t i = 0; i < n; ++i) {
    if (i % 32 == 0) scale = std::pow(10.0f, expo(rng));
    v[i] = normal(rng) * scale;
    if (pick(rng) == 0) v[i] *= 6.0f;
  }
  return v;
}

std::vector<SimdLevel> all_levels() {
  return {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512};
}

// ---------------------------------------------------------------------------------------------
// fp16

TEST(F16, AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = lb::fp16_to_fp32(static_cast<Half>(h));
    const Half back = lb::fp32_to_fp16(f);
    if (std::isnan(f)) {
      // NaNs come back quietened (as F16C does), sign and payload kept.
      EXPECT_EQ(back, static_cast<Half>(h | 0x0200u)) << std::hex << h;
      EXPECT_EQ((h & 0x7c00u), 0x7c00u);
    } else {
      ASSERT_EQ(back, h) << std::hex << h;
    }
  }
}

TEST(F16, KnownHalfValues) {
  EXPECT_EQ(lb::fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(lb::fp16_to_fp32(0xc000), -2.0f);
  EXPECT_EQ(lb::fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(lb::fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(lb::fp16_to_fp32(0x03ff), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(lb::fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(lb::fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(lb::fp16_to_fp32(0x7c00)));
  EXPECT_TRUE(std::signbit(lb::fp16_to_fp32(0x8000)));
  EXPECT_EQ(lb::fp16_to_fp32(0x8000), 0.0f);
  // Strictly increasing over the positive finite halves.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    ASSERT_LT(lb::fp16_to_fp32(static_cast<Half>(h)), lb::fp16_to_fp32(static_cast<Half>(h + 1)));
  }
}

TEST(F16, KnownRounding) {
  const float ulp1 = std::ldexp(1.0f, -10);  // spacing of halves in [1, 2)
  EXPECT_EQ(lb::fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(lb::fp32_to_fp16(1.0f + ulp1 / 2), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(lb::fp32_to_fp16(1.0f + 3 * ulp1 / 2), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(lb::fp32_to_fp16(std::nextafter(1.0f + ulp1 / 2, 2.0f)), 0x3c01);
  EXPECT_EQ(lb::fp32_to_fp16(std::nextafter(1.0f + ulp1 / 2, 0.0f)), 0x3c00);
  EXPECT_EQ(lb::fp32_to_fp16(-1.0f - ulp1 / 2), 0xbc00);
  EXPECT_EQ(lb::fp32_to_fp16(2048.0f + 1.0f), 0x6800);  // 2049: tie between 2048 and 2050
  EXPECT_EQ(lb::fp32_to_fp16(2048.0f + 3.0f), 0x6802);  // 2051: tie -> 2052
  // Overflow.
  EXPECT_EQ(lb::fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(lb::fp32_to_fp16(65519.99f), 0x7bff);
  EXPECT_EQ(lb::fp32_to_fp16(65520.0f), 0x7c00);  // tie with 65536 -> even -> inf
  EXPECT_EQ(lb::fp32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(lb::fp32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(lb::fp32_to_fp16(INFINITY), 0x7c00);
  EXPECT_EQ(lb::fp32_to_fp16(-INFINITY), 0xfc00);
  const Half nan = lb::fp32_to_fp16(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  // Subnormals (unit 2^-24).
  const float u = std::ldexp(1.0f, -24);
  EXPECT_EQ(lb::fp32_to_fp16(u), 0x0001);
  EXPECT_EQ(lb::fp32_to_fp16(u / 2), 0x0000);  // tie -> even zero
  EXPECT_EQ(lb::fp32_to_fp16(std::nextafter(u / 2, 1.0f)), 0x0001);
  EXPECT_EQ(lb::fp32_to_fp16(-u / 2), 0x8000);
  EXPECT_EQ(lb::fp32_to_fp16(1.5f * u), 0x0002);     // tie -> even
  EXPECT_EQ(lb::fp32_to_fp16(2.5f * u), 0x0002);     // tie -> even
  EXPECT_EQ(lb::fp32_to_fp16(1.25f * u), 0x0001);    // below the tie
  EXPECT_EQ(lb::fp32_to_fp16(1023.5f * u), 0x0400);  // largest subnormal/min normal tie -> even
  EXPECT_EQ(lb::fp32_to_fp16(1022.5f * u), 0x03fe);
  EXPECT_EQ(lb::fp32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(lb::fp32_to_fp16(float_of(1)), 0x0000);  // float subnormal
  EXPECT_EQ(lb::fp32_to_fp16(-0.0f), 0x8000);
}

// An independent oracle: the result must be a nearest half, and the even one on a tie.
TEST(F16, RandomFloatsRoundToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> exp_dist(100, 143);  // 2^-27 .. 2^16
  std::uniform_int_distribution<uint32_t> mant_dist(0, 0x7fffff);
  std::uniform_int_distribution<uint32_t> low_bits(0, 5);
  for (int i = 0; i < 500000; ++i) {
    uint32_t m = mant_dist(rng);
    switch (low_bits(rng)) {  // bias towards exact ties and their neighbours
      case 0:
        m = (m & ~0x1fffu) | 0x1000u;
        break;
      case 1:
        m = (m & ~0x1fffu) | 0x0fffu;
        break;
      case 2:
        m = (m & ~0x1fffu) | 0x1001u;
        break;
      default:
        break;
    }
    const float f = float_of((exp_dist(rng) << 23) | m);
    const Half h = lb::fp32_to_fp16(f);
    if (f >= 65520.0f) {
      ASSERT_EQ(h, 0x7c00) << f;
      continue;
    }
    ASSERT_LT(h, 0x7c00) << f;
    const double v = lb::fp16_to_fp32(h);
    const double err = std::fabs(v - f);
    const double below = h > 0 ? lb::fp16_to_fp32(static_cast<Half>(h - 1)) : -1.0;
    const double above = h < 0x7bff ? lb::fp16_to_fp32(static_cast<Half>(h + 1)) : 65536.0;
    ASSERT_LE(err, std::fabs(below - f)) << f;
    ASSERT_LE(err, std::fabs(above - f)) << f;
    if (err == std::fabs(below - f) || err == std::fabs(above - f)) {
      ASSERT_EQ(h & 1, 0) << "tie not to even for " << f;
    }
  }
}

TEST(F16, SimdRowConverterMatchesScalar) {
  if (lb::detected_simd() < SimdLevel::Avx2) {
    GTEST_SKIP() << "this CPU (or LAYERBUS_SIMD) has no AVX2/F16C level";
  }
  // Every sign/exponent/top-mantissa pattern with the rounding-relevant low bits varied.
  const uint32_t lows[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff};
  std::vector<float> src;
  for (uint32_t top = 0; top < (1u << 19); ++top) {
    for (uint32_t low : lows) src.push_back(float_of((top << 13) | low));
  }
  std::vector<Half> a(src.size()), b(src.size());
  lb::fp32_to_fp16_row(src.data(), a.data(), static_cast<int64_t>(src.size()));
  const lb::Kernels& k = lb::kernels_for(GgmlType::F16, SimdLevel::Avx2);
  k.act_from_float(src.data(), b.data(), static_cast<int64_t>(src.size()));
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(a[i], b[i]) << std::hex << bits_of(src[i]);
  }
  std::vector<Half> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<Half>(h);
  std::vector<float> fa(65536), fb(65536);
  lb::fp16_to_fp32_row(all.data(), fa.data(), 65536);
  lb::fp16_to_fp32_row_f16c(all.data(), fb.data(), 65536);
  for (uint32_t h = 0; h < 65536; ++h) ASSERT_EQ(bits_of(fa[h]), bits_of(fb[h])) << h;
}

// ---------------------------------------------------------------------------------------------
// Type table and dispatch

TEST(TypeInfo, GgmlLayouts) {
  struct Want {
    uint32_t number;
    const char* name;
    int64_t block_size;
    size_t block_bytes;
    bool supported;
  };
  const Want want[] = {
      {0, "f32", 1, 4, true},          {1, "f16", 1, 2, true},
      {2, "q4_0", 32, 18, true},       {3, "q4_1", 32, 20, false},
      {6, "q5_0", 32, 22, false},      {7, "q5_1", 32, 24, false},
      {8, "q8_0", 32, 34, true},       {9, "q8_1", 32, 36, false},
      {10, "q2_K", 256, 84, false},    {11, "q3_K", 256, 110, false},
      {12, "q4_K", 256, 144, true},    {13, "q5_K", 256, 176, false},
      {14, "q6_K", 256, 210, true},    {15, "q8_K", 256, 292, false},
      {16, "iq2_xxs", 256, 66, false}, {17, "iq2_xs", 256, 74, false},
      {18, "iq3_xxs", 256, 98, false}, {19, "iq1_s", 256, 50, false},
      {20, "iq4_nl", 32, 18, false},   {21, "iq3_s", 256, 110, false},
      {22, "iq2_s", 256, 82, false},   {23, "iq4_xs", 256, 136, false},
      {24, "i8", 1, 1, false},         {25, "i16", 1, 2, false},
      {26, "i32", 1, 4, false},        {27, "i64", 1, 8, false},
      {28, "f64", 1, 8, false},        {29, "iq1_m", 256, 56, false},
      {30, "bf16", 1, 2, false},       {34, "tq1_0", 256, 54, false},
      {35, "tq2_0", 256, 66, false},   {39, "mxfp4", 32, 17, false},
  };
  for (const Want& w : want) {
    const lb::TypeInfo* info = lb::type_info(w.number);
    ASSERT_NE(info, nullptr) << w.number;
    EXPECT_STREQ(info->name, w.name);
    EXPECT_EQ(info->block_size, w.block_size) << w.name;
    EXPECT_EQ(info->block_bytes, w.block_bytes) << w.name;
    EXPECT_EQ(info->supported, w.supported) << w.name;
  }
  for (uint32_t gone : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u, 0xffffffffu}) {
    EXPECT_EQ(lb::type_info(gone), nullptr) << gone;
  }
  EXPECT_STREQ(lb::type_name(GgmlType::Q4_K), "q4_K");
  EXPECT_STREQ(lb::type_name(static_cast<GgmlType>(4)), "unknown");
}

TEST(TypeInfo, BlockStructsAndRowBytes) {
  EXPECT_EQ(sizeof(lb::BlockQ8_0), lb::type_info(8)->block_bytes);
  EXPECT_EQ(sizeof(lb::BlockQ4_0), lb::type_info(2)->block_bytes);
  EXPECT_EQ(sizeof(lb::BlockQ4_K), lb::type_info(12)->block_bytes);
  EXPECT_EQ(sizeof(lb::BlockQ6_K), lb::type_info(14)->block_bytes);
  EXPECT_EQ(sizeof(lb::BlockQ8_K), lb::type_info(15)->block_bytes);
  EXPECT_EQ(offsetof(lb::BlockQ4_K, scales), 4u);
  EXPECT_EQ(offsetof(lb::BlockQ4_K, qs), 16u);
  EXPECT_EQ(offsetof(lb::BlockQ6_K, qh), 128u);
  EXPECT_EQ(offsetof(lb::BlockQ6_K, scales), 192u);
  EXPECT_EQ(offsetof(lb::BlockQ6_K, d), 208u);
  EXPECT_EQ(offsetof(lb::BlockQ8_K, bsums), 260u);
  EXPECT_EQ(lb::row_bytes(GgmlType::F32, 2048), 8192u);
  EXPECT_EQ(lb::row_bytes(GgmlType::F16, 2048), 4096u);
  EXPECT_EQ(lb::row_bytes(GgmlType::Q8_0, 2048), 64u * 34u);
  EXPECT_EQ(lb::row_bytes(GgmlType::Q4_0, 5632), 176u * 18u);
  EXPECT_EQ(lb::row_bytes(GgmlType::Q4_K, 5632), 22u * 144u);
  EXPECT_EQ(lb::row_bytes(GgmlType::Q6_K, 2048), 8u * 210u);
  EXPECT_EQ(lb::row_bytes(GgmlType::Q8_K, 256), 292u);
  EXPECT_EQ(lb::row_bytes(GgmlType::BF16, 3), 6u);
}

TEST(Kernels, TableAndErrors) {
  struct Want {
    GgmlType weight;
    GgmlType act;
  };
  const Want want[] = {{GgmlType::F32, GgmlType::F32},   {GgmlType::F16, GgmlType::F16},
                       {GgmlType::Q8_0, GgmlType::Q8_0}, {GgmlType::Q4_0, GgmlType::Q8_0},
                       {GgmlType::Q4_K, GgmlType::Q8_K}, {GgmlType::Q6_K, GgmlType::Q8_K}};
  for (const Want& w : want) {
    for (SimdLevel level : all_levels()) {
      const lb::Kernels& k = lb::kernels_for(w.weight, level);
      EXPECT_EQ(k.act_type, w.act) << lb::type_name(w.weight);
      EXPECT_NE(k.act_from_float, nullptr);
      EXPECT_NE(k.to_float, nullptr);
      EXPECT_NE(k.vec_dot, nullptr);
    }
    EXPECT_EQ(&lb::kernels_for(w.weight), &lb::kernels_for(w.weight, lb::detected_simd()));
  }
  for (GgmlType t : {GgmlType::BF16, GgmlType::Q8_K, GgmlType::Q5_K, GgmlType::Q4_1}) {
    try {
      lb::kernels_for(t);
      ADD_FAILURE() << "no error for " << lb::type_name(t);
    } catch (const lb::Error& e) {
      EXPECT_NE(std::string(e.what()).find(lb::type_name(t)), std::string::npos) << e.what();
    }
  }
  EXPECT_STREQ(lb::simd_name(SimdLevel::Scalar), "scalar");
  EXPECT_STREQ(lb::simd_name(SimdLevel::Avx2), "avx2");
  EXPECT_STREQ(lb::simd_name(SimdLevel::Avx512), "avx512");
  std::printf("detected SIMD level: %s\n", lb::simd_name(lb::detected_simd()));
}

// ---------------------------------------------------------------------------------------------
// Activation quantizers

TEST(Q8_0, ActivationQuantizerRoundsHalfToEven) {
  // amax = 127 gives id = 1 exactly, so x * id is x and the ties are exact.
  std::vector<float> x(64, 0.0f);
  const float a[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, 126.5f, 127.0f, -127.0f, 4.49f};
  const int8_t q[] = {0, 2, 2, 0, -2, -2, 4, 126, 127, -127, 4};
  for (size_t i = 0; i < std::size(a); ++i) x[i] = a[i];
  // Second block: amax = 63.5 gives id = 2 exactly: 0.25 -> 0.5 -> 0, 0.75 -> 2, 1.25 -> 2.
  const float b[] = {0.25f, 0.75f, 1.25f, -63.5f, 31.75f};
  const int8_t qb[] = {0, 2, 2, -127, 64};
  for (size_t i = 0; i < std::size(b); ++i) x[32 + i] = b[i];
  lb::BlockQ8_0 out[2];
  lb::quantize_row_q8_0(x.data(), out, 64);
  EXPECT_EQ(out[0].d, lb::fp32_to_fp16(1.0f));
  EXPECT_EQ(out[1].d, lb::fp32_to_fp16(0.5f));
  for (size_t i = 0; i < std::size(q); ++i) EXPECT_EQ(out[0].qs[i], q[i]) << "x=" << a[i];
  for (size_t i = 0; i < std::size(qb); ++i) EXPECT_EQ(out[1].qs[i], qb[i]) << "x=" << b[i];
  for (int i = static_cast<int>(std::size(a)); i < 32; ++i) EXPECT_EQ(out[0].qs[i], 0);

  std::vector<float> zeros(32, 0.0f);
  lb::quantize_row_q8_0(zeros.data(), out, 32);
  EXPECT_EQ(out[0].d, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[0].qs[i], 0);
}

TEST(Q8_0, ActivationQuantizerMatchesDefinition) {
  const int64_t n = 4096;
  const std::vector<float> x = test_data(n, 11);
  std::vector<lb::BlockQ8_0> q(n / 32);
  lb::quantize_row_q8_0(x.data(), q.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    ASSERT_EQ(q[b].d, lb::fp32_to_fp16(amax / 127.0f));
    const float id = 127.0f / amax;
    for (int j = 0; j < 32; ++j) {
      const float v = x[b * 32 + j] * id;
      ASSERT_EQ(q[b].qs[j], static_cast<int8_t>(std::nearbyint(v))) << v;
    }
  }
}

TEST(Q8_K, ActivationQuantizer) {
  const int64_t n = 1024;
  std::vector<float> x = test_data(n, 12);
  x[5] = 1000.0f;     // block 0: positive extreme -> d < 0, q = -127 there
  x[300] = -2000.0f;  // block 1: negative extreme -> d > 0
  for (int j = 512; j < 768; ++j) x[j] = 0.0f;  // block 2: all zero
  std::vector<lb::BlockQ8_K> q(n / 256);
  lb::quantize_row_q8_k(x.data(), q.data(), n);
  EXPECT_EQ(q[0].qs[5], -127);
  EXPECT_EQ(q[0].d, 1.0f / (-127.0f / 1000.0f));
  EXPECT_EQ(q[1].qs[300 - 256], -127);  // the extreme always maps to -127; d carries the sign
  EXPECT_GT(q[1].d, 0.0f);
  EXPECT_EQ(q[1].d, 1.0f / (-127.0f / -2000.0f));
  EXPECT_EQ(q[2].d, 0.0f);
  for (int64_t b = 0; b < n / 256; ++b) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += q[b].qs[g * 16 + j];
      ASSERT_EQ(q[b].bsums[g], sum);
    }
    for (int j = 0; j < 256; ++j) {
      const float xv = x[b * 256 + j];
      ASSERT_LE(std::fabs(q[b].d * q[b].qs[j] - xv), std::fabs(q[b].d) * 0.5001f + 1e-12f);
      if (b == 3) {  // exactly nearest-even of x * iscale (iscale = -127/max)
        float amax = 0.0f, max = 0.0f;
        for (int k = 0; k < 256; ++k) {
          if (std::fabs(x[b * 256 + k]) > amax) {
            amax = std::fabs(x[b * 256 + k]);
            max = x[b * 256 + k];
          }
        }
        const float v = (-127.0f / max) * xv;
        ASSERT_EQ(q[b].qs[j], static_cast<int8_t>(std::min(127.0f, std::nearbyint(v))));
      }
    }
  }
}

TEST(ActivationQuantizers, EveryLevelGivesTheScalarBytes) {
  const int64_t n = 2048;
  std::vector<float> x = test_data(n, 13);
  for (int j = 0; j < 256; ++j) x[size_t(j)] = 0.0f;  // a zero super-block (and zero blocks)
  x[7] = -0.0f;
  // Ties: with a maximum of 127 the Q8_0 scale is 1, so x.5 values round to even.
  for (int j = 256; j < 288; ++j) x[size_t(j)] = float(j - 272) + 0.5f;
  x[287] = 127.0f;
  // The same largest magnitude with both signs: the first one sets Q8_K's scale.
  x[600] = -50.0f;
  x[700] = 50.0f;
  x[1100] = 60.0f;
  x[1101] = -60.0f;
  const GgmlType weights[] = {GgmlType::F16,     GgmlType::Q8_0,    GgmlType::Q4_0, GgmlType::Q4_K,
                              GgmlType::Q4_0_X8, GgmlType::Q4_K_X8, GgmlType::Q6_K};
  for (GgmlType w : weights) {
    const lb::Kernels& ref = lb::kernels_for(w, SimdLevel::Scalar);
    std::vector<uint8_t> want(lb::row_bytes(ref.act_type, n));
    ref.act_from_float(x.data(), want.data(), n);
    for (SimdLevel level : all_levels()) {
      if (level > lb::detected_simd()) continue;
      const lb::Kernels& k = lb::kernels_for(w, level);
      std::vector<uint8_t> got(want.size());
      k.act_from_float(x.data(), got.data(), n);
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i], want[i])
            << lb::type_name(w) << " at " << lb::simd_name(level) << ", byte " << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Layouts: the dequantizers against decoders written the way ggml's reference code reads blocks.

TEST(Layout, Q4_0Nibbles) {
  lb::BlockQ4_0 b{};
  b.d = lb::fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j & 15) | ((15 - j) << 4));
  float y[32];
  lb::dequantize_row_q4_0(&b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f);
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f);
  }
}

void ggml_style_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

template <typename Block>
std::vector<Block> random_blocks(int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Block> v(count);
  auto* p = reinterpret_cast<uint8_t*>(v.data());
  for (size_t i = 0; i < sizeof(Block) * count; ++i) p[i] = static_cast<uint8_t>(rng());
  return v;
}

Half random_scale(std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  return lb::fp32_to_fp16(u(rng));
}

TEST(Layout, Q4_KMatchesGgmlDecoder) {
  auto blocks = random_blocks<lb::BlockQ4_K>(8, 21);
  std::mt19937 rng(22);
  for (auto& b : blocks) {
    b.d = random_scale(rng, 0.001f, 0.1f);
    b.dmin = random_scale(rng, 0.001f, 0.1f);
  }
  std::vector<float> y(8 * 256);
  lb::dequantize_row_q4_k(blocks.data(), y.data(), 8 * 256);
  for (int i = 0; i < 8; ++i) {
    const lb::BlockQ4_K& b = blocks[i];
    const float d = lb::fp16_to_fp32(b.d);
    const float min = lb::fp16_to_fp32(b.dmin);
    const uint8_t* q = b.qs;
    const float* out = y.data() + 256 * i;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
      uint8_t sc, m;
      ggml_style_scale_min_k4(is + 0, b.scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      ggml_style_scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) ASSERT_EQ(*out++, d1 * (q[l] & 0xF) - m1);
      for (int l = 0; l < 32; ++l) ASSERT_EQ(*out++, d2 * (q[l] >> 4) - m2);
      q += 32;
      is += 2;
    }
  }
}

TEST(Layout, Q6_KMatchesGgmlDecoder) {
  auto blocks = random_blocks<lb::BlockQ6_K>(8, 31);
  std::mt19937 rng(32);
  for (auto& b : blocks) b.d = random_scale(rng, 0.0001f, 0.01f);
  std::vector<float> y(8 * 256);
  lb::dequantize_row_q6_k(blocks.data(), y.data(), 8 * 256);
  for (int i = 0; i < 8; ++i) {
    const lb::BlockQ6_K& b = blocks[i];
    const float d = lb::fp16_to_fp32(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    const float* out = y.data() + 256 * i;
    for (int n = 0; n < 256; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int8_t q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        ASSERT_EQ(out[l + 0], d * sc[is + 0] * q1);
        ASSERT_EQ(out[l + 32], d * sc[is + 2] * q2);
        ASSERT_EQ(out[l + 64], d * sc[is + 4] * q3);
        ASSERT_EQ(out[l + 96], d * sc[is + 6] * q4);
      }
      out += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Weight quantizers: round trip through the scalar dequantizer.

struct RoundTrip {
  double rel_rms;      // rms(error) / rms(x)
  double worst_ratio;  // max over blocks of max|error| / (block's max|x|)
};

// Quantizes x with `quantize`, dequantizes with the type's scalar to_float; `block` is the span
// worst_ratio is measured over.

RoundTrip round_trip(GgmlType type, void (*quantize)(const float*, void*, int64_t),
                     const std::vector<float>& x, int64_t block) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(lb::row_bytes(type, n));
  quantize(x.data(), q.data(), n);
  std::vector<float> y(static_cast<size_t>(n));
  lb::kernels_for(type, SimdLevel::Scalar).to_float(q.data(), y.data(), n);
  double se = 0, sx = 0, worst = 0;
  for (int64_t b = 0; b < n / block; ++b) {
    double amax = 0, emax = 0;
    for (int64_t j = b * block; j < (b + 1) * block; ++j) {
      const double e = static_cast<double>(y[j]) - x[j];
      se += e * e;
      sx += static_cast<double>(x[j]) * x[j];
      amax = std::max(amax, std::fabs(static_cast<double>(x[j])));
      emax = std::max(emax, std::fabs(e));
    }
    if (amax > 0) worst = std::max(worst, emax / amax);
  }
  return {std::sqrt(se / sx), worst};
}

// Per block: |error| <= rounding error of q (half a step; a whole step where Q4_0 clips the
// element opposite its extreme) + |q| * (how far the stored fp16 scale is from the exact one).
TEST(WeightQuant, Q8_0) {
  for (int64_t n : {32, 96, 2048, 5632}) {
    const std::vector<float> x = test_data(n, 100 + n);
    std::vector<lb::BlockQ8_0> q(n / 32);
    lb::quantize_row_q8_0(x.data(), q.data(), n);
    std::vector<float> y(n);
    lb::dequantize_row_q8_0(q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const double step = amax / 127.0;
      const double bound =
          0.5 * step + 127 * std::fabs(lb::fp16_to_fp32(q[b].d) - step) + 1e-6 * amax;
      for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), bound);
    }
    EXPECT_LT(round_trip(GgmlType::Q8_0, lb::quantize_row_q8_0, x, 32).rel_rms, 0.02) << n;
  }
}

TEST(WeightQuant, Q4_0) {
  for (int64_t n : {32, 96, 2048, 5632}) {
    const std::vector<float> x = test_data(n, 200 + n);
    std::vector<lb::BlockQ4_0> q(n / 32);
    lb::quantize_row_q4_0_ref(x.data(), q.data(), n);
    std::vector<float> y(n);
    lb::dequantize_row_q4_0(q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const double step = amax / 8.0;
      const double bound =
          step + 8 * std::fabs(std::fabs(lb::fp16_to_fp32(q[b].d)) - step) + 1e-6 * amax;
      for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), bound);
    }
    EXPECT_LT(round_trip(GgmlType::Q4_0, lb::quantize_row_q4_0_ref, x, 32).rel_rms, 0.15) << n;
  }
}

TEST(WeightQuant, Q4_0MatchesGgmlReferenceQuantizer) {
  // Hand-checked block: max magnitude -4 -> d = 0.5, q = trunc(x/0.5 + 8.5) capped at 15.
  std::vector<float> x(32, 0.0f);
  x[0] = -4.0f;   // -8 -> q 0
  x[1] = 3.9f;    // 7.8 + 8.5 -> 16 -> capped 15
  x[2] = 0.25f;   // 0.5 + 8.5 = 9 -> 9
  x[3] = -0.25f;  // 8
  x[16] = 1.0f;   // 2 + 8.5 -> 10
  lb::BlockQ4_0 b;
  lb::quantize_row_q4_0_ref(x.data(), &b, 32);
  EXPECT_EQ(b.d, lb::fp32_to_fp16(0.5f));
  EXPECT_EQ(b.qs[0], 0x00 | (10 << 4));
  EXPECT_EQ(b.qs[1], 15 | (8 << 4));
  EXPECT_EQ(b.qs[2], 9 | (8 << 4));
  EXPECT_EQ(b.qs[3], 8 | (8 << 4));
}

TEST(WeightQuant, Q4_K) {
  for (int64_t n : {256, 512, 2048, 5632}) {
    const RoundTrip r =
        round_trip(GgmlType::Q4_K, lb::quantize_row_q4_k_ref, test_data(n, 300 + n), 256);
    // Errors relative to the super-block's largest magnitude (tiny sub-blocks next to large
    // ones lose precision to the shared 6-bit scale steps: that is the format).
    EXPECT_LT(r.rel_rms, 0.10) << n;
    EXPECT_LT(r.worst_ratio, 0.12) << n;
  }
  // A smooth ramp quantizes far better than random data.
  std::vector<float> ramp(256);
  for (int i = 0; i < 256; ++i) ramp[i] = 0.01f * i - 1.0f;
  EXPECT_LT(round_trip(GgmlType::Q4_K, lb::quantize_row_q4_k_ref, ramp, 256).rel_rms, 0.02);
}

TEST(WeightQuant, Q6_K) {
  for (int64_t n : {256, 512, 2048, 5632}) {
    const RoundTrip r =
        round_trip(GgmlType::Q6_K, lb::quantize_row_q6_k_ref, test_data(n, 400 + n), 256);
    EXPECT_LT(r.rel_rms, 0.03) << n;
    EXPECT_LT(r.worst_ratio, 0.03) << n;
  }
  std::vector<float> zeros(256, 0.0f);
  EXPECT_EQ(round_trip(GgmlType::Q6_K, lb::quantize_row_q6_k_ref, zeros, 256).worst_ratio, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Dot products: every level against the scalar reference, and the scalar reference against a
// double-precision dot of the dequantized rows.

struct DotCase {
  std::vector<uint8_t> w;
  std::vector<uint8_t> a;
  double exact;    // dot of dequantized weight and activation, in double
  double abs_sum;  // sum of |products|: the scale of rounding errors
};

DotCase make_case(GgmlType type, int64_t n, const std::vector<float>& wf,
                  void (*quantize_w)(const float*, void*, int64_t), uint32_t seed) {
  const lb::Kernels& k = lb::kernels_for(type, SimdLevel::Scalar);
  DotCase c;
  c.w.resize(lb::row_bytes(type, n));
  if (quantize_w) {
    quantize_w(wf.data(), c.w.data(), n);
  } else {
    std::memcpy(c.w.data(), wf.data(), c.w.size());
  }
  const std::vector<float> af = test_data(n, seed);
  c.a.resize(lb::row_bytes(k.act_type, n));
  k.act_from_float(af.data(), c.a.data(), n);
  std::vector<float> wd(static_cast<size_t>(n)), ad(static_cast<size_t>(n));
  k.to_float(c.w.data(), wd.data(), n);
  switch (k.act_type) {
    case GgmlType::F32:
      ad = af;
      break;
    case GgmlType::F16:
      lb::to_float_f16(c.a.data(), ad.data(), n);
      break;
    case GgmlType::Q8_0:
      lb::dequantize_row_q8_0(c.a.data(), ad.data(), n);
      break;
    default:
      lb::dequantize_row_q8_k(c.a.data(), ad.data(), n);
      break;
  }
  c.exact = 0;
  c.abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(wd[i]) * ad[i];
    c.exact += p;
    c.abs_sum += std::fabs(p);
  }
  return c;
}

// The types whose dots follow one summation order at every level: ggml's (F32, F16, Q8_0) or
// layerbus's own (Q4_0, see q4_0.hpp). Every level must give the scalar reference's bits (so AVX2
// and AVX-512 machines agree bit for bit). The others only agree within rounding.
bool level_exact(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::Q8_0 ||
         type == GgmlType::Q4_0;
}

void check_dot_fn(GgmlType type, const DotCase& c, int64_t n, lb::VecDotFn lb::Kernels::*fn,
                  const char* what) {
  const float ref = (lb::kernels_for(type, SimdLevel::Scalar).*fn)(n, c.w.data(), c.a.data());
  EXPECT_NEAR(ref, c.exact, 1e-5 * c.abs_sum + 1e-30)
      << lb::type_name(type) << " " << what << " n=" << n << ": scalar vs dequantized float dot";
  for (SimdLevel level : all_levels()) {
    if (level > lb::detected_simd()) continue;
    const auto dot = lb::kernels_for(type, level).*fn;
    const float got = dot(n, c.w.data(), c.a.data());
    if (level_exact(type)) {
      EXPECT_EQ(bits_of(got), bits_of(ref))
          << lb::type_name(type) << " " << what << " n=" << n << " at " << lb::simd_name(level)
          << ": " << got << " vs scalar " << ref;
    } else {
      EXPECT_NEAR(got, ref, 1e-5 * c.abs_sum + 1e-30)
          << lb::type_name(type) << " " << what << " n=" << n << " at " << lb::simd_name(level);
    }
    EXPECT_EQ(bits_of(got), bits_of(dot(n, c.w.data(), c.a.data()))) << "not deterministic";
  }
}

void check_dots(GgmlType type, const DotCase& c, int64_t n) {
  check_dot_fn(type, c, n, &lb::Kernels::vec_dot, "vec_dot");
  if (lb::kernels_for(type, SimdLevel::Scalar).gemm_dot && n % lb::kGemmCols == 0) {
    check_dot_fn(type, c, n, &lb::Kernels::gemm_dot, "gemm_dot");
  }
}

class DotTest : public ::testing::TestWithParam<SimdLevel> {};

TEST_P(DotTest, LevelAvailable) {
  const SimdLevel level = GetParam();
  if (level > lb::detected_simd()) {
    GTEST_SKIP() << lb::simd_name(level) << " kernels not tested: this CPU (or LAYERBUS_SIMD) "
                 << "tops out at " << lb::simd_name(lb::detected_simd());
  }
  // The level really is distinct: its table entry is the one asked for.
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K,
                     GgmlType::Q6_K}) {
    if (level != SimdLevel::Scalar) {
      EXPECT_NE(lb::kernels_for(t, level).vec_dot, lb::kernels_for(t, SimdLevel::Scalar).vec_dot);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, DotTest,
                         ::testing::Values(SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512),
                         [](const auto& info) { return std::string(lb::simd_name(info.param)); });

TEST(Dot, F32) {
  for (int64_t n : {1, 7, 15, 16, 33, 64, 100, 172, 2048, 5633}) {
    const std::vector<float> w = test_data(n, 500 + n);
    check_dots(GgmlType::F32, make_case(GgmlType::F32, n, w, nullptr, 600 + n), n);
  }
}

TEST(Dot, F16) {
  for (int64_t n : {1, 7, 15, 16, 33, 64, 100, 128, 2048, 5633}) {
    const std::vector<float> w = test_data(n, 700 + n);
    check_dots(GgmlType::F16, make_case(GgmlType::F16, n, w, lb::from_float_f16, 800 + n), n);
  }
}

TEST(Dot, Q8_0) {
  for (int64_t n : {32, 64, 96, 160, 2048, 5632}) {
    const std::vector<float> w = test_data(n, 900 + n);
    check_dots(GgmlType::Q8_0, make_case(GgmlType::Q8_0, n, w, lb::quantize_row_q8_0, 1000 + n), n);
  }
}

TEST(Dot, Q4_0) {
  for (int64_t n : {32, 64, 96, 160, 256, 288, 352, 2048, 5632}) {
    const std::vector<float> w = test_data(n, 1100 + n);
    check_dots(GgmlType::Q4_0, make_case(GgmlType::Q4_0, n, w, lb::quantize_row_q4_0_ref, 1200 + n),
               n);
  }
}

TEST(Dot, Q4_K) {
  for (int64_t n : {256, 512, 2048, 5632}) {
    const std::vector<float> w = test_data(n, 1300 + n);
    check_dots(GgmlType::Q4_K, make_case(GgmlType::Q4_K, n, w, lb::quantize_row_q4_k_ref, 1400 + n),
               n);
  }
}

TEST(Dot, Q6_K) {
  for (int64_t n : {256, 512, 2048, 5632}) {
    const std::vector<float> w = test_data(n, 1500 + n);
    check_dots(GgmlType::Q6_K, make_case(GgmlType::Q6_K, n, w, lb::quantize_row_q6_k_ref, 1600 + n),
               n);
  }
}

// Raw random weight bytes (every nibble/6-bit/scale pattern, incl. -128 in Q8_0 and extreme
// scales) against activations at the edges of their range: no saturation in any variant.
TEST(Dot, ExtremeBlocks) {
  const int64_t n = 2048;
  std::mt19937 rng(77);
  std::vector<float> af(n);
  for (int64_t i = 0; i < n; ++i) af[i] = (i % 3 == 0) ? 1.0f : (i % 3 == 1 ? -1.0f : 0.3f);
  auto run = [&](GgmlType type, std::vector<uint8_t> w) {
    const lb::Kernels& k = lb::kernels_for(type, SimdLevel::Scalar);
    DotCase c;
    c.w = std::move(w);
    c.a.resize(lb::row_bytes(k.act_type, n));
    k.act_from_float(af.data(), c.a.data(), n);
    std::vector<float> wd(n), ad(n);
    k.to_float(c.w.data(), wd.data(), n);
    if (k.act_type == GgmlType::Q8_0) {
      lb::dequantize_row_q8_0(c.a.data(), ad.data(), n);
    } else {
      lb::dequantize_row_q8_k(c.a.data(), ad.data(), n);
    }
    c.exact = 0;
    c.abs_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      c.exact += static_cast<double>(wd[i]) * ad[i];
      c.abs_sum += std::fabs(static_cast<double>(wd[i]) * ad[i]);
    }
    check_dots(type, c, n);
  };
  {
    auto b = random_blocks<lb::BlockQ8_0>(n / 32, 78);
    for (auto& blk : b) {
      blk.d = random_scale(rng, 0.01f, 1.0f);
      blk.qs[0] = -128;
      blk.qs[1] = 127;
    }
    std::vector<uint8_t> w(reinterpret_cast<uint8_t*>(b.data()),
                           reinterpret_cast<uint8_t*>(b.data() + b.size()));
    run(GgmlType::Q8_0, w);
  }
  {
    auto b = random_blocks<lb::BlockQ4_0>(n / 32, 79);
    for (auto& blk : b) blk.d = random_scale(rng, 0.01f, 1.0f);
    std::vector<uint8_t> w(reinterpret_cast<uint8_t*>(b.data()),
                           reinterpret_cast<uint8_t*>(b.data() + b.size()));
    run(GgmlType::Q4_0, w);
  }
  {
    auto b = random_blocks<lb::BlockQ4_K>(n / 256, 80);
    for (auto& blk : b) {
      blk.d = random_scale(rng, 0.001f, 0.1f);
      blk.dmin = random_scale(rng, 0.001f, 0.1f);
      std::memset(blk.qs, 0xff, 32);  // all-15 nibbles next to a +-127 activation run
      std::memset(blk.scales, 0xff, 12);
    }
    std::vector<uint8_t> w(reinterpret_cast<uint8_t*>(b.data()),
                           reinterpret_cast<uint8_t*>(b.data() + b.size()));
    run(GgmlType::Q4_K, w);
  }
  {
    auto b = random_blocks<lb::BlockQ6_K>(n / 256, 81);
    for (auto& blk : b) {
      blk.d = random_scale(rng, 0.0001f, 0.01f);
      std::memset(blk.ql, 0xff, 64);  // q = 63 for a whole half
      std::memset(blk.qh, 0xff, 32);
      blk.scales[0] = -128;
      blk.scales[1] = 127;
    }
    std::vector<uint8_t> w(reinterpret_cast<uint8_t*>(b.data()),
                           reinterpret_cast<uint8_t*>(b.data() + b.size()));
    run(GgmlType::Q6_K, w);
  }
}

// The summation orders themselves, on inputs where they give different floats: ggml's dot keeps
// four sixteen-lane sums and folds them, llamafile's GEMM one; a float-by-float sum, or a double
// one, gives neither.
TEST(Dot, GgmlOrders) {
  const int64_t n = 172;  // 128 in the SIMD loop, then chunks of 16, 16, 8 and 4 fused
  const std::vector<float> x = test_data(n, 41);
  const std::vector<float> y = test_data(n, 42);
  float acc[4][16] = {};
  for (int64_t i = 0; i < 128; i += 64) {
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 16; ++l) {
        acc[j][l] = std::fma(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
      }
    }
  }
  float lanes[16];
  for (int l = 0; l < 16; ++l) lanes[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
  float want = lb::fold16(lanes);
  for (int64_t i = 128; i < 168; ++i) {
    const volatile float p = x[i] * y[i];  // rounded, then added
    want = want + p;
  }
  for (int64_t i = 168; i < n; ++i) want = std::fma(x[i], y[i], want);
  EXPECT_EQ(bits_of(lb::vec_dot_f32(n, x.data(), y.data())), bits_of(want));

  float g[16] = {};
  for (int64_t i = 0; i < 160; i += 16) {
    for (int l = 0; l < 16; ++l) g[l] = std::fma(x[i + l], y[i + l], g[l]);
  }
  EXPECT_EQ(bits_of(lb::gemm_dot_f32(160, x.data(), y.data())), bits_of(lb::fold16(g)));
}

TEST(Dot, Q8_0GgmlOrder) {
  const int64_t n = 96;
  const std::vector<float> wf = test_data(n, 43), af = test_data(n, 44);
  std::vector<lb::BlockQ8_0> w(n / 32), a(n / 32);
  lb::quantize_row_q8_0(wf.data(), w.data(), n);
  lb::quantize_row_q8_0(af.data(), a.data(), n);
  float acc[8] = {};
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = lb::fp16_to_fp32(w[size_t(b)].d) * lb::fp16_to_fp32(a[size_t(b)].d);
    for (int l = 0; l < 8; ++l) {
      int isum = 0;
      for (int j = 4 * l; j < 4 * l + 4; ++j) isum += w[size_t(b)].qs[j] * a[size_t(b)].qs[j];
      acc[l] = std::fma(d, float(isum), acc[l]);
    }
  }
  const float want =
      ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
  for (SimdLevel level : all_levels()) {
    if (level > lb::detected_simd()) continue;
    EXPECT_EQ(bits_of(lb::kernels_for(GgmlType::Q8_0, level).vec_dot(n, w.data(), a.data())),
              bits_of(want))
        << lb::simd_name(level);
  }
}

// Q4_0's own order (q4_0.hpp): one accumulator per block index mod 8, summed in a fixed tree;
// 11 blocks cover a whole group of eight and a partial one.
TEST(Dot, Q4_0Order) {
  const int64_t n = 352;
  const std::vector<float> wf = test_data(n, 45), af = test_data(n, 46);
  std::vector<lb::BlockQ4_0> w(n / 32);
  std::vector<lb::BlockQ8_0> a(n / 32);
  lb::quantize_row_q4_0_ref(wf.data(), w.data(), n);
  lb::quantize_row_q8_0(af.data(), a.data(), n);
  float acc[8] = {};
  for (size_t b = 0; b < w.size(); ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += ((w[b].qs[j] & 15) - 8) * a[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + 16];
    }
    const float d = lb::fp16_to_fp32(w[b].d) * lb::fp16_to_fp32(a[b].d);
    acc[b % 8] = std::fma(d, float(isum), acc[b % 8]);
  }
  const float want =
      ((acc[0] + acc[1]) + (acc[4] + acc[5])) + ((acc[2] + acc[3]) + (acc[6] + acc[7]));
  for (SimdLevel level : all_levels()) {
    if (level > lb::detected_simd()) continue;
    EXPECT_EQ(bits_of(lb::kernels_for(GgmlType::Q4_0, level).vec_dot(n, w.data(), a.data())),
              bits_of(want))
        << lb::simd_name(level);
  }
}

// An X8 layout (q4_0_x8.hpp, q4_k_x8.hpp) is its file type rearranged: the same values, the same
// bits at every level, and the file type's dot (Q4_0: bit for bit, its order being the same;
// Q4_K: within rounding, as Q4_K's own levels agree).
void check_x8(GgmlType file_type, GgmlType x8, void (*quantize_w)(const float*, void*, int64_t),
              void (*repack)(const void*, void*, int64_t), bool same_order) {
  for (int64_t n : {256, 512, 2048, 5632}) {
    const std::vector<float> wf = test_data(n, uint32_t(47 + n));
    const DotCase file = make_case(file_type, n, wf, quantize_w, uint32_t(48 + n));
    const lb::Kernels& kx = lb::kernels_for(x8, SimdLevel::Scalar);
    ASSERT_EQ(lb::row_bytes(x8, n), file.w.size());
    std::vector<uint8_t> w(file.w.size()), a(lb::row_bytes(kx.act_type, n));
    repack(file.w.data(), w.data(), n);
    const std::vector<float> af = test_data(n, uint32_t(48 + n));  // make_case's activations
    kx.act_from_float(af.data(), a.data(), n);

    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    lb::kernels_for(file_type, SimdLevel::Scalar).to_float(file.w.data(), want.data(), n);
    kx.to_float(w.data(), got.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits_of(got[i]), bits_of(want[i])) << n << " " << i;

    const float ref = kx.vec_dot(n, w.data(), a.data());
    const float file_ref =
        lb::kernels_for(file_type, SimdLevel::Scalar).vec_dot(n, file.w.data(), file.a.data());
    if (same_order) {
      EXPECT_EQ(bits_of(ref), bits_of(file_ref)) << lb::type_name(x8) << " n=" << n;
    } else {
      EXPECT_NEAR(ref, file_ref, 1e-5 * file.abs_sum) << lb::type_name(x8) << " n=" << n;
    }
    for (SimdLevel level : all_levels()) {
      if (level > lb::detected_simd()) continue;
      EXPECT_EQ(bits_of(lb::kernels_for(x8, level).vec_dot(n, w.data(), a.data())), bits_of(ref))
          << lb::type_name(x8) << " n=" << n << " " << lb::simd_name(level);
    }
  }
}

TEST(Dot, Q4_0X8IsQ4_0Rearranged) {
  check_x8(GgmlType::Q4_0, GgmlType::Q4_0_X8, lb::quantize_row_q4_0_ref, lb::repack_row_q4_0_x8,
           true);
}

TEST(Dot, Q4_KX8IsQ4_KRearranged) {
  check_x8(GgmlType::Q4_K, GgmlType::Q4_K_X8, lb::quantize_row_q4_k_ref, lb::repack_row_q4_k_x8,
           false);
}

// The X8 activation blocks are whole cache lines and matmul's activation rows start on one, so
// no 32-byte quant load of the kernels straddles two lines.
TEST(Dot, X8ActivationBlocksAreCacheLines) {
  EXPECT_EQ(lb::row_bytes(GgmlType::Q8_0_X8, 256) % lb::kCacheLine, 0u);
  EXPECT_EQ(lb::row_bytes(GgmlType::Q8_K_X8, 256) % lb::kCacheLine, 0u);
  EXPECT_EQ(offsetof(lb::BlockQ8_0x8, lo) % 32, 0u);
  EXPECT_EQ(offsetof(lb::BlockQ8_0x8, hi) % 32, 0u);
  EXPECT_EQ(offsetof(lb::BlockQ8_Kx8, lo) % 32, 0u);
  EXPECT_EQ(offsetof(lb::BlockQ8_Kx8, hi) % 32, 0u);
  for (size_t n : {1, 100, 5000, 300000}) {
    const lb::AlignedVector<uint8_t> v(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % lb::kCacheLine, 0u) << n << " bytes";
  }
}

// The rearranged layouts are the engine's own: no file may name them, and only Q4_0 rows of
// whole groups and Q4_K rows are rearranged, only where the AVX-512 kernels run.
TEST(Dot, Q4_0X8OnlyInMemory) {
  EXPECT_EQ(lb::type_info(static_cast<uint32_t>(GgmlType::Q4_0_X8)), nullptr);
  EXPECT_EQ(lb::type_info(static_cast<uint32_t>(GgmlType::Q8_0_X8)), nullptr);
  EXPECT_EQ(lb::type_info(static_cast<uint32_t>(GgmlType::Q4_K_X8)), nullptr);
  EXPECT_EQ(lb::type_info(static_cast<uint32_t>(GgmlType::Q8_K_X8)), nullptr);
  EXPECT_STREQ(lb::type_name(GgmlType::Q4_0_X8), "q4_0_x8");
  EXPECT_EQ(lb::repack_for(GgmlType::Q4_0, 2048, SimdLevel::Avx2).row, nullptr);
  EXPECT_EQ(lb::repack_for(GgmlType::Q4_0, 896, SimdLevel::Avx512).row, nullptr);
  EXPECT_EQ(lb::repack_for(GgmlType::Q8_0, 2048, SimdLevel::Avx512).row, nullptr);
  EXPECT_EQ(lb::repack_for(GgmlType::Q4_K, 2048, SimdLevel::Avx2).row, nullptr);
  const lb::Repack r = lb::repack_for(GgmlType::Q4_0, 2048, SimdLevel::Avx512);
  if (lb::detected_simd() == SimdLevel::Avx512) {
    EXPECT_EQ(r.layout, GgmlType::Q4_0_X8);
  } else {
    EXPECT_EQ(r.row, nullptr);
  }
}

// ggml_v_expf: within 2 ulp of expf over the range SwiGLU meets, and its edges.
TEST(Silu, VExpf) {
  for (float x = -87.0f; x <= 88.0f; x += 0.173f) {
    const float e = std::exp(x);
    EXPECT_NEAR(lb::ggml_v_expf(x), e, 2.5e-7f * e) << x;
  }
  EXPECT_EQ(lb::ggml_v_expf(0.0f), 1.0f);
  EXPECT_EQ(lb::ggml_v_expf(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(lb::ggml_v_expf(200.0f)));
  EXPECT_GT(lb::ggml_v_expf(-100.0f), 0.0f);  // subnormal, not flushed
}

// Every level gives the scalar reference's bits, on rows of every length (the polynomial for
// whole sixteens, expf for the rest) and on gates large enough to leave exp's normal range.
TEST(Silu, LevelsBitIdentical) {
  for (int64_t n : {1, 7, 16, 23, 172, 384, 1000}) {
    std::vector<float> g = test_data(n, 50 + uint32_t(n)), u = test_data(n, 60 + uint32_t(n));
    for (int64_t i = 0; i < n; ++i) g[size_t(i)] *= 40.0f;
    if (n > 20) {
      g[3] = 95.0f;   // e^-x subnormal
      g[5] = -95.0f;  // e^-x overflows: silu = -0
      g[9] = 0.0f;
      g[17] = -130.0f;
    }
    for (int64_t poly_end : {n & ~int64_t(15), n}) {
      std::vector<float> ref(static_cast<size_t>(n)), got(static_cast<size_t>(n));
      lb::swiglu_ref(g.data(), u.data(), ref.data(), n, poly_end);
      for (int64_t i = 0; i < n; ++i) {
        const float x = g[size_t(i)];
        const float e = i < poly_end ? lb::ggml_v_expf(-x) : std::exp(-x);
        EXPECT_EQ(bits_of(ref[size_t(i)]), bits_of((x / (1.0f + e)) * u[size_t(i)])) << i;
      }
      if (lb::detected_simd() >= SimdLevel::Avx2) {
        lb::swiglu_avx2(g.data(), u.data(), got.data(), n, poly_end);
        EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), size_t(n) * sizeof(float)))
            << "avx2 " << n;
      }
      if (lb::detected_simd() >= SimdLevel::Avx512) {
        lb::swiglu_avx512(g.data(), u.data(), got.data(), n, poly_end);
        EXPECT_EQ(0, std::memcmp(ref.data(), got.data(), size_t(n) * sizeof(float)))
            << "avx512 " << n;
      }
    }
  }
}

}  // namespace
