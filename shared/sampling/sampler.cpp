#include "sampling/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <vector>

#include "compute/expf.hpp"
#include "util/error.hpp"

namespace lb {

void validate(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    throw Error("temperature must be >= 0");
  if (p.top_k < 0) throw Error("top-k must be >= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) throw Error("top-p must be in (0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) throw Error("min-p must be in [0, 1]");
  if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
    throw Error("repeat penalty must be > 0");
  if (p.repeat_last_n < 0) throw Error("repeat-last-n must be >= 0");
}

namespace {

// The largest logit. Eight running maxima (max is exact in any order) let the compiler keep them
// in one vector register; std::max_element's single chain runs a compare at a time.
float max_logit(const float* logits, int64_t n) {
  float m[8];
  for (float& x : m) x = logits[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) m[l] = logits[i + l] > m[l] ? logits[i + l] : m[l];
  }
  for (; i < n; ++i) m[0] = logits[i] > m[0] ? logits[i] : m[0];
  return *std::max_element(m, m + 8);
}

// expf (not exp in double, and eight at a time: expf_row) of differences computed in float,
// summed in double in four chains: a relative error of about 1e-7 in the log-probability, in a
// fraction of the time for a 32000-token vocabulary.
double log_sum_exp(const float* logits, int64_t n) {
  const float mx = max_logit(logits, n);
  thread_local std::vector<float> e;
  e.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) e[size_t(i)] = logits[i] - mx;
  expf_row(e.data(), e.data(), n);
  double sum[4] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int l = 0; l < 4; ++l) sum[l] += double(e[size_t(i + l)]);
  }
  for (; i < n; ++i) sum[0] += double(e[size_t(i)]);
  return double(mx) + std::log((sum[0] + sum[1]) + (sum[2] + sum[3]));
}

// splitmix64's finaliser: a fixed bijection that scatters nearby inputs.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The first index of the largest logit (std::max_element's answer, in two vectorisable passes).
int32_t argmax(const float* logits, int64_t n) {
  const float m = max_logit(logits, n);
  for (int64_t i = 0; i < n; ++i) {
    if (logits[i] == m) return int32_t(i);
  }
  return 0;  // NaN logits: nothing compares equal
}

}  // namespace

Logprobs logprobs(const float* logits, int64_t n_vocab, int32_t id, int k) {
  const double lse = log_sum_exp(logits, n_vocab);
  Logprobs out;
  out.chosen = float(double(logits[id]) - lse);
  if (k <= 0) return out;
  std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
  std::iota(ids.begin(), ids.end(), 0);
  k = int(std::min<int64_t>(k, n_vocab));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < k; ++i)
    out.top.push_back({ids[size_t(i)], float(double(logits[ids[size_t(i)]]) - lse)});
  return out;
}

int32_t sample_token(const float* logits, int64_t n_vocab, const SamplingParams& p,
                     const std::vector<int32_t>& history, uint64_t draw) {
  if (p.temperature == 0.0f && p.repeat_penalty == 1.0f) return argmax(logits, n_vocab);

  struct Cand {
    int32_t id;
    float logit;
  };
  std::vector<Cand> c(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) c[size_t(i)] = {int32_t(i), logits[i]};

  if (p.repeat_penalty != 1.0f && p.repeat_last_n > 0) {
    std::unordered_set<int32_t> recent;
    const size_t from =
        history.size() > size_t(p.repeat_last_n) ? history.size() - size_t(p.repeat_last_n) : 0;
    for (size_t i = from; i < history.size(); ++i) recent.insert(history[i]);
    for (int32_t id : recent) {
      if (id < 0 || id >= n_vocab) continue;
      float& l = c[size_t(id)].logit;
      l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
    }
  }
  auto by_logit = [](const Cand& a, const Cand& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  if (p.temperature == 0.0f) return std::min_element(c.begin(), c.end(), by_logit)->id;

  std::sort(c.begin(), c.end(), by_logit);
  if (p.top_k > 0 && size_t(p.top_k) < c.size()) c.resize(size_t(p.top_k));

  auto softmax = [](const std::vector<Cand>& v, float temp) {
    std::vector<double> probs(v.size());
    double sum = 0.0;
    for (size_t i = 0; i < v.size(); ++i)
      sum += probs[i] = std::exp(double(v[i].logit - v[0].logit) / temp);
    for (double& x : probs) x /= sum;
    return probs;
  };
  if (p.top_p < 1.0f) {
    const std::vector<double> probs = softmax(c, 1.0f);
    double cum = 0.0;
    size_t keep = c.size();
    for (size_t i = 0; i < probs.size(); ++i) {
      cum += probs[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    c.resize(keep);
  }
  if (p.min_p > 0.0f) {
    const float min_logit = c[0].logit + std::log(p.min_p);
    size_t keep = 1;
    while (keep < c.size() && c[keep].logit >= min_logit) ++keep;
    c.resize(keep);
  }
  const std::vector<double> probs = softmax(c, p.temperature);
  // 53 random bits -> uniform double in [0, 1).
  const double u = double(mix64(p.seed ^ mix64(draw + 1)) >> 11) * (1.0 / 9007199254740992.0);
  double cum = 0.0;
  for (size_t i = 0; i < probs.size(); ++i) {
    cum += probs[i];
    if (u < cum) return c[i].id;
  }
  return c.back().id;
}

}  // namespace lb
