// Engine speed on a synthetic TinyLlama-1.1B-shaped model in Q8_0, Q4_0 and Q4_K with 2 threads:
// decode tokens/s, 128-token prompt tokens/s, and decode against the memory-bandwidth roofline
// (weight bytes read per token / the read bandwidth this benchmark measures with the same threads).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "bench_models.hpp"
#include "compute/thread_pool.hpp"
#include "model/forward.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Read bandwidth: the pool's threads scan disjoint halves of a buffer much larger than the caches
// with memchr (which glibc streams with wide vector loads); best of several passes.
double read_bandwidth(lb::ThreadPool& pool) {
  const size_t bytes = size_t(1) << 30;
  std::vector<uint8_t> buf(bytes, 1);
  const int64_t parts = pool.size() * 8;
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    std::atomic<size_t> found{0};
    const auto t0 = Clock::now();
    pool.run(parts, [&](int64_t p) {
      const size_t len = bytes / size_t(parts);
      if (std::memchr(buf.data() + size_t(p) * len, 0, len)) found++;
    });
    best = std::max(best, double(bytes) / secs(t0));
    if (found) std::abort();
  }
  return best;
}

constexpr int kRounds = 3;

// Continuous batching: one decode step over rows of kBatchSizes[i] different sequences.
constexpr int kBatchSizes[] = {1, 2, 4, 8};
constexpr int kMaxBatch = 8;

struct Row {
  std::string type;
  double weight_gb, prompt_tps, decode_tps, roofline_tps;
  double batch_step_ms[std::size(kBatchSizes)];
};

// Milliseconds per decode step with `rows` single-token rows of different sequences, best of a
// few steps (each sequence already holds a 32-token prompt).
double batched_step_ms(lb::RangeRunner& runner, int32_t n_vocab, int rows, int64_t& pos) {
  lb::StepOutput out;
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep, ++pos) {
    lb::StepInput step;
    for (int s = 0; s < rows; ++s) {
      step.seq.push_back(uint64_t(100 + s));
      step.pos.push_back(pos);
      step.tokens.push_back(int32_t((pos * 31 + s * 7 + 7) % n_vocab));
      step.want_logits.push_back(1);
    }
    // Sequences beyond `rows` skip this position: give them the same one so all stay in step.
    for (int s = rows; s < kMaxBatch; ++s) {
      step.seq.push_back(uint64_t(100 + s));
      step.pos.push_back(pos);
      step.tokens.push_back(1);
      step.want_logits.push_back(0);
    }
    // Time only the batch: run the catch-up rows in a step of their own first.
    lb::StepInput rest;
    for (size_t i = size_t(rows); i < step.seq.size(); ++i) {
      rest.seq.push_back(step.seq[i]);
      rest.pos.push_back(step.pos[i]);
      rest.tokens.push_back(step.tokens[i]);
      rest.want_logits.push_back(step.want_logits[i]);
    }
    step.seq.resize(size_t(rows));
    step.pos.resize(size_t(rows));
    step.tokens.resize(size_t(rows));
    step.want_logits.resize(size_t(rows));
    if (!rest.seq.empty()) runner.step(rest, out);
    const auto t0 = Clock::now();
    runner.step(step, out);
    best = std::min(best, secs(t0) * 1e3);
  }
  return best;
}

Row measure(const std::string& type, lb::WeightLayout layout, lb::ThreadPool& pool) {
  auto file = std::make_shared<lb::GgufFile>(lbbench::tinyllama_shaped(type));
  const lb::HParams hp = lb::read_hparams(*file);
  lb::ModelWeights w(file, 0, hp.n_layers, {nullptr, layout, &pool});
  lb::RangeRunner runner(w, pool, 512);
  // Bytes a decode step reads: every layer's weights and the output head (one embedding row is
  // negligible).
  const lb::ModelSizes sizes = lb::model_sizes(*file, hp);
  double per_token = double(sizes.head_bytes);
  for (uint64_t b : sizes.layer_bytes) per_token += double(b);

  lb::StepInput prompt;
  for (int i = 0; i < 128; ++i) {
    prompt.seq.push_back(1);
    prompt.pos.push_back(i);
    prompt.tokens.push_back(int32_t((i * 7919 + 11) % hp.n_vocab));
    prompt.want_logits.push_back(i == 127);
  }
  lb::StepOutput out;
  runner.step(prompt, out);  // warm-up: caches, page faults
  runner.kv().clear();
  auto t0 = Clock::now();
  runner.step(prompt, out);
  const double prompt_tps = 128.0 / secs(t0);

  const int n_decode = 48;
  lb::StepInput step{{1}, {128}, {1}, {}, {1}, {}};
  t0 = Clock::now();
  for (int i = 0; i < n_decode; ++i) {
    step.pos[0] = 128 + i;
    step.tokens[0] = int32_t((i * 31 + 7) % hp.n_vocab);
    runner.step(step, out);
  }
  const double decode_tps = n_decode / secs(t0);

  const std::string label = layout == lb::WeightLayout::File ? type + " as filed" : type;
  Row row{label, per_token / 1e9, prompt_tps, decode_tps, 0, {}};
  runner.kv().clear();
  lb::StepInput prompts;
  for (int s = 0; s < kMaxBatch; ++s) {
    for (int i = 0; i < 32; ++i) {
      prompts.seq.push_back(uint64_t(100 + s));
      prompts.pos.push_back(i);
      prompts.tokens.push_back(int32_t((i * 7919 + s * 13 + 11) % hp.n_vocab));
      prompts.want_logits.push_back(i == 31);
    }
  }
  runner.step(prompts, out);
  int64_t pos = 32;
  for (size_t i = 0; i < std::size(kBatchSizes); ++i) {
    row.batch_step_ms[i] = batched_step_ms(runner, int32_t(hp.n_vocab), kBatchSizes[i], pos);
  }
  return row;
}

}  // namespace

int main() {
  lb::ThreadPool pool(2);
  // Q4_0 and Q4_K also as the file lays them out: what rearranging them for the kernels
  // (repack_for) gains.
  const std::pair<const char*, lb::WeightLayout> cases[] = {{"q8_0", lb::WeightLayout::Fastest},
                                                            {"q4_0", lb::WeightLayout::Fastest},
                                                            {"q4_0", lb::WeightLayout::File},
                                                            {"q4_k", lb::WeightLayout::Fastest},
                                                            {"q4_k", lb::WeightLayout::File}};
  // Rounds over all the cases, keeping each figure's best: a burst of load from elsewhere on a
  // shared machine then slows one round, not one case.
  double bw = 0;
  std::vector<Row> rows;
  for (int round = 0; round < kRounds; ++round) {
    bw = std::max(bw, read_bandwidth(pool));
    for (size_t c = 0; c < std::size(cases); ++c) {
      const Row r = measure(cases[c].first, cases[c].second, pool);
      if (round == 0) {
        rows.push_back(r);
        continue;
      }
      Row& best = rows[c];
      best.prompt_tps = std::max(best.prompt_tps, r.prompt_tps);
      best.decode_tps = std::max(best.decode_tps, r.decode_tps);
      for (size_t i = 0; i < std::size(kBatchSizes); ++i) {
        best.batch_step_ms[i] = std::min(best.batch_step_ms[i], r.batch_step_ms[i]);
      }
    }
  }
  std::printf("read bandwidth, 2 threads: %.1f GB/s; best of %d rounds\n\n", bw / 1e9, kRounds);
  std::printf("%-14s %12s %14s %12s %14s %10s\n", "type", "GB/token", "prompt tok/s",
              "decode tok/s", "roofline tok/s", "% roofline");
  for (Row& r : rows) {
    r.roofline_tps = bw / (r.weight_gb * 1e9);
    std::printf("%-14s %12.3f %14.1f %12.2f %14.2f %9.1f%%\n", r.type.c_str(), r.weight_gb,
                r.prompt_tps, r.decode_tps, r.roofline_tps, 100.0 * r.decode_tps / r.roofline_tps);
  }
  std::printf(
      "\nbatched decode: ms per step of N single-token rows (different sequences), and\n"
      "tokens/s of the step relative to one row\n%-14s",
      "type");
  for (int b : kBatchSizes) std::printf("  %8s N=%d", "", b);
  std::printf("\n");
  for (const Row& r : rows) {
    std::printf("%-14s", r.type.c_str());
    for (size_t i = 0; i < std::size(kBatchSizes); ++i) {
      std::printf("  %6.1f (%3.1fx)", r.batch_step_ms[i],
                  kBatchSizes[i] * r.batch_step_ms[0] / r.batch_step_ms[i]);
    }
    std::printf("\n");
  }
  return 0;
}
