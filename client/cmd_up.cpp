// `layerbus up` starts a broker and stages on this machine and supervises them until Ctrl-C;
// `layerbus down` stops a cluster `up` started.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster_state.hpp"
#include "commands.hpp"
#include "compute/thread_pool.hpp"
#include "net/broker_client.hpp"
#include "sys/process.hpp"
#include "util/bytes.hpp"

namespace lb::client {

namespace {

namespace fs = std::filesystem;

struct UpArgs {
  std::string model, memory, strategy = "memory", control, state, log_dir, dtype = "f32";
  int stages = 3;
  int threads = 0;
  int64_t context = 2048;
  int max_sequences = 8;
};

fs::path exe_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path();
}

std::string tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "    " + all[i] + "\n";
  return out;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t c = s.find(',', start);
    out.push_back(s.substr(start, c - start));
    if (c == std::string::npos) return out;
    start = c + 1;
  }
}

int run_up(const UpArgs& a) {
  const std::string state_path = a.state.empty() ? default_state_path() : a.state;
  if (auto old = read_cluster_state(state_path); old && process_alive(old->up_pid)) {
    throw Error("a cluster started by `layerbus up` (pid " + std::to_string(old->up_pid) +
                ") is running; stop it with `layerbus down` or use --state");
  }
  std::vector<std::string> budgets = split_commas(a.memory);
  if (budgets.size() == 1) budgets.assign(size_t(a.stages), budgets[0]);
  if (int(budgets.size()) != a.stages) {
    throw Error("--memory lists " + std::to_string(budgets.size()) + " budgets for " +
                std::to_string(a.stages) + " stages");
  }
  for (const std::string& b : budgets) parse_bytes(b);
  const std::string log_dir =
      a.log_dir.empty() ? (fs::path(state_path).parent_path() / "logs").string() : a.log_dir;
  fs::create_directories(log_dir);
  const fs::path bin = exe_dir();
  const std::string endpoint_file = (fs::path(log_dir) / "broker.endpoint").string();
  fs::remove(endpoint_file);

  // Block the signals we wait for, so they are taken by sigtimedwait below, never lost.
  sigset_t waitset;
  sigemptyset(&waitset);
  sigaddset(&waitset, SIGINT);
  sigaddset(&waitset, SIGTERM);
  sigaddset(&waitset, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &waitset, nullptr);

  std::vector<int> pids;
  const std::string model = fs::absolute(a.model).string();
  pids.push_back(spawn_process(
      {(bin / "layerbus-broker").string(), "--control",
       a.control.empty() ? "tcp://127.0.0.1:*" : a.control, "--collect", "tcp://127.0.0.1:*",
       "--model", model, "--min-stages", std::to_string(a.stages), "--strategy", a.strategy,
       "--context", std::to_string(a.context), "--max-sequences", std::to_string(a.max_sequences),
       "--dtype", a.dtype, "--endpoint-file", endpoint_file},
      (fs::path(log_dir) / "broker.log").string(), true));
  std::string broker;
  try {
    const auto started_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (broker.empty()) {
      std::ifstream(endpoint_file) >> broker;
      if (!broker.empty()) break;
      if (!process_alive(pids[0]) || std::chrono::steady_clock::now() > started_by) {
        throw Error("the broker did not start:\n" +
                    tail((fs::path(log_dir) / "broker.log").string(), 10));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const int threads = a.threads > 0 ? a.threads : default_thread_count();
    for (int i = 0; i < a.stages; ++i) {
      const std::string id = "stage-" + std::to_string(i + 1);
      pids.push_back(
          spawn_process({(bin / "layerbus-stage").string(), "--broker", broker, "--memory",
                         budgets[size_t(i)], "--model", model, "--node-id", id, "--order",
                         std::to_string(i), "--threads", std::to_string(threads)},
                        (fs::path(log_dir) / (id + ".log")).string(), true));
    }
    // Wait until every stage has loaded its layers.
    BrokerClient client(broker);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    for (;;) {
      wire::StatusReply r;
      wire::decode(client.ask(wire::encode(wire::StatusQuery{}), std::chrono::seconds(30)), r);
      const nlohmann::json j = nlohmann::json::parse(r.json);
      if (j["serving"].get<bool>()) {
        std::printf("broker    %s   (logs in %s)\n", broker.c_str(), log_dir.c_str());
        std::printf("model     %s\n", j["model"]["why"].get<std::string>().c_str());
        std::printf("plan      %s\n", j["plan"]["bar"].get<std::string>().c_str());
        for (const auto& n : j["nodes"]) {
          std::printf("stage     %-10s data %-24s budget %-9s layers %d-%d\n",
                      n["id"].get<std::string>().c_str(), n["data"].get<std::string>().c_str(),
                      format_bytes(n["budget"]).c_str(),
                      n.contains("layers") ? n["layers"][0].get<int>() : -1,
                      n.contains("layers") ? n["layers"][1].get<int>() - 1 : -1);
        }
        break;
      }
      if (j.contains("plan_error")) throw Error("no plan: " + j["plan_error"].get<std::string>());
      for (int pid : pids) {
        if (!process_alive(pid))
          throw Error("a process of the cluster exited early (see " + log_dir + ")");
      }
      if (std::chrono::steady_clock::now() > deadline)
        throw Error("the stages did not get ready in time (see " + log_dir + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } catch (...) {
    stop_processes(pids);
    throw;
  }
  write_cluster_state(state_path, ClusterState{int(::getpid()), broker, pids, log_dir});
  std::printf("cluster up: Ctrl-C here or `layerbus down` stops it\n");
  std::fflush(stdout);

  int exit_code = 0;
  for (;;) {
    siginfo_t info;
    const int sig = ::sigwaitinfo(&waitset, &info);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGCHLD) {
      // A stage may leave on its own (drained); the cluster ends only with its broker.
      if (!process_alive(pids[0])) {
        std::fprintf(stderr, "layerbus up: the broker exited; stopping the stages (see %s)\n",
                     log_dir.c_str());
        exit_code = 1;
        break;
      }
    }
  }
  stop_processes(pids);
  remove_own_cluster_state(state_path, int(::getpid()));
  std::printf("cluster stopped\n");
  return exit_code;
}

}  // namespace

void add_up(CLI::App& app) {
  auto a = std::make_shared<UpArgs>();
  CLI::App* cmd =
      app.add_subcommand("up", "Start a broker and stages on this machine (until Ctrl-C)");
  cmd->add_option("--model", a->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--stages", a->stages, "Number of stages")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--memory", a->memory,
                  "Budget per stage, comma-separated in chain order (one value: all)")
      ->required();
  cmd->add_option("--strategy", a->strategy, "memory | uniform | priority | compute | balanced")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads per stage (default: the cores available)");
  cmd->add_option("--context", a->context, "Context length per request")->capture_default_str();
  cmd->add_option("--max-sequences", a->max_sequences, "Requests generating at once")
      ->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "Activation type on the wire: f32 | f16")
      ->capture_default_str();
  cmd->add_option("--control", a->control,
                  "Broker control endpoint (default: a free port on 127.0.0.1)");
  cmd->add_option(
      "--state", a->state,
      "Where to record the cluster (default: $LAYERBUS_STATE or a per-user runtime file)");
  cmd->add_option("--log-dir", a->log_dir, "Where processes log (default: beside the state file)");
  cmd->callback([a] {
    const int code = run_up(*a);
    if (code != 0) std::exit(code);
  });
}

void add_down(CLI::App& app) {
  auto state = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("down", "Stop the cluster `layerbus up` started");
  cmd->add_option("--state", *state, "The cluster's state file (default: as for up)");
  cmd->callback([state] {
    const std::string path = state->empty() ? default_state_path() : *state;
    auto s = read_cluster_state(path);
    if (!s) throw Error("no cluster recorded at " + path);
    if (process_alive(s->up_pid)) {
      ::kill(s->up_pid, SIGTERM);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (process_alive(s->up_pid) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    // Whatever `up` could not stop (it was killed, say) is stopped here.
    std::vector<int> left;
    for (int pid : s->pids) {
      if (process_alive(pid)) left.push_back(pid);
    }
    stop_processes(left);
    fs::remove(path);
    std::printf("cluster stopped\n");
  });
}

}  // namespace lb::client
