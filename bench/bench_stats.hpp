#pragma once
// Summaries of repeated measurements, shared by the benchmarks.
#include <algorithm>
#include <cmath>
#include <utility>
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

// A confidence interval for the median that assumes nothing about the values' distribution: the
// k-th smallest and the k-th largest of n values hold the true median between them unless at
// most k-1 of the n fall on one side of it, a Binomial(n, 1/2) tail. k is the largest with a
// coverage of at least `confidence`; too few values for that give the smallest and the largest.
// v must not be empty.
inline std::pair<double, double> median_interval(std::vector<double> v, double confidence) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  size_t k = 1;
  double p = std::pow(0.5, double(n));  // P(B = k - 1)
  double below = p;                     // P(B <= k - 1)
  while (k < n / 2) {
    p *= double(n - k + 1) / double(k);  // P(B = k)
    if (1 - 2 * (below + p) < confidence) break;
    below += p;
    ++k;
  }
  return {v[k - 1], v[n - k]};
}

}  // namespace lbbench
