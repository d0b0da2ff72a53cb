// layerbus-broker: plans the layer split, runs the generation loops and serves clients.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "broker/broker.hpp"
#include "util/bytes.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "layerbus-broker: splits a model's layers over registered stages and serves clients"};
  std::string config_path, model, max_message, context, log_level;
  std::optional<std::string> control, collect, advertise, strategy, dtype, endpoint_file;
  std::optional<int> min_stages, max_sequences, heartbeat_ms, node_timeout_ms;
  std::optional<int64_t> ctx;
  app.add_option("--config", config_path,
                 "YAML configuration (default: conf/broker.yaml when it exists)");
  app.add_option("--control", control,
                 "Control endpoint to bind (stages and clients), e.g. tcp://127.0.0.1:5555");
  app.add_option("--collect", collect, "Endpoint to bind for the last stage's results");
  app.add_option("--advertise-host", advertise,
                 "Host stages should use when an endpoint is bound to *");
  app.add_option("--model", model,
                 "A model to serve: a configured name, auto, or a GGUF path (added to the list)");
  app.add_option("--strategy", strategy, "memory | uniform | priority | compute | balanced");
  app.add_option("--min-stages", min_stages, "Stages to wait for before planning");
  app.add_option("--context", ctx, "Context length per request, in tokens");
  app.add_option("--max-sequences", max_sequences, "Requests generating at once");
  app.add_option("--dtype", dtype, "Activation type on the wire: f32 | f16");
  app.add_option("--max-message", max_message, "Largest message accepted, e.g. 64MiB");
  app.add_option("--heartbeat-ms", heartbeat_ms, "Heartbeat interval");
  app.add_option("--node-timeout-ms", node_timeout_ms,
                 "Silence after which a stage counts as lost");
  std::optional<int64_t> kv_reserve;
  bool auto_rebalance = false;
  app.add_option("--kv-reserve-tokens", kv_reserve,
                 "KV positions per layer the planner reserves (0 = context x max-sequences)");
  app.add_flag("--auto-rebalance", auto_rebalance,
               "Offer layers to stages that register while serving");
  std::optional<int> max_inflight;
  app.add_option("--max-inflight-steps", max_inflight,
                 "Steps in the chain at once (0 = per host, one per stage when the stages' "
                 "threads fit its cores, else one)");
  std::optional<bool> kv_transfer;
  app.add_option("--kv-transfer", kv_transfer,
                 "On a move, send KV caches with their layers (true) or replay requests (false)");
  std::optional<bool> loop_steps;
  app.add_option("--loop-steps", loop_steps,
                 "The last stage sends sampled tokens straight on to the head (true) or every step "
                 "comes from the broker (false)");
  int corrupt_chunks = 0;
  int drop_kv_parts = 0;
  app.add_option("--corrupt-chunks", corrupt_chunks,
                 "Testing aid: corrupt the first N model chunks sent to stages");
  app.add_option("--drop-kv-parts", drop_kv_parts,
                 "Testing aid: drop the first N KV cache parts forwarded during a move");
  std::vector<std::string> caps, excludes;
  app.add_option("--cap", caps,
                 "Plan at most SIZE on a node: ID=SIZE (repeatable; config: nodes.ID.cap)");
  app.add_option("--exclude", excludes,
                 "Give a node no layers (repeatable; config: nodes.ID.exclude)");
  app.add_option("--endpoint-file", endpoint_file, "Write the bound control endpoint to this file");
  app.add_option("--log-level", log_level, "trace | debug | info | warn | error");
  CLI11_PARSE(app, argc, argv);
  try {
    if (config_path.empty() && std::filesystem::exists("conf/broker.yaml"))
      config_path = "conf/broker.yaml";
    lb::BrokerConfig cfg =
        config_path.empty() ? lb::BrokerConfig{} : lb::load_broker_config(config_path);
    if (control) cfg.control = *control;
    if (collect) cfg.collect = *collect;
    if (advertise) cfg.advertise_host = *advertise;
    if (strategy) cfg.strategy = *strategy;
    if (min_stages) cfg.min_stages = *min_stages;
    if (ctx) cfg.context = *ctx;
    if (max_sequences) cfg.max_sequences = *max_sequences;
    if (dtype) cfg.activation_dtype = *dtype;
    if (!max_message.empty()) cfg.max_message_bytes = lb::parse_bytes(max_message);
    if (heartbeat_ms) cfg.heartbeat_ms = *heartbeat_ms;
    if (node_timeout_ms) cfg.node_timeout_ms = *node_timeout_ms;
    if (endpoint_file) cfg.endpoint_file = *endpoint_file;
    if (!log_level.empty()) cfg.log_level = log_level;
    for (const std::string& c : caps) {
      const size_t eq = c.find('=');
      if (eq == std::string::npos || eq == 0)
        throw lb::Error("--cap takes ID=SIZE, got '" + c + "'");
      cfg.nodes[c.substr(0, eq)].cap = lb::parse_bytes(c.substr(eq + 1));
    }
    for (const std::string& id : excludes) cfg.nodes[id].exclude = true;
    if (kv_reserve) cfg.kv_reserve_tokens = *kv_reserve;
    if (auto_rebalance) cfg.auto_rebalance = true;
    if (kv_transfer) cfg.kv_transfer = *kv_transfer;
    if (loop_steps) cfg.loop_steps = *loop_steps;
    if (max_inflight) cfg.max_inflight_steps = *max_inflight;
    cfg.corrupt_chunks = corrupt_chunks;
    cfg.drop_kv_parts = drop_kv_parts;
    if (!model.empty()) {
      const bool named = std::any_of(cfg.models.begin(), cfg.models.end(),
                                     [&](const lb::ModelEntry& m) { return m.name == model; });
      if (named || model == "auto") {
        cfg.model = model;
      } else {
        lb::ModelEntry e{std::filesystem::path(model).stem().string(), model};
        cfg.models.erase(std::remove_if(cfg.models.begin(), cfg.models.end(),
                                        [&](const lb::ModelEntry& m) { return m.name == e.name; }),
                         cfg.models.end());
        cfg.models.push_back(e);
        cfg.model = e.name;
      }
    }
    lb::validate(cfg);
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    spdlog::flush_on(spdlog::level::trace);  // logs are read while the process runs
    lb::Broker broker(cfg);
    return broker.run();
  } catch (const std::exception& e) {
    spdlog::critical("layerbus-broker: {}", e.what());
    return 1;
  }
}
