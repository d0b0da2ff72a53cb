#pragma once
// The read bandwidth the benchmarks measure rooflines against: the fastest plain read of memory,
// the widest vector loads this CPU has (detected at run time, as the engine's kernels are) OR-ed
// together, with lines requested ahead as the kernels request them. glibc's memchr, used before,
// compares every byte and read 17-20% slower than this on Intel Emerald Rapids (2 threads: 27.5
// against 33 GB/s), which made every roofline fraction as much too high; the weight kernels beat
// it (Q8_0 decode at 104% of it).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "quant/kernels.hpp"
#include "quant/prefetch.hpp"

namespace lbbench {

namespace read_detail {

// Each reads [p, p + len) (len a multiple of 256, p 64-byte aligned) and returns the OR of its
// 64-bit words, so that no load can be left out.
__attribute__((target("avx512f"))) inline uint64_t or_avx512(const uint8_t* p, size_t len) {
  __m512i acc = _mm512_setzero_si512();
  for (size_t o = 0; o < len; o += 256) {
    lb::prefetch_block(p + o, 256);
    acc = _mm512_or_si512(acc, _mm512_load_si512(p + o));
    acc = _mm512_or_si512(acc, _mm512_load_si512(p + o + 64));
    acc = _mm512_or_si512(acc, _mm512_load_si512(p + o + 128));
    acc = _mm512_or_si512(acc, _mm512_load_si512(p + o + 192));
  }
  alignas(64) uint64_t w[8];
  _mm512_store_si512(w, acc);
  return w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
}

__attribute__((target("avx2"))) inline uint64_t or_avx2(const uint8_t* p, size_t len) {
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
  for (size_t o = 0; o < len; o += 256) {
    lb::prefetch_block(p + o, 256);
    for (size_t i = 0; i < 256; i += 64) {
      a = _mm256_or_si256(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + o + i)));
      b = _mm256_or_si256(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + o + i + 32)));
    }
  }
  alignas(32) uint64_t w[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w), _mm256_or_si256(a, b));
  return w[0] | w[1] | w[2] | w[3];
}

inline uint64_t or_scalar(const uint8_t* p, size_t len) {
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t acc = 0;
  for (size_t i = 0; i < len / 8; ++i) acc |= w[i];
  return acc;
}

}  // namespace read_detail

// The OR of the 64-bit words of [p, p + len): p 64-byte aligned, len a multiple of 256.
inline uint64_t read_or(const uint8_t* p, size_t len) {
  switch (lb::detected_simd()) {
    case lb::SimdLevel::Avx512:
      return read_detail::or_avx512(p, len);
    case lb::SimdLevel::Avx2:
      return read_detail::or_avx2(p, len);
    case lb::SimdLevel::Scalar:
      break;
  }
  return read_detail::or_scalar(p, len);
}

}  // namespace lbbench
