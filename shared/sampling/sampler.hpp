#pragma once
// Picks the next token from logits. Greedy when temperature is 0; otherwise the llama.cpp order:
// repetition penalty, top-k, top-p, min-p, temperature, then a random draw. The draw depends only
// on (seed, draw index), not on generator state carried between tokens: whichever process samples
// a request's next token (the pipeline's last stage may change when layers move) draws the same.
#include <cstdint>
#include <vector>

namespace lb {

struct SamplingParams {
  float temperature = 0.0f;     // 0 = greedy
  int32_t top_k = 40;           // 0 = off
  float top_p = 0.95f;          // 1 = off
  float min_p = 0.05f;          // 0 = off
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

// Log-softmax of raw logits for the chosen id and, when k > 0, the k most likely ids with theirs
// (one log-sum-exp over the vocabulary serves both).
struct Logprobs {
  float chosen = 0.0f;
  std::vector<TokenLogprob> top;
};
Logprobs logprobs(const float* logits, int64_t n_vocab, int32_t id, int k);

// recent: the last tokens of the sequence (at least repeat_last_n of them when there are), for
// the repetition penalty; draw: the index of the token being sampled within its request.
int32_t sample_token(const float* logits, int64_t n_vocab, const SamplingParams& p,
                     const std::vector<int32_t>& recent, uint64_t draw);

}  // namespace lb
