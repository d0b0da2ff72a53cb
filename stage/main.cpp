// layerbus-stage: serves a range of a model's layers for a broker.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "compute/thread_pool.hpp"
#include "config/stage_config.hpp"
#include "stage/model_cache.hpp"
#include "stage/stage.hpp"
#include "sys/memory.hpp"
#include "util/bytes.hpp"

int main(int argc, char** argv) {
  CLI::App app{"layerbus-stage: holds a range of a model's layers and serves them for a broker"};
  // Flags are optional so that, when absent, --config's value (or else the default) applies.
  std::string config;
  std::optional<std::string> broker, memory, bind, advertise, model, cache_dir, node_id,
      max_message, log_level;
  std::optional<int> threads, heartbeat_ms, kv_wait_s;
  std::optional<int64_t> order;
  std::optional<double> high_water;
  app.add_option("--config", config,
                 "YAML file with these settings (keys named like the flags, '_' for '-'); SIGHUP "
                 "re-reads its memory")
      ->check(CLI::ExistingFile);
  app.add_option("--broker", broker, "Broker control endpoint, tcp://HOST:PORT");
  app.add_option("--memory", memory,
                 "Memory budget, e.g. 6GiB (default: machine or cgroup memory minus a reserve)");
  app.add_option("--threads", threads, "Compute threads (default: the cores available)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--bind", bind,
                 "Data endpoint to bind; port * picks a free one (default "
                 "tcp://127.0.0.1:*)");
  app.add_option("--advertise", advertise,
                 "Host others use to reach --bind (when it binds 0.0.0.0)");
  app.add_option("--model", model,
                 "Local copy of the model file (without it, layers come from the broker)")
      ->check(CLI::ExistingFile);
  app.add_option(
      "--cache-dir", cache_dir,
      "Where layers fetched from the broker are kept (default " + lb::default_cache_dir() + ")");
  app.add_option("--node-id", node_id, "Node id (default: HOST-PID)");
  app.add_option("--order", order,
                 "Position in the chain: lower comes first; ties keep registration order");
  app.add_option("--max-message", max_message, "Largest message accepted (default 64MiB)");
  app.add_option("--heartbeat-ms", heartbeat_ms, "Heartbeat interval (default 1000)")
      ->check(CLI::Range(10, 60000));
  app.add_option("--high-water", high_water,
                 "Report memory pressure past this share of the budget (default 0.9)")
      ->check(CLI::Range(0.1, 1.0));
  app.add_option("--kv-wait-s", kv_wait_s,
                 "During a move, replay the requests whose KV parts have not come after this "
                 "many seconds without one (default 120)")
      ->check(CLI::Range(1, 86400));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (default info)");
  CLI11_PARSE(app, argc, argv);
  try {
    const lb::StageConfig file = config.empty() ? lb::StageConfig{} : lb::load_stage_config(config);
    auto pick = [](const auto& flag, const auto& from_file, auto fallback) {
      return flag ? *flag : from_file ? *from_file : fallback;
    };
    spdlog::set_level(
        spdlog::level::from_str(pick(log_level, file.log_level, std::string("info"))));
    spdlog::flush_on(spdlog::level::trace);  // logs are read while the process runs
    lb::StageOptions opt;
    opt.config_path = config;
    opt.broker = pick(broker, file.broker, std::string());
    if (opt.broker.empty()) throw lb::Error("--broker (or 'broker' in --config) is required");
    opt.bind = pick(bind, file.bind, std::string("tcp://127.0.0.1:*"));
    opt.advertise = pick(advertise, file.advertise, std::string());
    opt.model = pick(model, file.model, std::string());
    if (!opt.model.empty() && !std::filesystem::is_regular_file(opt.model))
      throw lb::Error("model file '" + opt.model + "' does not exist");
    opt.cache_dir = pick(cache_dir, file.cache_dir, lb::default_cache_dir());
    opt.node_id = pick(node_id, file.node_id, std::string());
    opt.order = pick(order, file.order, int64_t{0});
    opt.threads = pick(threads, file.threads, lb::default_thread_count());
    opt.heartbeat_ms = pick(heartbeat_ms, file.heartbeat_ms, 1000);
    opt.high_water = pick(high_water, file.high_water, 0.9);
    opt.kv_wait_s = pick(kv_wait_s, file.kv_wait_s, 120);
    opt.memory_budget =
        memory ? lb::parse_bytes(*memory)
               : pick(std::optional<uint64_t>(), file.memory, lb::default_memory_budget());
    opt.max_message_bytes =
        max_message ? lb::parse_bytes(*max_message)
                    : pick(std::optional<uint64_t>(), file.max_message, uint64_t{64} << 20);
    lb::Stage stage(opt);
    return stage.run();
  } catch (const std::exception& e) {
    spdlog::critical("layerbus-stage: {}", e.what());
    return 1;
  }
}
