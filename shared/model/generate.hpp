#pragma once
// Generation in one process: the prompt as one step, then one token per step, over a RangeRunner
// that holds every layer.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/forward.hpp"
#include "sampling/sampler.hpp"

namespace lb {

struct GenerateOptions {
  int64_t n_predict = 128;
  SamplingParams sampling;
  int top_logprobs = 0;  // how many alternatives to report per generated token
  uint64_t seq = 0;      // the sequence id in the runner's KV cache
};

struct GeneratedToken {
  int32_t id;
  float logprob;
  std::vector<TokenLogprob> top;
};

struct GenerateStats {
  double prompt_seconds = 0;
  double decode_seconds = 0;  // the single-token steps after the prompt
  int64_t decode_steps = 0;
};

// Calls on_token for each generated token as soon as it exists; stops after n_predict tokens,
// after an end-of-generation token (which is reported), or when on_token returns false.
// The sequence's cache is erased at the end.
GenerateStats generate(RangeRunner& runner, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<bool(int32_t)>& is_end,
                       const std::function<bool(const GeneratedToken&)>& on_token);

}  // namespace lb
