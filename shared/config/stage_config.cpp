#include "config/stage_config.hpp"

#include "config/yaml_value.hpp"

namespace lb {

using config_detail::get;
using config_detail::get_bytes;

StageConfig load_stage_config(const std::string& path) {
  StageConfig c;
  for (const auto& kv : config_detail::load_map(path)) {
    const std::string key = kv.first.as<std::string>();
    const std::string where = path + ": '" + key + "'";
    const YAML::Node& v = kv.second;
    if (key == "broker")
      c.broker = get<std::string>(v, where);
    else if (key == "bind")
      c.bind = get<std::string>(v, where);
    else if (key == "advertise")
      c.advertise = get<std::string>(v, where);
    else if (key == "model")
      c.model = get<std::string>(v, where);
    else if (key == "cache_dir")
      c.cache_dir = get<std::string>(v, where);
    else if (key == "node_id")
      c.node_id = get<std::string>(v, where);
    else if (key == "log_level")
      c.log_level = get<std::string>(v, where);
    else if (key == "memory")
      c.memory = get_bytes(v, where);
    else if (key == "max_message")
      c.max_message = get_bytes(v, where);
    else if (key == "threads")
      c.threads = get<int>(v, where);
    else if (key == "heartbeat_ms")
      c.heartbeat_ms = get<int>(v, where);
    else if (key == "order")
      c.order = get<int64_t>(v, where);
    else if (key == "high_water")
      c.high_water = get<double>(v, where);
    else if (key == "kv_wait_s")
      c.kv_wait_s = get<int>(v, where);
    else
      throw Error(path + ": unknown key '" + key + "'");
  }
  if (c.memory && *c.memory == 0) throw Error(path + ": 'memory' must be more than 0 bytes");
  if (c.threads && (*c.threads < 1 || *c.threads > 1024))
    throw Error(path + ": 'threads' must be in 1..1024");
  if (c.heartbeat_ms && (*c.heartbeat_ms < 10 || *c.heartbeat_ms > 60000))
    throw Error(path + ": 'heartbeat_ms' must be in 10..60000");
  if (c.high_water && !(*c.high_water >= 0.1 && *c.high_water <= 1.0))
    throw Error(path + ": 'high_water' must be in [0.1, 1]");
  if (c.kv_wait_s && (*c.kv_wait_s < 1 || *c.kv_wait_s > 86400))
    throw Error(path + ": 'kv_wait_s' must be in 1..86400");
  return c;
}

}  // namespace lb
