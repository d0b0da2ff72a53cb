// Engine speed on a synthetic TinyLlama-1.1B-shaped model in Q8_0, Q4_0 and Q4_K with 2 threads:
// decode tokens/s, 128-token prompt tokens/s, and decode against the memory-bandwidth roofline
// (weight bytes read per token / the read bandwidth this benchmark measures with the same threads).
//
// The read bandwidth of a machine shared with others swings by 2x within minutes, so it is
// measured paired with decode: after each decode token the same threads scan as many bytes as the
// token read (plain vector loads, bench_read.hpp, over a buffer much larger than the caches, in
// huge pages). Each pair gives a roofline fraction (scan time / token time); the table shows the
// median over every pair of every round, which a burst of other load (hitting one side of a pair)
// moves least, and the decode and read figures as the medians of their own times.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "bench_models.hpp"
#include "bench_read.hpp"
#include "bench_stats.hpp"
#include "compute/thread_pool.hpp"
#include "model/forward.hpp"
#include "util/mapped_memory.hpp"

namespace {

using lbbench::median;
using Clock = std::chrono::steady_clock;
double secs(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The scanned buffer's bytes, and so the OR of its words.
constexpr uint8_t kFilledByte = 1;
constexpr uint64_t kFilledWords = 0x0101010101010101ull;

// Reads `bytes` of buf from `offset` (wrapping), split over the pool's threads; returns the
// seconds taken.
double scan(lb::ThreadPool& pool, const lb::MappedMemory& buf, size_t& offset, size_t bytes) {
  const int64_t parts = pool.size() * 8;
  const size_t len = bytes / size_t(parts) / 256 * 256;
  std::vector<const uint8_t*> starts;
  for (int64_t p = 0; p < parts; ++p) {
    if (offset + len > buf.size()) offset = 0;
    starts.push_back(buf.data() + offset);
    offset += len;
  }
  std::atomic<size_t> wrong{0};
  const auto t0 = Clock::now();
  pool.run(parts, [&](int64_t p) {
    if (lbbench::read_or(starts[size_t(p)], len) != kFilledWords) wrong++;
  });
  const double s = secs(t0);
  if (wrong) std::abort();
  return s * double(bytes) / double(len * size_t(parts));
}

constexpr int kRounds = 3;

// Continuous batching: one decode step over rows of kBatchSizes[i] different sequences.
constexpr int kBatchSizes[] = {1, 2, 4, 8};
constexpr int kMaxBatch = 8;

struct Row {
  std::string type;
  double weight_gb = 0;
  std::vector<double> prompt_tps;        // per round
  std::vector<double> decode_s, scan_s;  // per decode token of every round, paired
  double batch_step_ms[std::size(kBatchSizes)];

  double decode_tps() const { return 1.0 / median(decode_s); }
  double read_gbps() const { return weight_gb / median(scan_s); }
  // The fraction of the roofline: the median pair's scan time / decode time for the same bytes.
  double roofline() const {
    std::vector<double> f;
    for (size_t i = 0; i < decode_s.size(); ++i) f.push_back(scan_s[i] / decode_s[i]);
    return median(f);
  }
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

Row measure(const std::string& type, lb::WeightLayout layout, lb::ThreadPool& pool,
            const lb::MappedMemory& buf) {
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
  Row row;
  row.type = layout == lb::WeightLayout::File ? type + " as filed" : type;
  row.weight_gb = per_token / 1e9;
  auto t0 = Clock::now();
  runner.step(prompt, out);
  row.prompt_tps.push_back(128.0 / secs(t0));

  const int n_decode = 48;
  lb::StepInput step{{1}, {128}, {1}, {}, {1}, {}};
  size_t offset = 0;
  for (int i = 0; i < n_decode; ++i) {
    step.pos[0] = 128 + i;
    step.tokens[0] = int32_t((i * 31 + 7) % hp.n_vocab);
    t0 = Clock::now();
    runner.step(step, out);
    row.decode_s.push_back(secs(t0));
    row.scan_s.push_back(scan(pool, buf, offset, size_t(per_token)));
  }

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
  // Q4_0 and Q4_K also as the file lays them out, multiplied where the file's mapping has them:
  // what copying them into huge pages, rearranged for the kernels (repack_for), gains.
  const std::pair<const char*, lb::WeightLayout> cases[] = {{"q8_0", lb::WeightLayout::Fastest},
                                                            {"q4_0", lb::WeightLayout::Fastest},
                                                            {"q4_0", lb::WeightLayout::File},
                                                            {"q4_k", lb::WeightLayout::Fastest},
                                                            {"q4_k", lb::WeightLayout::File}};
  // Rounds over all the cases, pooling each case's decode tokens and keeping its batched steps'
  // best: a burst of load from elsewhere on a shared machine then slows one round, not one case.
  // In huge pages, as the rearranged weights are: memchr read them 5-10% faster than 4 KiB pages,
  // and the roofline is what the machine can read at best.
  const lb::MappedMemory buf(size_t(1) << 30, lb::MappedMemory::Pages::Huge);
  std::memset(buf.data(), kFilledByte, buf.size());
  std::vector<Row> rows;
  for (int round = 0; round < kRounds; ++round) {
    for (size_t c = 0; c < std::size(cases); ++c) {
      const Row r = measure(cases[c].first, cases[c].second, pool, buf);
      if (round == 0) {
        rows.push_back(r);
        continue;
      }
      Row& all = rows[c];
      all.prompt_tps.insert(all.prompt_tps.end(), r.prompt_tps.begin(), r.prompt_tps.end());
      all.decode_s.insert(all.decode_s.end(), r.decode_s.begin(), r.decode_s.end());
      all.scan_s.insert(all.scan_s.end(), r.scan_s.begin(), r.scan_s.end());
      for (size_t i = 0; i < std::size(kBatchSizes); ++i) {
        all.batch_step_ms[i] = std::min(all.batch_step_ms[i], r.batch_step_ms[i]);
      }
    }
  }
  std::printf(
      "2 threads; %d rounds. Read bandwidth: vector loads over as many bytes as each decode\n"
      "token read, right after it, on the same threads. Medians: prompt over the rounds; decode\n"
      "and read over every token; %% roofline over every (token, read) pair\n\n",
      kRounds);
  std::printf("%-14s %9s %13s %13s %14s %15s %11s\n", "type", "GB/token", "prompt tok/s",
              "decode tok/s", "read GB/s", "roofline tok/s", "% roofline");
  for (const Row& r : rows) {
    std::printf("%-14s %9.3f %13.1f %13.2f %14.1f %15.2f %10.1f%%\n", r.type.c_str(), r.weight_gb,
                median(r.prompt_tps), r.decode_tps(), r.read_gbps(), r.read_gbps() / r.weight_gb,
                100.0 * r.roofline());
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
