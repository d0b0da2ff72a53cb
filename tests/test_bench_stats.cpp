// The benchmarks' summaries: what their reports (and the closing notes quoting them) rest on.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "../bench/bench_stats.hpp"

namespace {

// 1, 2, ..., n in a shuffled order: each value is its own rank.
std::vector<double> ranks(int n) {
  std::vector<double> v;
  for (int i = 1; i <= n; ++i) v.push_back(i);
  std::shuffle(v.begin(), v.end(), std::mt19937(uint32_t(n)));
  return v;
}

TEST(BenchStats, MedianAndGeomean) {
  EXPECT_DOUBLE_EQ(lbbench::median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(lbbench::median({4, 1, 3, 2}), 2.5);
  EXPECT_NEAR(lbbench::geomean({0.5, 2.0}), 1.0, 1e-12);
}

TEST(BenchStats, MedianIntervalTakesTheTabulatedRanks) {
  // The ranks of distribution-free 95% intervals for the median, from Binomial(n, 1/2) tails:
  // n = 9 -> (2, 8), covering 96.1%; 12 -> (3, 10), 96.1%; 24 -> (7, 18), 97.7%;
  // 40 -> (14, 27), 96.2%; 48 -> (17, 32), 97.1%. One rank further in would cover less than 95%
  // in each case.
  const std::pair<int, std::pair<double, double>> cases[] = {
      {9, {2, 8}}, {12, {3, 10}}, {24, {7, 18}}, {40, {14, 27}}, {48, {17, 32}}};
  for (const auto& [n, expected] : cases) {
    EXPECT_EQ(lbbench::median_interval(ranks(n), 0.95), expected) << n << " values";
  }
}

TEST(BenchStats, MedianIntervalOfTooFewValuesIsTheirRange) {
  // Five values cover the median with at most 1 - 2/32 = 94%: no narrower interval reaches 95%.
  EXPECT_EQ(lbbench::median_interval(ranks(5), 0.95), std::make_pair(1.0, 5.0));
  EXPECT_EQ(lbbench::median_interval({7}, 0.95), std::make_pair(7.0, 7.0));
}

TEST(BenchStats, MedianIntervalNarrowsAsConfidenceDrops) {
  // n = 24 at 90%: ranks (8, 17), coverage 93.6%; (9, 16) would cover only 84.9%.
  EXPECT_EQ(lbbench::median_interval(ranks(24), 0.90), std::make_pair(8.0, 17.0));
}

}  // namespace
