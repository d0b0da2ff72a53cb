#pragma once
// Summaries of repeated measurements, shared by the benchmarks.
#include <algorithm>
#include <cmath>
#include <vector>

namespace lbbench {

// The middle value (the mean of the two middle ones for an even count); v must not be empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The geometric mean, the average that treats a ratio and its inverse alike; v must not be empty.
inline double geomean(const std::vector<double>& v) {
  double log_sum = 0;
  for (double x : v) log_sum += std::log(x);
  return std::exp(log_sum / double(v.size()));
}

}  // namespace lbbench
