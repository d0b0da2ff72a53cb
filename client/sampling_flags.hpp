#pragma once
// The sampling flags `run` and `generate` share, with the same defaults (SamplingParams'), so
// the same seed gives the same text in one process and through the pipeline.
#include <CLI/CLI.hpp>

#include "sampling/sampler.hpp"

namespace lb::client {

inline void add_sampling_flags(CLI::App* cmd, SamplingParams& p) {
  cmd->add_option("--temp", p.temperature, "Temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", p.top_k, "Top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", p.top_p, "Top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", p.min_p, "Min-p (0 = off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", p.repeat_penalty, "Repetition penalty (1 = off)")
      ->capture_default_str();
  cmd->add_option("--seed", p.seed, "Seed for sampling")->capture_default_str();
}

}  // namespace lb::client
