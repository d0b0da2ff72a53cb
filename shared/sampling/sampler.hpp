#pragma once
// Picks the next token from logits. Greedy when temperature is 0; otherwise the llama.cpp order:
// repetition penalty, top-k, top-p, min-p, temperature, then a draw from a seeded generator whose
// arithmetic is fully specified here, so a seed repeats on every machine and build.
#include <cstdint>
#include <random>
#include <vector>

namespace lb {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int32_t top_k = 40;        // 0 = off
  float top_p = 0.95f;       // 1 = off
  float min_p = 0.05f;       // 0 = off
  float repeat_penalty = 1.0f;  // 1 = off
  int32_t repeat_last_n = 64;
  uint64_t seed = 0;
};

// Checks ranges; throws lb::Error naming the bad parameter.
void validate(const SamplingParams& p);

struct TokenLogprob {
  int32_t id;
  float logprob;  // natural log of the softmax over the raw logits
};

// Log-softmax of raw logits for one token id, and the k most likely ids with theirs.
float token_logprob(const float* logits, int64_t n_vocab, int32_t id);
std::vector<TokenLogprob> top_logprobs(const float* logits, int64_t n_vocab, int k);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // history: tokens so far (prompt and generated), for the repetition penalty.
  int32_t sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

}  // namespace lb
