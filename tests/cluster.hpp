#pragma once
// Real broker and stage processes on 127.0.0.1 for multi-process tests. Every endpoint binds a
// port the kernel picks, so parallel runs never collide; every process started here is stopped
// here, by its pid (SIGTERM, then SIGKILL).
#include <chrono>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/broker_client.hpp"
#include "sys/process.hpp"
#include "test_support.hpp"

namespace lbtest {

struct StageSpec {
  std::string id;
  std::string memory;
  bool with_model = true;
  int threads = 1;
  std::string cgroup;  // a cgroup v2 directory to start the stage in (its memory counts there from
                       // the start)
  std::vector<std::string> args;  // more flags for this stage alone

  StageSpec(std::string id_, std::string memory_, bool with_model_ = true, int threads_ = 1,
            std::string cgroup_ = "")
      : id(std::move(id_)),
        memory(std::move(memory_)),
        with_model(with_model_),
        threads(threads_),
        cgroup(std::move(cgroup_)) {}
};

class Cluster {
 public:
  // An empty model: the broker serves what its --config lists, and stages fetch their layers.
  Cluster(const std::string& model, const std::vector<StageSpec>& stages,
          const std::vector<std::string>& broker_args = {},
          const std::vector<std::string>& stage_args = {})
      : dir_("cluster") {
    const std::string endpoint_file = dir_.file("broker.endpoint");
    std::vector<std::string> argv = {bin_path("layerbus-broker"),
                                     "--control",
                                     "tcp://127.0.0.1:*",
                                     "--collect",
                                     "tcp://127.0.0.1:*",
                                     "--min-stages",
                                     std::to_string(stages.size()),
                                     "--endpoint-file",
                                     endpoint_file,
                                     "--heartbeat-ms",
                                     "200",
                                     "--log-level",
                                     "debug"};
    if (!model.empty()) argv.insert(argv.end(), {"--model", model});
    argv.insert(argv.end(), broker_args.begin(), broker_args.end());
    broker_pid_ = lb::spawn_process(argv, dir_.file("broker.log"));
    for (int i = 0; i < 500 && broker_.empty(); ++i) {
      std::ifstream(endpoint_file) >> broker_;
      if (broker_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (broker_.empty()) throw std::runtime_error("broker did not start:\n" + log("broker"));
    model_ = model;
    stage_args_ = stage_args;
    for (const StageSpec& s : stages) add_stage(s);
  }

  // Starts one more stage, next in chain order (also while the cluster serves).
  void add_stage(const StageSpec& s) {
    std::vector<std::string> a = {bin_path("layerbus-stage"),
                                  "--broker",
                                  broker_,
                                  "--memory",
                                  s.memory,
                                  "--node-id",
                                  s.id,
                                  "--order",
                                  std::to_string(stage_pids_.size()),
                                  "--threads",
                                  std::to_string(s.threads),
                                  "--heartbeat-ms",
                                  "200"};
    if (s.with_model && !model_.empty()) a.insert(a.end(), {"--model", model_});
    a.insert(a.end(), stage_args_.begin(), stage_args_.end());
    a.insert(a.end(), s.args.begin(), s.args.end());
    if (!s.cgroup.empty()) {
      // The shell joins the cgroup, then becomes the stage (same pid).
      a.insert(a.begin(),
               {"/bin/sh", "-c", "echo $$ > '" + s.cgroup + "/cgroup.procs' && exec \"$@\"", "sh"});
    }
    stage_pids_[s.id] = lb::spawn_process(a, dir_.file(s.id + ".log"));
  }

  ~Cluster() {
    std::vector<int> pids;
    for (auto& [id, pid] : stage_pids_) pids.push_back(pid);
    lb::stop_processes(pids, std::chrono::seconds(5));
    lb::stop_processes({broker_pid_}, std::chrono::seconds(5));
  }

  const std::string& broker() const { return broker_; }
  int broker_pid() const { return broker_pid_; }
  int stage_pid(const std::string& id) const { return stage_pids_.at(id); }

  nlohmann::json status() {
    lb::BrokerClient c(broker_);
    lb::wire::StatusReply r;
    try {
      lb::wire::decode(c.ask(lb::wire::encode(lb::wire::StatusQuery{}), std::chrono::seconds(20)),
                       r);
    } catch (const lb::Error& e) {
      throw std::runtime_error(std::string(e.what()) + broker_log_end());
    }
    return nlohmann::json::parse(r.json);
  }

  // For errors about a broker that stopped answering: it usually says why at the end of its log.
  std::string broker_log_end() const {
    const std::string log = this->log("broker");
    return "; the broker log ends:\n" + log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  }

  // Waits until every stage holds its layers; throws with the logs when that does not happen.
  nlohmann::json wait_serving(std::chrono::seconds timeout = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      nlohmann::json j = status();
      if (j["serving"].get<bool>()) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string logs = log("broker");
    for (auto& [id, pid] : stage_pids_) logs += "\n--- " + id + "\n" + log(id);
    throw std::runtime_error("cluster not serving in time:\n" + logs);
  }

  std::string log(const std::string& name) const { return read_text(dir_.file(name + ".log")); }

 private:
  TempDir dir_;
  std::string model_;
  std::vector<std::string> stage_args_;
  std::string broker_;
  int broker_pid_ = 0;
  std::map<std::string, int> stage_pids_;
};

struct RemoteResult {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // of each token, as streamed
  std::string text;
  std::string reason;
};

// One request through the broker, greedy unless the message says otherwise.
inline RemoteResult generate_remote(const std::string& broker, const lb::wire::Generate& g) {
  lb::BrokerClient c(broker);
  c.send(lb::wire::encode(g));
  RemoteResult r;
  for (;;) {
    lb::wire::Envelope env = c.receive(std::chrono::seconds(120));
    if (env.type() == "accepted") {
      lb::wire::Accepted m;
      lb::wire::decode(env, m);
      r.prompt_tokens = m.prompt_tokens;
    } else if (env.type() == "token") {
      lb::wire::TokenMsg m;
      lb::wire::decode(env, m);
      r.logprobs.push_back(m.lp);
    } else if (env.type() == "done") {
      lb::wire::Done m;
      lb::wire::decode(env, m);
      r.tokens = m.tokens;
      r.text = m.text;
      r.reason = m.reason;
      return r;
    } else if (env.type() == "error") {
      lb::wire::ErrorMsg m;
      lb::wire::decode(env, m);
      throw std::runtime_error("broker error: " + m.msg);
    }
  }
}

// Several greedy requests at once, each on its own connection; their tokens in prompt order.
inline std::vector<std::vector<int32_t>> generate_all(const std::string& broker,
                                                      const std::vector<std::string>& prompts,
                                                      uint32_t n) {
  std::vector<std::future<RemoteResult>> futures;
  for (const std::string& p : prompts) {
    futures.push_back(std::async(std::launch::async, [&broker, p, n] {
      lb::wire::Generate g;
      g.prompt = p;
      g.n = n;
      return generate_remote(broker, g);
    }));
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& f : futures) out.push_back(f.get().tokens);
  return out;
}

}  // namespace lbtest
