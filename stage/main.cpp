// layerbus-stage: serves a range of a model's layers for a broker.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "compute/thread_pool.hpp"
#include "stage/model_cache.hpp"
#include "stage/stage.hpp"
#include "sys/memory.hpp"
#include "util/bytes.hpp"

int main(int argc, char** argv) {
  CLI::App app{"layerbus-stage: holds a range of a model's layers and serves them for a broker"};
  lb::StageOptions opt;
  std::string memory, max_message = "64MiB", log_level = "info";
  opt.bind = "tcp://127.0.0.1:*";
  opt.threads = lb::default_thread_count();
  app.add_option("--broker", opt.broker, "Broker control endpoint, tcp://HOST:PORT")->required();
  app.add_option("--memory", memory,
                 "Memory budget, e.g. 6GiB (default: machine or cgroup memory minus a reserve)");
  app.add_option("--threads", opt.threads, "Compute threads (default: the cores available)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--bind", opt.bind, "Data endpoint to bind; port * picks a free one")
      ->capture_default_str();
  app.add_option("--advertise", opt.advertise,
                 "Host others use to reach --bind (when it binds 0.0.0.0)");
  app.add_option("--model", opt.model,
                 "Local copy of the model file (without it, layers come from the broker)")
      ->check(CLI::ExistingFile);
  opt.cache_dir = lb::default_cache_dir();
  app.add_option("--cache-dir", opt.cache_dir, "Where layers fetched from the broker are kept")
      ->capture_default_str();
  app.add_option("--node-id", opt.node_id, "Node id (default: HOST-PID)");
  app.add_option("--order", opt.order,
                 "Position in the chain: lower comes first; ties keep registration order");
  app.add_option("--max-message", max_message, "Largest message accepted")->capture_default_str();
  app.add_option("--heartbeat-ms", opt.heartbeat_ms, "Heartbeat interval")
      ->check(CLI::Range(10, 60000))
      ->capture_default_str();
  app.add_option("--high-water", opt.high_water,
                 "Report memory pressure past this share of the budget")
      ->check(CLI::Range(0.1, 1.0))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    spdlog::set_level(spdlog::level::from_str(log_level));
    spdlog::flush_on(spdlog::level::trace);  // logs are read while the process runs
    opt.memory_budget = memory.empty() ? lb::default_memory_budget() : lb::parse_bytes(memory);
    opt.max_message_bytes = lb::parse_bytes(max_message);
    lb::Stage stage(opt);
    return stage.run();
  } catch (const std::exception& e) {
    spdlog::critical("layerbus-stage: {}", e.what());
    return 1;
  }
}
