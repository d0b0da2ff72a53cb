#include "broker/plan_json.hpp"

#include <algorithm>

namespace lb {

nlohmann::json plan_to_json(const Plan& p) {
  nlohmann::json stages = nlohmann::json::array();
  for (const PlanStage& s : p.stages) {
    stages.push_back({{"node", s.node_id},
                      {"begin", s.layer_begin},
                      {"end", s.layer_end},
                      {"embedding", s.has_embedding},
                      {"head", s.has_head},
                      {"weight_bytes", s.weight_bytes},
                      {"kv_bytes", s.kv_bytes},
                      {"total_bytes", s.total_bytes},
                      {"budget_bytes", s.budget_bytes}});
  }
  return {{"strategy", strategy_name(p.strategy)},
          {"n_layers", p.n_layers},
          {"stages", stages},
          {"unused", p.unused_nodes},
          {"bar", render_plan_bar(p, std::min(p.n_layers, 60))}};
}

}  // namespace lb
