#pragma once
// Summaries of repeated measurements, shared by the benchmarks.
#include <algorithm>
#include <vector>

namespace lbbench {

// The middle value (the mean of the two middle ones for an even count); v must not be empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace lbbench
