#pragma once
// IEEE half precision <-> single precision, scalar and exact: fp32_to_fp16 rounds to nearest, ties
// to even, and gives the same bits as the F16C instruction (_cvtss_sh(x, 0)) for every float,
// including subnormals, overflow to infinity and NaNs (quietened, top payload bits kept).
// fp16_to_fp32 is exact (every half is a float) and quietens signalling NaNs as F16C does.
#include <cstdint>
#include <cstring>

namespace lb {

using Half = uint16_t;  // the bits of an IEEE binary16 value, as stored in ggml blocks

inline float fp16_to_fp32(Half h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: mant * 2^-24, normalised so the leading one becomes the implicit bit.
    int shift = 0;
    uint32_t m = mant;
    while (!(m & 0x400u)) {
      m <<= 1;
      ++shift;
    }
    bits = sign | ((113u - static_cast<uint32_t>(shift)) << 23) | ((m & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline Half fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {  // infinity or NaN
    if (x == 0x7f800000u) return static_cast<Half>(sign | 0x7c00u);
    return static_cast<Half>(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
  }
  if (x >= 0x477ff000u) return static_cast<Half>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (x >= 0x38800000u) {                                          // normal half
    uint32_t r = x - 0x38000000u;                                  // rebias exponent 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);                                // round to nearest even
    return static_cast<Half>(sign | (r >> 13));
  }
  if (x <= 0x33000000u) return static_cast<Half>(sign);  // <= 2^-25: ties to even give zero
  // Subnormal half: value in units of 2^-24 is m >> (126 - e), rounded to nearest even.
  const uint32_t e = x >> 23;
  const uint32_t m = (x & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u))) ++h;
  return static_cast<Half>(sign | h);
}

// Row converters (scalar reference; f16_avx2.cpp has F16C versions giving the same bits).
void fp16_to_fp32_row(const Half* src, float* dst, int64_t n);
void fp32_to_fp16_row(const float* src, Half* dst, int64_t n);
void fp16_to_fp32_row_f16c(const Half* src, float* dst, int64_t n);  // needs F16C (Avx2 level)
void fp32_to_fp16_row_f16c(const float* src, Half* dst, int64_t n);  // needs F16C (Avx2 level)

}  // namespace lb
