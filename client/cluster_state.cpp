#include "cluster_state.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/error.hpp"

namespace lb::client {

std::string default_state_path() {
  if (const char* p = std::getenv("LAYERBUS_STATE"); p && *p) return p;
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run)
    return std::string(run) + "/layerbus/cluster.json";
  return "/tmp/layerbus-" + std::to_string(::getuid()) + "/cluster.json";
}

std::optional<ClusterState> read_cluster_state(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    ClusterState s;
    s.up_pid = j.at("up_pid").get<int>();
    s.broker = j.at("broker").get<std::string>();
    s.pids = j.at("pids").get<std::vector<int>>();
    s.log_dir = j.value("log_dir", "");
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a layerbus cluster state file (" + e.what() + ")");
  }
}

std::string resolve_broker(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("LAYERBUS_BROKER"); env && *env) return env;
  if (auto state = read_cluster_state(default_state_path())) return state->broker;
  return "tcp://127.0.0.1:5555";
}

void write_cluster_state(const std::string& path, const ClusterState& s) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const nlohmann::json j{
      {"up_pid", s.up_pid}, {"broker", s.broker}, {"pids", s.pids}, {"log_dir", s.log_dir}};
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << j.dump(2) << "\n";
  std::filesystem::rename(tmp, path);
}

void remove_own_cluster_state(const std::string& path, int up_pid) {
  std::optional<ClusterState> s;
  try {
    s = read_cluster_state(path);
  } catch (const Error&) {
    return;  // not a record of ours either
  }
  if (s && s->up_pid == up_pid) std::filesystem::remove(path);
}

}  // namespace lb::client
