// The exactness contract: for every case llama.cpp's reference outputs hold, our prompt tokens,
// greedy tokens and top-5 log-probabilities match.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "model/generate.hpp"
#include "test_support.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

struct Golden {
  std::string model;
  double tolerance;
};

void check_golden(const std::string& shared, const Golden& g) {
  const std::string json_path =
      shared + "/models/golden/" + std::filesystem::path(g.model).stem().string() + ".json";
  std::ifstream in(json_path);
  ASSERT_TRUE(in) << "cannot read " << json_path;
  const nlohmann::json golden = nlohmann::json::parse(in);
  auto file = std::make_shared<lb::GgufFile>(shared + "/models/" + g.model);
  lb::Tokenizer tok(*file);
  lb::ModelWeights weights(file, 0, lb::read_hparams(*file).n_layers);
  lb::ThreadPool pool(2);
  lb::RangeRunner runner(weights, pool, 1024);

  ASSERT_FALSE(golden["cases"].empty());
  for (const auto& c : golden["cases"]) {
    const std::string prompt = c["prompt"];
    SCOPED_TRACE(g.model + " prompt '" + prompt + "'");
    const std::vector<int32_t> prompt_tokens = tok.encode(prompt, true);
    ASSERT_EQ(prompt_tokens, c["prompt_tokens"].get<std::vector<int32_t>>());

    lb::GenerateOptions opt;
    opt.n_predict = c["n_predict"];
    opt.top_logprobs = 5;
    std::vector<lb::GeneratedToken> got;
    lb::generate(
        runner, prompt_tokens, opt, [&](int32_t id) { return tok.is_end_of_generation(id); },
        [&](const lb::GeneratedToken& t) {
          got.push_back(t);
          return true;
        });
    std::vector<int32_t> ids;
    for (const auto& t : got) ids.push_back(t.id);
    const auto want = c["tokens"].get<std::vector<int32_t>>();
    ASSERT_EQ(ids, want);

    double worst = 0;
    const auto& top5 = c["top5_logprobs"];
    ASSERT_EQ(top5.size(), got.size());
    for (size_t pos = 0; pos < got.size(); ++pos) {
      for (const auto& alt : top5[pos]) {
        const int32_t id = alt["id"];
        const double want_lp = alt["logprob"];
        auto it = std::find_if(got[pos].top.begin(), got[pos].top.end(),
                               [&](const lb::TokenLogprob& t) { return t.id == id; });
        ASSERT_NE(it, got[pos].top.end())
            << "token " << id << " is in llama.cpp's top 5 at position " << pos << " but not ours";
        worst = std::max(worst, std::fabs(double(it->logprob) - want_lp));
        EXPECT_NEAR(it->logprob, want_lp, g.tolerance) << "position " << pos << " token " << id;
      }
    }
    std::printf("[golden] %s '%s': %zu tokens equal, worst top-5 logprob error %.2e\n",
                g.model.c_str(), prompt.c_str(), got.size(), worst);
  }
}

}  // namespace

TEST(Golden, Stories260K_F32) {
  LB_REQUIRE_SHARED(shared);
  check_golden(shared, {"stories260K.gguf", 1e-3});
}

TEST(Golden, TinyStories656K_Q8_0) {
  LB_REQUIRE_SHARED(shared);
  check_golden(shared, {"TinyStories-656K-Q8_0.gguf", 1e-2});
}
