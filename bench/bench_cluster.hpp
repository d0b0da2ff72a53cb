#pragma once
// Real broker and stage processes for the benchmarks, on 127.0.0.1 with kernel-chosen ports.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_models.hpp"
#include "net/broker_client.hpp"
#include "sys/process.hpp"

namespace lbbench {

inline const std::string kBin = LAYERBUS_BIN_DIR;

inline std::string log_dir() {
  const std::string dir = bench_dir() + "/logs";
  std::filesystem::create_directories(dir);
  return dir;
}

struct ClusterOptions {
  std::string model;
  std::vector<std::string> memory = {"8GiB"};  // one per stage
  int max_seqs = 8;
  int threads = 2;                // per stage
  bool stages_have_model = true;  // false: stages fetch their layers from the broker
  std::string log_level = "warn";
  std::vector<std::string> broker_args;  // added to the broker's command line
};

struct Cluster {
  std::string broker;
  std::vector<int> pids;
  ~Cluster() { lb::stop_processes(pids, std::chrono::seconds(5)); }
};

inline nlohmann::json status(const std::string& broker) {
  lb::BrokerClient client(broker);
  lb::wire::StatusReply r;
  lb::wire::decode(client.ask(lb::wire::encode(lb::wire::StatusQuery{}), std::chrono::seconds(60)),
                   r);
  return nlohmann::json::parse(r.json);
}

inline std::unique_ptr<Cluster> start(const ClusterOptions& o) {
  auto c = std::make_unique<Cluster>();
  const std::string dir = log_dir();
  const std::string ep = dir + "/broker.endpoint";
  std::filesystem::remove(ep);
  std::filesystem::remove(dir + "/broker.log");
  std::vector<std::string> broker = {kBin + "/layerbus-broker",
                                     "--control",
                                     "tcp://127.0.0.1:*",
                                     "--collect",
                                     "tcp://127.0.0.1:*",
                                     "--model",
                                     o.model,
                                     "--min-stages",
                                     std::to_string(o.memory.size()),
                                     "--context",
                                     "512",
                                     "--max-sequences",
                                     std::to_string(o.max_seqs),
                                     "--endpoint-file",
                                     ep,
                                     "--log-level",
                                     o.log_level};
  broker.insert(broker.end(), o.broker_args.begin(), o.broker_args.end());
  c->pids.push_back(lb::spawn_process(broker, dir + "/broker.log"));
  while (c->broker.empty()) {
    std::ifstream(ep) >> c->broker;
    if (!c->broker.empty()) break;
    if (!lb::process_alive(c->pids.front()))
      throw std::runtime_error("layerbus-broker exited at start-up: see " + dir + "/broker.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (size_t i = 0; i < o.memory.size(); ++i) {
    std::vector<std::string> args = {kBin + "/layerbus-stage",
                                     "--broker",
                                     c->broker,
                                     "--memory",
                                     o.memory[i],
                                     "--order",
                                     std::to_string(i),
                                     "--node-id",
                                     "bench-" + std::to_string(i),
                                     "--threads",
                                     std::to_string(o.threads),
                                     "--log-level",
                                     o.log_level,
                                     "--cache-dir",
                                     bench_dir() + "/stage-cache-" + std::to_string(i)};
    if (o.stages_have_model) args.insert(args.end(), {"--model", o.model});
    c->pids.push_back(lb::spawn_process(args, dir + "/stage.log"));
  }
  while (!status(c->broker)["serving"].get<bool>()) {
    for (int pid : c->pids) {
      if (!lb::process_alive(pid))
        throw std::runtime_error("a cluster process exited before serving: see the logs in " + dir);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return c;
}

struct Stream {
  int64_t tokens = 0;
  double decode_s = 0;
  int64_t decode_steps = 0;
  std::vector<std::chrono::steady_clock::time_point> arrivals;  // one per token, as received
};

inline Stream generate(const std::string& broker, const std::string& prompt, uint32_t n) {
  lb::BrokerClient c(broker);
  lb::wire::Generate g;
  g.prompt = prompt;
  g.n = n;
  c.send(lb::wire::encode(g));
  Stream s;
  for (;;) {
    lb::wire::Envelope env = c.receive(std::chrono::seconds(600));
    if (env.type() == "token") s.arrivals.push_back(std::chrono::steady_clock::now());
    if (env.type() == "done") {
      lb::wire::Done d;
      lb::wire::decode(env, d);
      s.tokens = int64_t(d.tokens.size());
      s.decode_s = d.decode_s;
      s.decode_steps = int64_t(d.decode_steps);
      return s;
    }
    if (env.type() == "error") throw std::runtime_error("generation failed");
  }
}

}  // namespace lbbench
