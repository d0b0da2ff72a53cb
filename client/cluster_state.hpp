#pragma once
// What `layerbus up` started, so `layerbus down` and the other commands can find it.
#include <optional>
#include <string>
#include <vector>

namespace lb::client {

struct ClusterState {
  int up_pid = 0;         // the `layerbus up` process supervising the cluster
  std::string broker;     // control endpoint
  std::vector<int> pids;  // broker and stages
  std::string log_dir;
};

// $LAYERBUS_STATE, else $XDG_RUNTIME_DIR/layerbus/cluster.json, else
// /tmp/layerbus-UID/cluster.json.
std::string default_state_path();
std::optional<ClusterState> read_cluster_state(const std::string& path);

// The broker endpoint: --broker, else $LAYERBUS_BROKER, else the cluster `layerbus up` started,
// else tcp://127.0.0.1:5555.
std::string resolve_broker(const std::string& flag);
void write_cluster_state(const std::string& path, const ClusterState& s);
// Removes the record at path when it is the one up_pid wrote: another `up` may have recorded its
// own cluster there since (after this one's file was deleted), and that record must stay.
void remove_own_cluster_state(const std::string& path, int up_pid);

}  // namespace lb::client
