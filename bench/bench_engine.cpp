// Engine speed on a synthetic TinyLlama-1.1B-shaped model in Q8_0, Q4_0 and Q4_K with 2 threads:
// decode tokens/s, 128-token prompt tokens/s, and decode against the memory-bandwidth roofline
// (weight bytes read per token / the read bandwidth this benchmark measures with the same threads).
#include <chrono>
#include <cstring>
#include <memory>
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

struct Row {
  std::string type;
  double weight_gb, prompt_tps, decode_tps, roofline_tps;
};

Row measure(const std::string& type, lb::ThreadPool& pool) {
  auto file = std::make_shared<lb::GgufFile>(lbbench::tinyllama_shaped(type));
  const lb::HParams hp = lb::read_hparams(*file);
  lb::ModelWeights w(file, 0, hp.n_layers);
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
  return {type, per_token / 1e9, prompt_tps, decode_tps, 0};
}

}  // namespace

int main() {
  lb::ThreadPool pool(2);
  const double bw = read_bandwidth(pool);
  std::printf("read bandwidth, 2 threads: %.1f GB/s\n\n", bw / 1e9);
  std::printf("%-6s %12s %14s %12s %14s %10s\n", "type", "GB/token", "prompt tok/s", "decode tok/s",
              "roofline tok/s", "% roofline");
  for (const char* type : {"q8_0", "q4_0", "q4_k"}) {
    Row r = measure(type, pool);
    r.roofline_tps = bw / (r.weight_gb * 1e9);
    std::printf("%-6s %12.3f %14.1f %12.2f %14.2f %9.1f%%\n", r.type.c_str(), r.weight_gb,
                r.prompt_tps, r.decode_tps, r.roofline_tps, 100.0 * r.decode_tps / r.roofline_tps);
  }
  return 0;
}
