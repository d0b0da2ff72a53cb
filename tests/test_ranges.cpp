// Layer-range execution: one model run as one range must equal the same model run as 2, 3 and
// n_layers chained ranges, per position, bit for bit, for a batch mixing several sequences at
// several positions; and a sequence's logits must not depend on what it was batched with.
#include <cstring>
#include <memory>

#include "model/forward.hpp"
#include "quant/kernels.hpp"
#include "synth/synth.hpp"
#include "test_support.hpp"

namespace {

using lb::StepInput;
using lb::StepOutput;

// Three steps over three sequences: prompts of different lengths, a sequence joining late, then
// single-token decode steps, with logits wanted on every row.
std::vector<StepInput> mixed_steps(int64_t n_vocab) {
  auto tok = [&](int64_t i) { return int32_t((i * 7919 + 13) % n_vocab); };
  std::vector<StepInput> steps(3);
  auto add = [&](StepInput& s, uint64_t seq, int64_t pos, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      s.seq.push_back(seq);
      s.pos.push_back(pos + i);
      s.tokens.push_back(tok(int64_t(seq) * 100 + pos + i));
      s.want_logits.push_back(1);
    }
  };
  add(steps[0], 11, 0, 5);
  add(steps[0], 22, 0, 3);
  add(steps[1], 22, 3, 2);
  add(steps[1], 33, 0, 4);
  add(steps[1], 11, 5, 1);
  add(steps[2], 33, 4, 1);
  add(steps[2], 11, 6, 1);
  add(steps[2], 22, 5, 1);
  return steps;
}

// Runs the steps through chained ranges split at `cuts` and returns all logits, step by step.
std::vector<std::vector<float>> run_chain(const std::shared_ptr<lb::GgufFile>& file,
                                          const std::vector<int64_t>& bounds,
                                          const std::vector<StepInput>& steps,
                                          lb::WeightLayout layout = lb::WeightLayout::Fastest) {
  lb::ThreadPool pool(2);
  std::vector<std::unique_ptr<lb::ModelWeights>> weights;
  std::vector<std::unique_ptr<lb::RangeRunner>> runners;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    weights.push_back(std::make_unique<lb::ModelWeights>(
        file, bounds[i], bounds[i + 1], lb::WeightOptions{nullptr, layout, &pool}));
    runners.push_back(std::make_unique<lb::RangeRunner>(*weights.back(), pool, 64));
  }
  std::vector<std::vector<float>> logits;
  for (const StepInput& step : steps) {
    StepInput in = step;
    StepOutput out;
    for (size_t r = 0; r < runners.size(); ++r) {
      if (r > 0) {
        in.tokens.clear();
        in.hidden = out.hidden;
      }
      runners[r]->step(in, out);
    }
    logits.push_back(out.logits);
  }
  return logits;
}

std::vector<int64_t> even_bounds(int64_t n_layers, int64_t parts) {
  std::vector<int64_t> b;
  for (int64_t i = 0; i <= parts; ++i) b.push_back(i * n_layers / parts);
  return b;
}

void expect_bitwise_equal(const std::vector<std::vector<float>>& a,
                          const std::vector<std::vector<float>>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t s = 0; s < a.size(); ++s) {
    ASSERT_EQ(a[s].size(), b[s].size()) << what << " step " << s;
    ASSERT_FALSE(a[s].empty());
    EXPECT_EQ(0, std::memcmp(a[s].data(), b[s].data(), a[s].size() * sizeof(float)))
        << what << ": logits differ at step " << s;
  }
}

void check_chains(const std::string& path) {
  auto file = std::make_shared<lb::GgufFile>(path);
  const lb::HParams hp = lb::read_hparams(*file);
  const auto steps = mixed_steps(hp.n_vocab);
  const auto whole = run_chain(file, {0, hp.n_layers}, steps);
  for (int64_t parts : {int64_t(2), int64_t(3), hp.n_layers}) {
    if (parts > hp.n_layers) continue;
    expect_bitwise_equal(whole, run_chain(file, even_bounds(hp.n_layers, parts), steps),
                         path + " as " + std::to_string(parts) + " ranges");
  }
  // Each sequence alone, its rows of each step as one step of their own, gives the logits it got
  // inside the mixed batches. (A row's order of summation may depend on how many rows its own
  // sequence has in the step, as llama.cpp's does, but never on other sequences' rows.)
  lb::ThreadPool pool(1);
  lb::ModelWeights w(file, 0, hp.n_layers);
  lb::RangeRunner alone(w, pool, 64);
  for (size_t s = 0; s < steps.size(); ++s) {
    for (size_t row = 0; row < steps[s].rows();) {
      StepInput in;
      const size_t first = row;
      for (; row < steps[s].rows() && steps[s].seq[row] == steps[s].seq[first]; ++row) {
        in.seq.push_back(steps[s].seq[row]);
        in.pos.push_back(steps[s].pos[row]);
        in.tokens.push_back(steps[s].tokens[row]);
        in.want_logits.push_back(1);
      }
      StepOutput out;
      alone.step(in, out);
      ASSERT_EQ(0, std::memcmp(out.logits.data(), whole[s].data() + first * size_t(hp.n_vocab),
                               in.rows() * size_t(hp.n_vocab) * sizeof(float)))
          << path << ": sequence " << in.seq[0] << " positions " << in.pos[0] << ".."
          << in.pos.back() << " differ when run alone";
    }
  }
}

std::string synth(const lbtest::TempDir& dir, const std::string& arch, const std::string& type) {
  const lb::SynthSpec spec =
      lb::synth_spec(arch, 256, 4, 8, 2, 512, 512, lb::parse_type_name(type), 7);
  const std::string path = dir.file(arch + "-" + type + ".gguf");
  lb::write_synthetic_model(spec, path);
  return path;
}

}  // namespace

TEST(Ranges, RealModelsChainedEqualWhole) {
  LB_REQUIRE_SHARED(shared);
  check_chains(shared + "/models/stories260K.gguf");
  check_chains(shared + "/models/TinyStories-656K-Q8_0.gguf");
}

class SynthRanges : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(SynthRanges, ChainedEqualWhole) {
  lbtest::TempDir dir("ranges");
  check_chains(synth(dir, GetParam().first, GetParam().second));
}

INSTANTIATE_TEST_SUITE_P(
    ArchTypes, SynthRanges,
    ::testing::Values(std::make_pair("llama", "q4_0"), std::make_pair("llama", "q4_k"),
                      std::make_pair("llama", "f16"), std::make_pair("qwen2", "q8_0"),
                      std::make_pair("qwen2", "q4_k"), std::make_pair("qwen3", "q8_0"),
                      std::make_pair("qwen3", "q4_k")),
    [](const auto& info) { return info.param.first + "_" + info.param.second; });

TEST(Ranges, RejectsMalformedSteps) {
  lbtest::TempDir dir("ranges-bad");
  auto file = std::make_shared<lb::GgufFile>(synth(dir, "llama", "q8_0"));
  lb::ThreadPool pool(1);
  lb::ModelWeights first(file, 0, 2);
  lb::RangeRunner r(first, pool, 16);
  StepOutput out;
  StepInput bad_token{{1}, {0}, {512}, {}, {}, {}};
  EXPECT_THROW(r.step(bad_token, out), lb::Error);
  StepInput skips{{1}, {3}, {5}, {}, {}, {}};
  EXPECT_THROW(r.step(skips, out), lb::Error);
  StepInput gap{{1, 1}, {0, 2}, {5, 6}, {}, {}, {}};
  EXPECT_THROW(r.step(gap, out), lb::Error);
  StepInput split{{1, 2, 1}, {0, 0, 1}, {5, 6, 7}, {}, {}, {}};
  EXPECT_THROW(r.step(split, out), lb::Error);
  StepInput past_ctx{{1}, {16}, {5}, {}, {}, {}};
  EXPECT_THROW(r.step(past_ctx, out), lb::Error);
  lb::ModelWeights second(file, 2, 4);
  lb::RangeRunner r2(second, pool, 16);
  StepInput short_hidden{{1}, {0}, {}, std::vector<float>(100), {1}, {}};
  EXPECT_THROW(r2.step(short_hidden, out), lb::Error);
  EXPECT_THROW(lb::ModelWeights(file, 3, 5), lb::Error);
  EXPECT_THROW(lb::ModelWeights(file, 2, 2), lb::Error);
}

// Weights rearranged for the kernels (Q4_0 on AVX-512 machines) give the bits the file's layout
// gives, and a range built after another of the same file shares what that one rearranged.
TEST(Ranges, RearrangedWeightsGiveTheFileLayoutsBits) {
  lbtest::TempDir dir("ranges");
  auto file = std::make_shared<lb::GgufFile>(synth(dir, "llama", "q4_0"));
  const lb::HParams hp = lb::read_hparams(*file);
  const auto steps = mixed_steps(hp.n_vocab);
  expect_bitwise_equal(run_chain(file, {0, hp.n_layers}, steps, lb::WeightLayout::File),
                       run_chain(file, {0, 2, hp.n_layers}, steps), "rearranged vs as filed");

  lb::ModelWeights first(file, 0, 3);
  lb::ModelWeights second(file, 2, 4, {&first});
  const lb::Repack r = lb::repack_for(lb::GgmlType::Q4_0, hp.dim);
  EXPECT_EQ(first.layer(2).wq.type, r.layout);
  EXPECT_EQ(second.layer(3).w_down.type, r.layout);
  if (!r.row) GTEST_SKIP() << "no rearranged layout for Q4_0 on this CPU";
  EXPECT_EQ(second.layer(2).wq.data, first.layer(2).wq.data) << "rearranged again, not shared";
  EXPECT_NE(second.layer(3).wq.data, file->tensor("blk.3.attn_q.weight").data);
}
