#pragma once
// Internal to shared/compute: the constants of glibc's expf (sysdeps/ieee754/flt-32/e_expf.c,
// e_exp2f_data.c) that expf_row_avx2 and expf_row_avx512 both compute with. Its steps, each one
// rounding as glibc's FMA build does:
//   kd = fma(32/ln2, x, 0x1.8p52)   (k = round(x·32/ln2) lands in kd's low bits)
//   r  = fma(32/ln2, x, -(kd - 0x1.8p52))
//   s  = 2^(k/32) as a double: table[k % 32] with k/32 added to its exponent bits
//   y  = fma(fma(C0, r, C1), r·r, fma(C2, r, 1)) · s, rounded to float
// Arguments glibc sends down its special-case path (|x| >= 88: the top 12 bits of |x| above
// kSpecialTop; infinities, NaN) go to std::exp one by one.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace lb::expf_glibc {

inline constexpr int kTableBits = 5;

// 2^(i/32) minus i/32 in the exponent field, so that adding k << (52 - 5) gives 2^(k/32).
alignas(64) inline constexpr uint64_t kTable[1 << kTableBits] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};

inline constexpr uint64_t kInvLn2Scaled = 0x40471547652b82fe;  // 32/ln2
inline constexpr uint64_t kShift = 0x4338000000000000;         // 0x1.8p52
inline constexpr uint64_t kC0 = 0x3ebc6af84b912394;            // the cubic's coefficients, scaled
inline constexpr uint64_t kC1 = 0x3f2ebfce50fac4f3;
inline constexpr uint64_t kC2 = 0x3f962e42ff0c52d6;
inline constexpr int32_t kSpecialTop = 0x42a;

// A row through a vector variant's block of Lanes arguments: block(x, e) writes e[0, Lanes) and
// returns the mask of lanes glibc treats as special, which get std::exp here. The tail runs as a
// zero-padded block. y may be x: a block's results reach y only after its arguments are read.
template <int Lanes, class Block>
void row_in_blocks(const float* x, float* y, int64_t n, Block block) {
  alignas(64) float e[Lanes];
  const auto finish = [&](const float* args, uint32_t special) {
    if (special == 0) return;  // glibc's fast path for every lane: the usual case
    for (int l = 0; l < Lanes; ++l) {
      if (special >> l & 1) e[l] = std::exp(args[l]);
    }
  };
  int64_t i = 0;
  for (; i + Lanes <= n; i += Lanes) {
    finish(x + i, block(x + i, e));
    std::memcpy(y + i, e, sizeof e);
  }
  if (i < n) {
    alignas(64) float tail[Lanes] = {};
    std::memcpy(tail, x + i, size_t(n - i) * sizeof(float));
    finish(tail, block(tail, e));
    std::memcpy(y + i, e, size_t(n - i) * sizeof(float));
  }
}

}  // namespace lb::expf_glibc
