#pragma once
// Software prefetch of weight streams in decode. The kernels read each weight once per token,
// from DRAM; the hardware prefetchers alone keep too few reads in flight, so the loops ask for
// lines ahead. These requests use the T1 hint (into L2): the non-temporal hint does not suit every
// CPU (on Intel Emerald Rapids it made a Q4_0 decode token take 1.8x the time it takes with T1,
// 42.9 against 24.3 ms; T0 and T2 took 24.2 and 25.6; on AMD Zen 5, T1 took 1.03x the time of
// NTA). The multi-row kernels' passes (x8_simd.hpp, q4_0_avx512.cpp) make their own requests.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "util/aligned.hpp"

namespace lb {

inline void prefetch_line(const void* p) {
  __builtin_prefetch(p, 0, 2);
}

// How far ahead of a single weight stream (one row after another) a loop asks for lines, a row
// at a time. Without it a Q4_0 decode token takes 1.07x the time on Zen 5 (fresh pairs of model
// copies; 16 KiB ahead makes no difference) and 1.5x on Emerald Rapids (2 threads, taken in turn
// in one process).
constexpr size_t kStreamPrefetchAhead = 8192;

// Asks for the lines of a weight stream [next, end) up to a point, each once.
struct StreamPrefetch {
  const uint8_t* next;
  const uint8_t* end;
  void upto(const uint8_t* to) {
    for (to = std::min(to, end); next < to; next += kCacheLine) prefetch_line(next);
  }
};

// How far ahead of each of its weight streams a kernel reading several at once (a kDotRows
// kernel: four rows apart) asks for lines, a block at a time, spread over its loop. On Emerald
// Rapids (2 threads, distances taken in turn in one process) a decode token took 0.80x the time
// for Q4_K (X8 layout, 864-1728 bytes ahead all alike) and 0.81x for Q8_0 (2176 and 4352 bytes:
// 0.89x and 0.86x). The same requests made in one burst per row, before the kernel, cost 5-45%
// instead (and on Zen 5, in the non-temporal version, Q4_K 7% and Q8_0 over 20%).
constexpr size_t kBlockPrefetchAhead = 1024;

// Asks for the lines of one stream's next `bytes` (one loop step), kBlockPrefetchAhead on.
inline void prefetch_block(const void* p, size_t bytes) {
  const char* ahead = static_cast<const char*>(p) + kBlockPrefetchAhead;
  for (size_t o = 0; o < bytes; o += kCacheLine) prefetch_line(ahead + o);
}

}  // namespace lb
