// `layerbus run`: generate in one process and stream the text, or print one JSON object.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "compute/thread_pool.hpp"
#include "json_output.hpp"
#include "model/generate.hpp"
#include "sampling_flags.hpp"
#include "tokenizer/stream_decoder.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lb::client {

namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  int64_t n_predict = 128;
  SamplingParams sampling;
  int threads = 0;
  int64_t ctx = 0;
  int top_logprobs = 0;
  bool json = false;
};

void run(const RunArgs& a) {
  auto file = std::make_shared<GgufFile>(a.model);
  Tokenizer tok(*file);
  ThreadPool pool(a.threads > 0 ? a.threads : default_thread_count());
  ModelWeights weights(file, 0, read_hparams(*file).n_layers,
                       {nullptr, WeightLayout::Fastest, &pool});
  const HParams& hp = weights.hparams();
  const int64_t n_ctx = a.ctx > 0 ? a.ctx : hp.n_ctx_train;
  RangeRunner runner(weights, pool, n_ctx);

  const std::vector<int32_t> prompt = tok.encode(a.prompt, /*add_special=*/true);
  if (int64_t(prompt.size()) >= n_ctx) {
    throw Error("the prompt has " + std::to_string(prompt.size()) +
                " tokens, which leaves no room in the context of " + std::to_string(n_ctx));
  }
  GenerateOptions opt;
  opt.n_predict = std::min<int64_t>(a.n_predict, n_ctx - int64_t(prompt.size()));
  opt.sampling = a.sampling;
  opt.top_logprobs = a.top_logprobs;

  StreamDecoder stream(tok);
  GenerationReport report;
  report.prompt_tokens = prompt;
  report.stop_reason = "length";
  const GenerateStats stats = generate(
      runner, prompt, opt, [&](int32_t id) { return tok.is_end_of_generation(id); },
      [&](const GeneratedToken& t) {
        report.tokens.push_back(t.id);
        report.logprobs.push_back(t.logprob);
        if (a.top_logprobs > 0) {
          report.top.emplace_back();
          for (const TokenLogprob& alt : t.top) report.top.back().push_back({alt.id, alt.logprob});
        }
        if (tok.is_end_of_generation(t.id)) report.stop_reason = "eos";
        if (!a.json) std::cout << stream.push(t.id) << std::flush;
        return true;
      });
  if (!a.json) {
    std::cout << stream.flush() << std::endl;
    return;
  }
  report.text = tok.decode(report.tokens);
  report.prompt_seconds = stats.prompt_seconds;
  report.decode_seconds = stats.decode_seconds;
  report.decode_steps = stats.decode_steps;
  nlohmann::json j = to_json(report);
  j["threads"] = pool.size();
  std::cout << dump(j) << std::endl;
}

}  // namespace

void add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text with a model in this one process");
  cmd->add_option("--model", a->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--prompt", a->prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-predict", a->n_predict, "Tokens to generate")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 24));
  add_sampling_flags(cmd, a->sampling);
  cmd->add_option("--threads", a->threads, "Threads (default: the cores available)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--ctx", a->ctx, "Context length (default: the model's)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_option("--top-logprobs", a->top_logprobs, "With --json: alternatives per token")
      ->check(CLI::Range(0, 100));
  cmd->add_flag("--json", a->json, "Print one JSON object instead of streaming text");
  cmd->callback([a] {
    validate(a->sampling);
    run(*a);
  });
}

}  // namespace lb::client
