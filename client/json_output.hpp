#pragma once
// The JSON object `layerbus run --json` and `layerbus generate --json` both print.
#include <nlohmann/json.hpp>
#include <vector>

namespace lb::client {

struct GenerationReport {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string text;
  double prompt_seconds = 0;
  double decode_seconds = 0;
  int64_t decode_steps = 0;
  std::string stop_reason;
  std::vector<std::vector<std::pair<int32_t, float>>> top;  // alternatives per token, when asked
};

// Generated text need not be valid UTF-8 (a model may emit a lone byte token): such bytes print
// as U+FFFD instead of failing the whole report.
inline std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline nlohmann::json to_json(const GenerationReport& r) {
  nlohmann::json j;
  j["prompt_tokens"] = r.prompt_tokens;
  j["tokens"] = r.tokens;
  j["logprobs"] = r.logprobs;
  j["text"] = r.text;
  j["stop_reason"] = r.stop_reason;
  if (!r.top.empty()) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& alts : r.top) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& [id, lp] : alts) a.push_back({{"id", id}, {"logprob", lp}});
      top.push_back(a);
    }
    j["top_logprobs"] = top;
  }
  j["prompt_tokens_per_second"] =
      r.prompt_seconds > 0 ? double(r.prompt_tokens.size()) / r.prompt_seconds : 0.0;
  j["tokens_per_second"] = r.decode_seconds > 0 ? double(r.decode_steps) / r.decode_seconds : 0.0;
  return j;
}

}  // namespace lb::client
