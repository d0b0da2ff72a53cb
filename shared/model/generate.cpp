#include "model/generate.hpp"

#include <chrono>

#include "util/error.hpp"

namespace lb {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

GenerateStats generate(RangeRunner& runner, const std::vector<int32_t>& prompt,
                       const GenerateOptions& opt, const std::function<bool(int32_t)>& is_end,
                       const std::function<bool(const GeneratedToken&)>& on_token) {
  if (prompt.empty()) throw Error("the prompt has no tokens");
  const ModelWeights& w = runner.weights();
  if (!w.has_embedding() || !w.has_head()) throw Error("local generation needs every layer");
  const int64_t n_vocab = w.hparams().n_vocab;

  validate(opt.sampling);
  std::vector<int32_t> history = prompt;
  GenerateStats stats;
  StepInput in;
  StepOutput out;
  for (size_t i = 0; i < prompt.size(); ++i) {
    in.seq.push_back(opt.seq);
    in.pos.push_back(int64_t(i));
    in.tokens.push_back(prompt[i]);
    in.want_logits.push_back(i + 1 == prompt.size());
  }
  auto t0 = std::chrono::steady_clock::now();
  struct EraseSeq {
    RangeRunner& r;
    uint64_t seq;
    ~EraseSeq() { r.kv().erase(seq); }
  } erase{runner, opt.seq};
  runner.step(in, out);
  stats.prompt_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();

  for (int64_t n = 0; n < opt.n_predict; ++n) {
    const float* logits = out.logits.data();
    GeneratedToken tok;
    tok.id = sample_token(logits, n_vocab, opt.sampling, history, uint64_t(n));
    Logprobs lp = logprobs(logits, n_vocab, tok.id, opt.top_logprobs);
    tok.logprob = lp.chosen;
    tok.top = std::move(lp.top);
    history.push_back(tok.id);
    const bool more = on_token(tok);
    if (!more || is_end(tok.id) || n + 1 == opt.n_predict) break;
    in.seq.assign(1, opt.seq);
    in.pos.assign(1, int64_t(history.size()) - 1);
    in.tokens.assign(1, tok.id);
    in.want_logits.assign(1, 1);
    runner.step(in, out);
    ++stats.decode_steps;
  }
  stats.decode_seconds = seconds_since(t0);
  return stats;
}

}  // namespace lb
