#pragma once
// The broker's configuration: conf/broker.yaml, every key overridable by a command-line flag.
// Every key is documented in the README's "Broker configuration" table.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lb {

struct ModelEntry {
  std::string name;
  std::string path;
};

struct NodeOverride {
  uint64_t cap = 0;  // bytes, 0 = none
  bool exclude = false;
};

struct BrokerConfig {
  std::string control = "tcp://127.0.0.1:5555";  // ROUTER: stages and clients
  std::string collect = "tcp://127.0.0.1:5556";  // PULL: results from the last stage
  std::string advertise_host = "127.0.0.1";      // host stages use for collect when bound to *
  std::vector<ModelEntry> models;
  std::string model = "auto";  // a name from models, or auto: the largest that fits
  std::string strategy = "memory";
  int min_stages = 1;      // stages to wait for before the first plan
  int64_t context = 2048;  // tokens per request (prompt + generated)
  int max_sequences = 8;   // requests generating at once (more wait their turn)
  // Steps in the chain at once; 0 = one per distinct stage host (auto).
  int max_inflight_steps = 0;
  // KV-cache positions per layer the planner reserves on each stage; 0 = context * max_sequences
  // (never short). Less plans more layers per stage; when caches then grow past a stage's
  // high-water mark, the stage reports pressure and the broker re-plans with what is really used.
  int64_t kv_reserve_tokens = 0;
  bool auto_rebalance = false;  // a stage registering while serving is offered layers at once
  // On a move, KV caches go with their layers from stage to stage; false rebuilds them by
  // replaying every request's tokens through the new plan.
  bool kv_transfer = true;
  // The last stage sends each sampled token straight on to the head as the request's next step
  // (and to the broker, which streams it); false sends every step from the broker.
  bool loop_steps = true;
  int corrupt_chunks = 0;  // testing aid (flag only): corrupt the first N model chunks sent
  int drop_kv_parts = 0;   // testing aid (flag only): drop the first N KV parts it forwards
  std::string activation_dtype = "f32";  // f32 (exact) or f16 (half the bytes per hop)
  uint64_t max_message_bytes = 64ull << 20;
  int heartbeat_ms = 1000;
  int node_timeout_ms = 10000;
  std::map<std::string, NodeOverride> nodes;
  std::string log_level = "info";
  std::string endpoint_file;  // when set, the bound control endpoint is written here
};

// Reads a YAML file over the defaults; throws lb::Error naming the file and key for unknown keys,
// wrong types and bad values. Relative model paths are taken relative to the file's folder.
BrokerConfig load_broker_config(const std::string& path);
// Checks values that flags may also set; throws lb::Error naming the key.
void validate(const BrokerConfig& c);

}  // namespace lb
