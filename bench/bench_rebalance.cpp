// The pause a live rebalance causes: 4 streams generate through 3 stages (synthetic 1.1B Q4_0,
// budgets 2:3:4 GiB, `memory` strategy) and `rebalance --strategy uniform` moves layers while they
// run. Per stream: the gap from the last token before the move to the first after it. The
// broker's `status` splits it: drain (in-flight steps come back), load (stages map or fetch their
// new layers and pass KV caches on), and resume (the rest: the first step of the new epoch, plus
// replaying requests when caches did not move).
// Cases: (a) layers mapped from a local file, (b) layers fetched from the broker, both with KV
// caches moved between stages; (c) as (a) with caches rebuilt by replay instead.
#include <algorithm>
#include <filesystem>
#include <future>

#include "bench_cluster.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void measure(const std::string& label, bool stages_have_model, bool kv_transfer) {
  lbbench::ClusterOptions o;
  o.model = lbbench::tinyllama_shaped("q4_0");
  o.memory = {"2GiB", "3GiB", "4GiB"};
  o.stages_have_model = stages_have_model;
  o.log_level = "info";
  o.broker_args = {"--kv-transfer", kv_transfer ? "true" : "false"};
  for (int i = 0; i < 3; ++i)
    std::filesystem::remove_all(lbbench::bench_dir() + "/stage-cache-" + std::to_string(i));
  auto c = lbbench::start(o);
  lbbench::generate(c->broker, "warm up", 2);

  const uint32_t n = 256;  // long enough that every stream is still generating when the move comes
  std::vector<std::future<lbbench::Stream>> streams;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(std::async(std::launch::async, [&, i] {
      return lbbench::generate(c->broker, "Story " + std::to_string(i), n);
    }));
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));  // every stream is generating by now
  const auto t_control = Clock::now();
  lb::BrokerClient client(c->broker);
  lb::wire::PlanChange change;
  lb::wire::decode(client.ask(lb::wire::encode(lb::wire::Control{"rebalance", "", 0, "uniform"}),
                              std::chrono::seconds(60)),
                   change);
  std::vector<double> gaps;
  for (auto& f : streams) {
    const lbbench::Stream s = f.get();
    // The longest gap ending after the rebalance was asked for: tokens already in flight still
    // arrive, then the stream waits for the move.
    double gap = -1;
    for (size_t i = 1; i < s.arrivals.size(); ++i) {
      if (s.arrivals[i] > t_control) {
        gap =
            std::max(gap, std::chrono::duration<double>(s.arrivals[i] - s.arrivals[i - 1]).count());
      }
    }
    if (gap >= 0) gaps.push_back(gap);
  }
  nlohmann::json st = lbbench::status(c->broker);
  while (st["rebalancing"].get<bool>() || !st.contains("last_migration")) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    st = lbbench::status(c->broker);
  }
  const nlohmann::json& m = st["last_migration"];
  const double drain = m["drain_s"].get<double>(), load = m["load_s"].get<double>();
  std::sort(gaps.begin(), gaps.end());
  std::printf("%-32s", label.c_str());
  for (double g : gaps) std::printf(" %6.0f", g * 1e3);
  for (size_t i = gaps.size(); i < 4; ++i) std::printf(" %6s", "-");
  double mean = 0;
  for (double g : gaps) mean += g / double(std::max<size_t>(1, gaps.size()));
  std::printf(" | %6.0f %6.0f %6.0f | %8.2f %5d %5d\n", drain * 1e3, load * 1e3,
              (mean - drain - load) * 1e3, m["kv_bytes"].get<double>() / 1048576.0,
              m["moved"].get<int>(), m["replayed"].get<int>());
}

}  // namespace

int main() try {
  std::printf("pause per stream (ms), its parts (ms, from the broker's status), KV moved\n");
  std::printf("%-32s %6s %6s %6s %6s | %6s %6s %6s | %8s %5s %5s\n", "case", "s1", "s2", "s3", "s4",
              "drain", "load", "resume", "KV MiB", "moved", "replay");
  measure("(a) mapped from local file", true, true);
  measure("(b) fetched from the broker", false, true);
  measure("(c) as (a), KV replayed", true, false);
  return 0;
} catch (const std::exception& e) {
  // Caught so that the clusters started so far are stopped on the way out.
  std::fprintf(stderr, "%s: %s\n", "bench_rebalance", e.what());
  return 1;
}
