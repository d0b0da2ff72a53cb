#pragma once
// A stage's configuration file (`layerbus-stage --config FILE`): every key is optional and named
// like its flag; flags given on the command line win at start. On SIGHUP the stage reads the file
// again and applies `memory` at once (the broker re-plans with the new budget); the other keys
// take effect at the next start.
#include <cstdint>
#include <optional>
#include <string>

namespace lb {

struct StageConfig {
  std::optional<std::string> broker, bind, advertise, model, cache_dir, node_id, log_level;
  std::optional<uint64_t> memory, max_message;  // bytes
  std::optional<int> threads, heartbeat_ms, kv_wait_s;
  std::optional<int64_t> order;
  std::optional<double> high_water;
};

// Throws lb::Error naming the file and key for unknown keys, wrong types and bad values.
StageConfig load_stage_config(const std::string& path);

}  // namespace lb
