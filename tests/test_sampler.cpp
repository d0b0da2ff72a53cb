// The sampler on hand-made logits: greedy picks, log-probabilities against a double-precision
// reference, each filter's effect, and draws that depend only on (seed, draw index).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "sampling/sampler.hpp"
#include "test_support.hpp"
#include "util/error.hpp"

namespace {

std::vector<float> random_logits(int64_t n, uint32_t seed) {
  return lbtest::random_floats(n, seed, 3.0f);
}

lb::SamplingParams greedy() {
  return lb::SamplingParams{};
}

TEST(Sampler, GreedyTakesTheFirstLargestLogit) {
  std::vector<float> l = random_logits(32003, 1);  // not a multiple of the vector widths
  l[32001] = 100.0f;
  EXPECT_EQ(lb::sample_token(l.data(), int64_t(l.size()), greedy(), {}, 0), 32001);
  l[7] = 100.0f;  // a tie: the first one wins, as std::max_element
  EXPECT_EQ(lb::sample_token(l.data(), int64_t(l.size()), greedy(), {}, 0), 7);
  const std::vector<float> one = {-3.0f};
  EXPECT_EQ(lb::sample_token(one.data(), 1, greedy(), {}, 0), 0);
}

TEST(Sampler, LogprobsMatchADoublePrecisionSoftmax) {
  const std::vector<float> l = random_logits(32000, 2);
  double mx = l[0];
  for (float x : l) mx = std::max(mx, double(x));
  double sum = 0.0;
  for (float x : l) sum += std::exp(double(x) - mx);
  const double lse = mx + std::log(sum);
  for (int32_t id : {0, 17, 31999}) {
    const lb::Logprobs lp = lb::logprobs(l.data(), 32000, id, 0);
    EXPECT_NEAR(lp.chosen, double(l[size_t(id)]) - lse, 1e-5);
    EXPECT_TRUE(lp.top.empty());
  }
  const std::vector<lb::TokenLogprob> top = lb::logprobs(l.data(), 32000, 17, 5).top;
  ASSERT_EQ(top.size(), 5u);
  for (size_t i = 0; i < top.size(); ++i) {
    EXPECT_NEAR(top[i].logprob, double(l[size_t(top[i].id)]) - lse, 1e-5);
    if (i > 0) {
      EXPECT_GE(top[i - 1].logprob, top[i].logprob);
    }
  }
  EXPECT_EQ(top[0].id, lb::sample_token(l.data(), 32000, greedy(), {}, 0));
}

TEST(Sampler, RepetitionPenaltyCanChangeTheGreedyPick) {
  const std::vector<float> l = {1.0f, 4.0f, 3.9f, -2.0f};
  lb::SamplingParams p = greedy();
  p.repeat_penalty = 1.1f;
  EXPECT_EQ(lb::sample_token(l.data(), 4, p, {1}, 0), 2);  // 4 / 1.1 < 3.9
  EXPECT_EQ(lb::sample_token(l.data(), 4, p, {3}, 0), 1);  // a penalised token that was not top
  p.repeat_last_n = 1;
  EXPECT_EQ(lb::sample_token(l.data(), 4, p, {1, 3}, 0), 1);  // token 1 is outside the window
}

TEST(Sampler, DrawsDependOnlyOnSeedAndIndex) {
  const std::vector<float> l = random_logits(1000, 3);
  lb::SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  std::vector<int32_t> first;
  for (uint64_t d = 0; d < 50; ++d) first.push_back(lb::sample_token(l.data(), 1000, p, {}, d));
  for (uint64_t d = 0; d < 50; ++d) {
    EXPECT_EQ(lb::sample_token(l.data(), 1000, p, {}, d), first[size_t(d)]) << d;
  }
  EXPECT_GT(std::set<int32_t>(first.begin(), first.end()).size(), 5u) << "draws should vary";
  p.seed = 43;
  int same = 0;
  for (uint64_t d = 0; d < 50; ++d) same += lb::sample_token(l.data(), 1000, p, {}, d) == first[d];
  EXPECT_LT(same, 50);
}

TEST(Sampler, FiltersKeepOnlyWhatTheyAllow) {
  // Logits 0, -1, -2, ...: token i has weight e^-i before the filters.
  std::vector<float> l(100);
  for (size_t i = 0; i < l.size(); ++i) l[i] = -float(i);
  lb::SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  const auto drawn = [&](const lb::SamplingParams& q) {
    std::set<int32_t> ids;
    for (uint64_t d = 0; d < 400; ++d) ids.insert(lb::sample_token(l.data(), 100, q, {}, d));
    return ids;
  };
  p.top_k = 3;
  EXPECT_EQ(drawn(p), (std::set<int32_t>{0, 1, 2}));
  p.top_k = 0;
  p.min_p = 0.3f;  // keeps logits >= 0 + ln 0.3 = -1.2: tokens 0 and 1
  EXPECT_EQ(drawn(p), (std::set<int32_t>{0, 1}));
  p.min_p = 0.0f;
  p.top_p = 0.5f;  // e^0 / sum(e^-i) = 0.63 >= 0.5: token 0 alone
  EXPECT_EQ(drawn(p), (std::set<int32_t>{0}));
  p.top_p = 1.0f;
  p.temperature = 0.05f;  // a cold draw: token 1 has weight e^-20 relative to token 0
  EXPECT_EQ(drawn(p), (std::set<int32_t>{0}));
}

TEST(Sampler, ValidateNamesTheBadParameter) {
  const auto message = [](const lb::SamplingParams& p) {
    try {
      lb::validate(p);
    } catch (const lb::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  lb::SamplingParams p;
  EXPECT_EQ(message(p), "");
  p.temperature = -1.0f;
  EXPECT_NE(message(p).find("temperature"), std::string::npos);
  p = {};
  p.top_k = -1;
  EXPECT_NE(message(p).find("top-k"), std::string::npos);
  p = {};
  p.top_p = 0.0f;
  EXPECT_NE(message(p).find("top-p"), std::string::npos);
  p = {};
  p.min_p = 2.0f;
  EXPECT_NE(message(p).find("min-p"), std::string::npos);
  p = {};
  p.repeat_penalty = NAN;
  EXPECT_NE(message(p).find("repeat penalty"), std::string::npos);
}

}  // namespace
