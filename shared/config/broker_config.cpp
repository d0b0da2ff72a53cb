#include "config/broker_config.hpp"

#include <filesystem>
#include <set>

#include "config/yaml_value.hpp"
#include "plan/planner.hpp"
#include "util/bytes.hpp"
#include "util/error.hpp"
#include "wire/messages.hpp"

namespace lb {

using config_detail::get;
using config_detail::get_bytes;

BrokerConfig load_broker_config(const std::string& path) {
  BrokerConfig c;
  const YAML::Node root = config_detail::load_map(path);
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const std::set<std::string> known = {"control",
                                       "collect",
                                       "advertise_host",
                                       "models",
                                       "model",
                                       "strategy",
                                       "min_stages",
                                       "context",
                                       "max_sequences",
                                       "activation_dtype",
                                       "max_message_bytes",
                                       "heartbeat_ms",
                                       "node_timeout_ms",
                                       "nodes",
                                       "log_level",
                                       "endpoint_file",
                                       "kv_reserve_tokens",
                                       "auto_rebalance",
                                       "kv_transfer",
                                       "loop_steps",
                                       "max_inflight_steps"};
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    const std::string where = path + ": '" + key + "'";
    if (!known.count(key)) throw Error(path + ": unknown key '" + key + "'");
    const YAML::Node& v = kv.second;
    if (key == "control")
      c.control = get<std::string>(v, where);
    else if (key == "collect")
      c.collect = get<std::string>(v, where);
    else if (key == "advertise_host")
      c.advertise_host = get<std::string>(v, where);
    else if (key == "model")
      c.model = get<std::string>(v, where);
    else if (key == "strategy")
      c.strategy = get<std::string>(v, where);
    else if (key == "min_stages")
      c.min_stages = get<int>(v, where);
    else if (key == "context")
      c.context = get<int64_t>(v, where);
    else if (key == "max_sequences")
      c.max_sequences = get<int>(v, where);
    else if (key == "activation_dtype")
      c.activation_dtype = get<std::string>(v, where);
    else if (key == "max_message_bytes")
      c.max_message_bytes = get_bytes(v, where);
    else if (key == "heartbeat_ms")
      c.heartbeat_ms = get<int>(v, where);
    else if (key == "node_timeout_ms")
      c.node_timeout_ms = get<int>(v, where);
    else if (key == "log_level")
      c.log_level = get<std::string>(v, where);
    else if (key == "endpoint_file")
      c.endpoint_file = get<std::string>(v, where);
    else if (key == "kv_reserve_tokens")
      c.kv_reserve_tokens = get<int64_t>(v, where);
    else if (key == "auto_rebalance")
      c.auto_rebalance = get<bool>(v, where);
    else if (key == "kv_transfer")
      c.kv_transfer = get<bool>(v, where);
    else if (key == "loop_steps")
      c.loop_steps = get<bool>(v, where);
    else if (key == "max_inflight_steps")
      c.max_inflight_steps = get<int>(v, where);
    else if (key == "models") {
      if (!v.IsSequence()) throw Error(where + " must be a list of {name, path}");
      for (const auto& m : v) {
        if (!m.IsMap() || !m["path"]) throw Error(where + ": each model needs a path");
        ModelEntry e;
        e.path = get<std::string>(m["path"], where + " path");
        if (std::filesystem::path(e.path).is_relative())
          e.path = (dir / e.path).lexically_normal().string();
        e.name = m["name"] ? get<std::string>(m["name"], where + " name")
                           : std::filesystem::path(e.path).stem().string();
        c.models.push_back(e);
      }
    } else if (key == "nodes") {
      if (!v.IsMap()) throw Error(where + " must map node ids to {cap, exclude}");
      for (const auto& n : v) {
        const std::string id = n.first.as<std::string>();
        NodeOverride o;
        for (const auto& f : n.second) {
          const std::string fk = f.first.as<std::string>();
          if (fk == "cap")
            o.cap = get_bytes(f.second, where + "." + id + ".cap");
          else if (fk == "exclude")
            o.exclude = get<bool>(f.second, where + "." + id + ".exclude");
          else
            throw Error(where + "." + id + ": unknown key '" + fk + "'");
        }
        c.nodes[id] = o;
      }
    }
  }
  validate(c);
  return c;
}

void validate(const BrokerConfig& c) {
  parse_strategy(c.strategy);
  wire::parse_dtype(c.activation_dtype);
  if (c.min_stages < 1) throw Error("min_stages must be at least 1");
  if (c.context < 2) throw Error("context must be at least 2 tokens");
  if (c.max_sequences < 1) throw Error("max_sequences must be at least 1");
  if (c.max_inflight_steps < 0) throw Error("max_inflight_steps must be >= 0 (0 = auto)");
  if (c.kv_reserve_tokens < 0) throw Error("kv_reserve_tokens must be >= 0");
  if (c.max_message_bytes < 4096) throw Error("max_message_bytes must be at least 4096");
  if (c.heartbeat_ms < 10) throw Error("heartbeat_ms must be at least 10");
  if (c.node_timeout_ms < c.heartbeat_ms)
    throw Error("node_timeout_ms must be at least heartbeat_ms");
  std::set<std::string> names;
  for (const ModelEntry& m : c.models) {
    if (!names.insert(m.name).second) throw Error("model name '" + m.name + "' appears twice");
  }
  if (c.model != "auto" && !names.count(c.model)) {
    throw Error("model '" + c.model + "' is not among the configured models");
  }
}

}  // namespace lb
