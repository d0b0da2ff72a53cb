// Pipeline speed on this machine over tcp://127.0.0.1, every figure from the same run:
//  - single-stream decode tokens/s through 1, 2 and 3 stages, as a ratio to `layerbus run`;
//  - aggregate tokens/s for 1, 2, 4 and 8 concurrent streams through 2 stages;
//  - time per hop (message in to message out, compute excluded), from a model so small that
//    compute is negligible: (per-token time through k stages - per-token time in one process) / (k
//    + 1) hops (broker -> stage 1 -> ... -> stage k -> broker).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_cluster.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using lbbench::generate;
using lbbench::kBin;
using lbbench::log_dir;
using lbbench::Stream;

std::unique_ptr<lbbench::Cluster> start(const std::string& model, int stages, int max_seqs) {
  lbbench::ClusterOptions o;
  o.model = model;
  o.memory.assign(size_t(stages), "8GiB");
  o.max_seqs = max_seqs;
  return lbbench::start(o);
}

// `layerbus run --json` in its own process, as a user would run it.
double run_tps(const std::string& model, uint32_t n) {
  const std::string out = log_dir() + "/run.json";
  fs::remove(out);
  const int pid = lb::spawn_process(
      {kBin + "/layerbus", "run", "--model", model, "--prompt", "Once upon a time", "-n",
       std::to_string(n), "--threads", "2", "--ctx", "512", "--json"},
      out);
  while (lb::process_alive(pid)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ifstream in(out);
  return nlohmann::json::parse(in)["tokens_per_second"].get<double>();
}

}  // namespace

int main() {
  const std::string model = lbbench::tinyllama_shaped("q4_0");
  const uint32_t n = 48;

  std::printf("single stream, synthetic 1.1B Q4_0, %u tokens, 2 threads per process\n", n);
  std::printf("%-22s %10s %10s\n", "", "tokens/s", "ratio");
  const double base = run_tps(model, n);
  std::printf("%-22s %10.2f %10s\n", "layerbus run", base, "1.00");
  for (int stages : {1, 2, 3}) {
    auto c = start(model, stages, 8);
    generate(c->broker, "warm up", 4);
    const Stream s = generate(c->broker, "Once upon a time", n);
    const double tps = s.decode_steps / s.decode_s;
    std::printf("%-22s %10.2f %10.3f\n", (std::to_string(stages) + " stage(s)").c_str(), tps,
                tps / base);
  }
  const double base_again = run_tps(model, n);
  std::printf("%-22s %10.2f %10.3f   (drift check)\n", "layerbus run again", base_again,
              base_again / base);

  std::printf("\nconcurrent streams through 2 stages\n%-10s %16s %10s\n", "streams",
              "aggregate tok/s", "vs 1");
  {
    auto c = start(model, 2, 8);
    generate(c->broker, "warm up", 4);
    double one = 0;
    for (int streams : {1, 2, 4, 8}) {
      const auto t0 = Clock::now();
      std::vector<std::future<Stream>> fs;
      for (int i = 0; i < streams; ++i) {
        fs.push_back(std::async(std::launch::async, [&, i] {
          return generate(c->broker, "Story " + std::to_string(i), n);
        }));
      }
      int64_t tokens = 0;
      for (auto& f : fs) tokens += f.get().tokens;
      const double tps = double(tokens) / std::chrono::duration<double>(Clock::now() - t0).count();
      if (streams == 1) one = tps;
      std::printf("%-10d %16.2f %10.2f\n", streams, tps, tps / one);
    }
  }

  std::printf("\ntime per hop (tiny model: compute is negligible)\n");
  const lb::SynthSpec tiny = lb::synth_spec("llama", 64, 6, 4, 2, 128, 512, lb::GgmlType::F32);
  const std::string tiny_path = lbbench::bench_dir() + "/tiny.gguf";
  lb::write_synthetic_model(tiny, tiny_path);
  const uint32_t tn = 400;
  const double tiny_run = 1.0 / run_tps(tiny_path, tn);
  std::printf("%-10s %16s %22s %26s\n", "stages", "us per token", "us per hop (end to end)",
              "us in a stage, no compute");
  std::printf("%-10s %16.1f %22s %26s\n", "run", tiny_run * 1e6, "-", "-");
  for (int stages : {1, 2, 3}) {
    auto c = start(tiny_path, stages, 8);
    generate(c->broker, "warm up", 4);
    const Stream s = generate(c->broker, "a", tn);
    const double per_token = s.decode_s / s.decode_steps;
    // The stages' own figure (message in to message out, compute excluded), from their heartbeats.
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    double inside = 0;
    const nlohmann::json j = lbbench::status(c->broker);
    for (const auto& n : j["nodes"])
      inside += n["overhead_us"].get<double>() / double(j["nodes"].size());
    std::printf("%-10d %16.1f %22.1f %26.1f\n", stages, per_token * 1e6,
                (per_token - tiny_run) / (stages + 1) * 1e6, inside);
  }
  return 0;
}
