// What `layerbus status` and `layerbus plan` show.
#include "broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "broker/plan_json.hpp"
#include "net/sockets.hpp"
#include "util/bytes.hpp"

namespace lb {

std::string Broker::status_json() const {
  nlohmann::json j;
  nlohmann::json nodes = nlohmann::json::array();
  for (const std::string& id : node_order_) {
    const NodeState& n = nodes_.at(id);
    nlohmann::json e{{"id", id},
                     {"host", n.info.host},
                     {"budget", n.info.budget},
                     {"used", n.last_heartbeat.weights + n.last_heartbeat.kv},
                     {"weights", n.last_heartbeat.weights},
                     {"kv", n.last_heartbeat.kv},
                     {"rss", n.last_heartbeat.rss},
                     {"cgroup_limit", n.last_heartbeat.cg_limit},
                     {"cgroup_usage", n.last_heartbeat.cg_usage},
                     {"compute", n.info.compute},
                     {"threads", n.info.threads},
                     {"cores", n.info.cores},
                     {"batches", n.last_heartbeat.batches},
                     {"overhead_us", n.last_heartbeat.overhead_us},
                     {"data", n.info.data},
                     {"state", n.lost     ? "lost"
                               : n.failed ? "failed"
                               : n.ready  ? "ready"
                                          : "registered"}};
    if (!n.error.empty()) e["error"] = n.error;
    if (const PlanStage* s = planned_stage(id)) e["layers"] = {s->layer_begin, s->layer_end};
    nodes.push_back(e);
  }
  j["nodes"] = nodes;
  j["serving"] = serving_;
  j["rebalancing"] = migration_.has_value();
  j["kv_reserve_tokens"] = kv_reserve_tokens_;
  j["steps"] = {{"sent", steps_sent_},
                {"looped", steps_looped_},
                {"rows", step_rows_sent_},
                {"rows_squared", step_rows_squared_},
                {"max_requests", step_max_requests_},
                {"max_inflight", plan_ ? max_inflight_steps() : 0}};
  if (last_migration_) {
    const MigrationReport& m = *last_migration_;
    j["last_migration"] = {
        {"epoch", m.epoch},       {"why", m.why},     {"drain_s", m.drain_s},  {"load_s", m.load_s},
        {"kv_bytes", m.kv_bytes}, {"moved", m.moved}, {"replayed", m.replayed}};
  }
  j["epoch"] = epoch_;
  if (plan_) {
    j["plan"] = plan_to_json(*plan_);
    j["model"] = {{"name", model().entry.name},
                  {"path", model().entry.path},
                  {"why", model_reason_},
                  {"layers", model().hp.n_layers}};
  } else {
    j["plan"] = nullptr;
    if (!plan_error_.empty()) j["plan_error"] = plan_error_;
  }
  nlohmann::json reqs = nlohmann::json::array();
  for (const auto& [id, r] : requests_) {
    reqs.push_back({{"id", id},
                    {"prompt_tokens", r.prompt.size()},
                    {"generated", r.generated.size()},
                    {"state", r.active ? "generating" : "waiting"}});
  }
  j["requests"] = reqs;
  const auto now = Clock::now();
  size_t recent = 0;
  for (auto t : recent_tokens_) recent += now - t < std::chrono::seconds(10);
  j["tokens_per_second"] = double(recent) / 10.0;
  return j.dump();
}

std::string Broker::plan_json(const wire::PlanQuery& q) const {
  std::vector<PlanNode> nodes;
  if (q.nodes.empty()) {
    nodes = plan_nodes();
  } else {
    for (size_t i = 0; i < q.nodes.size(); ++i) {
      PlanNode p;
      p.id = "node" + std::to_string(i + 1);
      p.budget_bytes = q.nodes[i];
      nodes.push_back(p);
    }
  }
  const Strategy strategy = parse_strategy(q.strategy.empty() ? cfg_.strategy : q.strategy);
  nlohmann::json j;
  j["model"] = model().entry.name;
  try {
    j["plan"] = plan_to_json(make_plan(planning_footprint(model_index_), nodes, strategy));
  } catch (const PlanError& e) {
    j["plan"] = nullptr;
    j["error"] = e.what();
  }
  return j.dump();
}

}  // namespace lb
