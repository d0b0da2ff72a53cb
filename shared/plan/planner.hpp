#pragma once
// Splits a model's transformer layers into contiguous stages, one per node, in node order. Pure
// functions: the broker passes what it knows of the model and the nodes and gets a Plan back, or a
// PlanError saying how many bytes are missing and where.
//
// Memory a stage needs = its layers' weights + their KV cache (kv_bytes_per_token_per_layer *
// context_length * max_seqs per layer) + the embedding if it holds layer 0 + the head if it holds
// the last layer. Every strategy keeps every stage within its node's effective budget.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace lb {

// The model does not fit, or the planner's input cannot be planned at all (no layers, no included
// nodes, duplicate ids, a non-positive compute score where one is needed).
class PlanError : public Error {
 public:
  using Error::Error;
};

enum class Strategy {
  Memory,    // layers proportional to effective budget (the default)
  Uniform,   // equal layer counts
  Priority,  // fill the first nodes as full as they go, so as few nodes (hops) as possible
  Compute,   // layers proportional to compute score
  Balanced,  // minimise the slowest stage's time per token, exactly
};

// "memory", "uniform", "priority", "compute", "balanced".
const char* strategy_name(Strategy strategy);
// Inverse of strategy_name; throws lb::Error listing the valid names.
Strategy parse_strategy(std::string_view name);

struct ModelFootprint {
  std::vector<uint64_t> layer_weight_bytes;  // one entry per transformer layer
  uint64_t kv_bytes_per_token_per_layer = 0;
  uint64_t embedding_bytes = 0;  // held by the first stage
  uint64_t head_bytes =
      0;  // output norm + output matrix (the embedding again when tied); last stage
  uint64_t context_length = 0;
  uint64_t max_seqs = 1;
};

struct PlanNode {
  std::string id;
  uint64_t budget_bytes = 0;
  uint64_t cap_bytes = 0;      // 0 = no cap; otherwise the node holds at most min(budget, cap)
  double compute_score = 1.0;  // higher = faster, e.g. GFLOP/s
  bool included = true;        // excluded nodes get no layers
};

// min(budget, cap), or the budget when there is no cap.
uint64_t effective_budget(const PlanNode& node);
// kv_bytes_per_token_per_layer * context_length * max_seqs; throws PlanError on overflow.
uint64_t kv_bytes_per_layer(const ModelFootprint& model);

// One used node: layers [layer_begin, layer_end), never empty.
struct PlanStage {
  std::string node_id;
  size_t node_index = 0;  // position in the node list given to make_plan
  int layer_begin = 0;
  int layer_end = 0;
  bool has_embedding = false;  // the first stage
  bool has_head = false;       // the last stage (a single stage has both)
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t embedding_bytes = 0;  // 0 unless has_embedding
  uint64_t head_bytes = 0;       // 0 unless has_head
  uint64_t total_bytes = 0;      // weights + kv + embedding + head
  uint64_t budget_bytes = 0;     // the node's effective budget, >= total_bytes
};

struct Plan {
  Strategy strategy = Strategy::Memory;  // strategy_name(plan.strategy) for its name
  int n_layers = 0;
  std::vector<PlanStage> stages;  // in node order; ranges cover [0, n_layers) exactly
  std::vector<std::string>
      unused_nodes;  // ids of nodes given no layers, excluded ones too, in order
};

// Throws PlanError when no contiguous split fits every budget (the message says how many bytes
// are missing and on what) or the input is unusable. Nodes are the chain in order; any node may be
// left unused (0 layers), whatever the strategy. An included node with a zero budget is allowed
// and simply gets no layers.
Plan make_plan(const ModelFootprint& model, const std::vector<PlanNode>& nodes,
               Strategy strategy = Strategy::Memory);

// The plan as one line for `layerbus status`: a bar across the model's layers, `width` characters
// between the brackets (0 = one per layer), one letter per stage, then a legend, e.g.
// "[AAAABBBBBBBBCCCCCCCCCCCC]  A=a 0-3  B=b 4-11  C=c 12-23". Stages too small for the width may
// get no character in the bar; the legend always lists every stage.
std::string render_plan_bar(const Plan& plan, int width = 0);

}  // namespace lb
