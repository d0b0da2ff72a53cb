#include "plan/planner.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "util/bytes.hpp"

namespace lb {

const char* strategy_name(Strategy strategy) {
  switch (strategy) {
    case Strategy::Memory:
      return "memory";
    case Strategy::Uniform:
      return "uniform";
    case Strategy::Priority:
      return "priority";
    case Strategy::Compute:
      return "compute";
    case Strategy::Balanced:
      return "balanced";
  }
  return "?";
}

Strategy parse_strategy(std::string_view name) {
  for (Strategy s : {Strategy::Memory, Strategy::Uniform, Strategy::Priority, Strategy::Compute,
                     Strategy::Balanced}) {
    if (name == strategy_name(s)) return s;
  }
  throw Error("unknown plan strategy \"" + std::string(name) +
              "\" (use memory, uniform, priority, compute or balanced)");
}

uint64_t effective_budget(const PlanNode& node) {
  return node.cap_bytes == 0 ? node.budget_bytes : std::min(node.budget_bytes, node.cap_bytes);
}

namespace {

uint64_t checked_mul(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw PlanError(std::string(what) + " overflows 64 bits");
  return r;
}

uint64_t checked_add(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw PlanError(std::string(what) + " overflows 64 bits");
  return r;
}

std::string bytes_exact(uint64_t bytes) {
  return format_bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

// The model's byte counts, arranged so the memory a stage needs is O(1) to get. Built with checked
// arithmetic so that need() of any range, at most the whole model's total, cannot overflow.
struct Sizes {
  int n = 0;
  std::vector<uint64_t> prefix;  // prefix[i] = weight bytes of layers [0, i)
  uint64_t kv = 0;               // KV-cache bytes per layer
  uint64_t embedding = 0, head = 0;

  explicit Sizes(const ModelFootprint& m)
      : n(static_cast<int>(m.layer_weight_bytes.size())),
        kv(kv_bytes_per_layer(m)),
        embedding(m.embedding_bytes),
        head(m.head_bytes) {
    prefix.push_back(0);
    for (uint64_t w : m.layer_weight_bytes)
      prefix.push_back(checked_add(prefix.back(), w, "model size"));
    uint64_t total = checked_add(prefix.back(), checked_mul(kv, n, "KV-cache size"), "model size");
    checked_add(checked_add(total, embedding, "model size"), head, "model size");
  }
  uint64_t weights(int b, int e) const { return prefix[e] - prefix[b]; }
  // Bytes a stage holding layers [b, e) needs; it holds the embedding/head when it starts/ends the
  // model. Grows with e and shrinks with b, which pack_greedy and best_split rely on.
  uint64_t need(int b, int e) const {
    if (b == e) return 0;
    return weights(b, e) + kv * static_cast<uint64_t>(e - b) + (b == 0 ? embedding : 0) +
           (e == n ? head : 0);
  }
};

// Gives each node in turn as many layers as fit. Returns layer counts per node; they sum to less
// than n when nothing fits. Exact as a feasibility test: since need() is monotone, ending a stage
// as late as possible never leaves later nodes more to do than any other choice would.
std::vector<int> pack_greedy(const Sizes& s, const std::vector<uint64_t>& budget) {
  std::vector<int> counts(budget.size(), 0);
  int b = 0;
  for (size_t k = 0; k < budget.size() && b < s.n; ++k) {
    int e = b;
    while (e < s.n && s.need(b, e + 1) <= budget[k]) ++e;
    counts[k] = e - b;
    b = e;
  }
  return counts;
}

// Exact search over every contiguous split that fits (dynamic programming over node index x layer
// prefix). stage_cost(k, b, e) scores node k taking layers [b, e); b == e means node k is unused.
// Minimises the sum of the costs (or their max when `bottleneck`), then their sum, so ties in the
// max go to the split with less total cost. Feasibility was checked, so a split always exists.
template <typename StageCost>
std::vector<int> best_split(const Sizes& s, const std::vector<uint64_t>& budget, bool bottleneck,
                            StageCost stage_cost) {
  const double inf = std::numeric_limits<double>::infinity();
  struct Cell {
    double agg, sum;
    int from;  // layer where this node's stage begins
  };
  const size_t m = budget.size();
  std::vector<std::vector<Cell>> dp(m + 1, std::vector<Cell>(s.n + 1, Cell{inf, inf, -1}));
  dp[0][0] = Cell{0, 0, 0};
  for (size_t k = 0; k < m; ++k) {
    for (int b = 0; b <= s.n; ++b) {
      const Cell& at = dp[k][b];
      if (at.agg == inf) continue;
      for (int e = b; e <= s.n && s.need(b, e) <= budget[k]; ++e) {
        const double c = stage_cost(k, b, e);
        const double agg = bottleneck ? std::max(at.agg, c) : at.agg + c;
        const double sum = at.sum + c;
        Cell& next = dp[k + 1][e];
        if (agg < next.agg || (agg == next.agg && sum < next.sum)) next = Cell{agg, sum, b};
      }
    }
  }
  std::vector<int> counts(m, 0);
  for (int k = static_cast<int>(m), e = s.n; k > 0; --k) {
    const int b = dp[k][e].from;
    counts[k - 1] = e - b;
    e = b;
  }
  return counts;
}

// Largest-remainder rounding of n into shares proportional to weight (ties to the earlier node),
// then every node with a positive weight left at zero takes one layer from the node furthest
// above its share, while some node has two or more: each stage that should exist gets a layer.
std::vector<int> proportional_target(int n, const std::vector<double>& weight) {
  const size_t m = weight.size();
  double total = 0;
  for (double w : weight) total += w;
  std::vector<double> share(m);
  std::vector<int> counts(m, 0);
  int given = 0;
  for (size_t k = 0; k < m; ++k) {
    share[k] = total > 0 ? n * (weight[k] / total) : 0;
    counts[k] = std::min(n - given, static_cast<int>(std::floor(share[k])));
    given += counts[k];
  }
  std::vector<size_t> order;
  for (size_t k = 0; k < m; ++k) {
    if (weight[k] > 0) order.push_back(k);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return share[a] - counts[a] > share[b] - counts[b]; });
  for (size_t i = 0; given < n && !order.empty(); ++i, ++given) ++counts[order[i % order.size()]];

  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return share[a] > share[b]; });
  for (size_t starved : order) {
    if (counts[starved] > 0) continue;
    size_t donor = m;
    for (size_t k = 0; k < m; ++k) {
      if (counts[k] >= 2 && (donor == m || counts[k] - share[k] > counts[donor] - share[donor]))
        donor = k;
    }
    if (donor == m) break;
    --counts[donor];
    ++counts[starved];
  }
  return counts;
}

std::string describe_node(const PlanNode& node) {
  std::string d = "'" + node.id + "'";
  if (node.cap_bytes != 0 && node.cap_bytes < node.budget_bytes) {
    d += " (cap " + format_bytes(node.cap_bytes) + ")";
  }
  return d;
}

// Why pack_greedy could not place every layer, most fundamental reason first, with the missing
// bytes in the message.
[[noreturn]] void explain_infeasible(const Sizes& s, const std::vector<PlanNode>& nodes,
                                     const std::vector<uint64_t>& budget, int placed) {
  uint64_t have = 0;
  size_t included = 0, largest = 0;
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (!nodes[k].included) continue;
    ++included;
    have = have > UINT64_MAX - budget[k] ? UINT64_MAX : have + budget[k];
    if (budget[k] > budget[largest] || !nodes[largest].included) largest = k;
  }
  const uint64_t total = s.need(0, s.n);
  if (total > have) {
    throw PlanError("model needs " + format_bytes(total) + " (weights " +
                    format_bytes(s.weights(0, s.n)) + ", KV cache " +
                    format_bytes(s.kv * static_cast<uint64_t>(s.n)) + ", embedding " +
                    format_bytes(s.embedding) + ", head " + format_bytes(s.head) + ") but the " +
                    std::to_string(included) + " included node(s) have " + format_bytes(have) +
                    " in total: " + bytes_exact(total - have) + " missing");
  }
  const uint64_t room = budget[largest];
  const std::string but = " but the largest included node, " + describe_node(nodes[largest]) +
                          ", has " + format_bytes(room) + ": ";
  int big = 0;
  for (int i = 1; i < s.n; ++i) {
    if (s.weights(i, i + 1) > s.weights(big, big + 1)) big = i;
  }
  const uint64_t layer_need = s.weights(big, big + 1) + s.kv;
  if (layer_need > room) {
    throw PlanError("layer " + std::to_string(big) + " alone needs " + format_bytes(layer_need) +
                    " (weights " + format_bytes(s.weights(big, big + 1)) + " + KV cache " +
                    format_bytes(s.kv) + ")" + but + bytes_exact(layer_need - room) + " missing");
  }
  if (s.need(0, 1) > room) {
    throw PlanError("the first stage needs " + format_bytes(s.need(0, 1)) + " for the embedding (" +
                    format_bytes(s.embedding) + ") plus layer 0 (" +
                    format_bytes(s.need(0, 1) - s.embedding - (s.n == 1 ? s.head : 0)) + ")" +
                    (s.n == 1 ? " plus the head (" + format_bytes(s.head) + ")" : "") + but +
                    bytes_exact(s.need(0, 1) - room) + " missing");
  }
  if (s.need(s.n - 1, s.n) > room) {
    throw PlanError("the last stage needs " + format_bytes(s.need(s.n - 1, s.n)) + " for layer " +
                    std::to_string(s.n - 1) + " (" + format_bytes(s.need(s.n - 1, s.n) - s.head) +
                    ") plus the head (" + format_bytes(s.head) + ")" + but +
                    bytes_exact(s.need(s.n - 1, s.n) - room) + " missing");
  }
  throw PlanError(
      "the model fits in total but not as contiguous stages in node order: filling "
      "each node as full as possible leaves layers " +
      std::to_string(placed) + "-" + std::to_string(s.n - 1) + " (" +
      bytes_exact(s.need(placed, s.n)) + " with the head) with no node to hold them");
}

Plan build_plan(const Sizes& s, const std::vector<PlanNode>& nodes,
                const std::vector<uint64_t>& budget, const std::vector<int>& counts,
                Strategy strategy) {
  Plan plan;
  plan.strategy = strategy;
  plan.n_layers = s.n;
  int b = 0;
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (counts[k] == 0) {
      plan.unused_nodes.push_back(nodes[k].id);
      continue;
    }
    PlanStage st;
    st.node_id = nodes[k].id;
    st.node_index = k;
    st.layer_begin = b;
    st.layer_end = b + counts[k];
    st.has_embedding = b == 0;
    st.has_head = st.layer_end == s.n;
    st.weight_bytes = s.weights(b, st.layer_end);
    st.kv_bytes = s.kv * static_cast<uint64_t>(counts[k]);
    st.embedding_bytes = st.has_embedding ? s.embedding : 0;
    st.head_bytes = st.has_head ? s.head : 0;
    st.total_bytes = s.need(b, st.layer_end);
    st.budget_bytes = budget[k];
    plan.stages.push_back(st);
    b = st.layer_end;
  }
  return plan;
}

}  // namespace

uint64_t kv_bytes_per_layer(const ModelFootprint& model) {
  return checked_mul(
      checked_mul(model.kv_bytes_per_token_per_layer, model.context_length, "KV-cache size"),
      model.max_seqs, "KV-cache size");
}

Plan make_plan(const ModelFootprint& model, const std::vector<PlanNode>& nodes, Strategy strategy) {
  if (model.layer_weight_bytes.empty()) throw PlanError("the model has no layers to place");
  if (model.layer_weight_bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max() / 2)) {
    throw PlanError("the model has too many layers");
  }
  std::set<std::string> ids;
  bool any_included = false;
  for (const PlanNode& node : nodes) {
    if (!ids.insert(node.id).second) throw PlanError("node id '" + node.id + "' appears twice");
    any_included |= node.included;
    const bool by_compute = strategy == Strategy::Compute || strategy == Strategy::Balanced;
    if (by_compute && node.included &&
        !(node.compute_score > 0 && std::isfinite(node.compute_score))) {
      throw PlanError("node '" + node.id + "' has compute score " +
                      std::to_string(node.compute_score) + "; the " + strategy_name(strategy) +
                      " strategy needs a positive score on every included node");
    }
  }
  if (!any_included) throw PlanError("no included nodes to place the model on");

  const Sizes s(model);
  // Excluded nodes count as nodes with no room: every search below then leaves them unused.
  std::vector<uint64_t> budget;
  for (const PlanNode& node : nodes) budget.push_back(node.included ? effective_budget(node) : 0);

  const std::vector<int> packed = pack_greedy(s, budget);
  int placed = 0;
  for (int c : packed) placed += c;
  if (placed < s.n) explain_infeasible(s, nodes, budget, placed);
  if (strategy == Strategy::Priority) return build_plan(s, nodes, budget, packed, strategy);

  if (strategy == Strategy::Balanced) {
    // Time per token of a stage: its weight bytes / the node's score. Decoding reads every weight
    // once per token, so bytes are the work; KV reads and the hop between stages are left out.
    auto time = [&](size_t k, int b, int e) {
      return static_cast<double>(s.weights(b, e)) / nodes[k].compute_score;
    };
    return build_plan(s, nodes, budget, best_split(s, budget, true, time), strategy);
  }

  // Proportional strategies: round the proportional shares to a target, then take the split that
  // fits every budget with the least squared distance to it (the target itself when it fits).
  std::vector<double> weight;
  for (size_t k = 0; k < nodes.size(); ++k) {
    double w = 0;
    if (budget[k] > 0) {
      if (strategy == Strategy::Memory) w = static_cast<double>(budget[k]);
      if (strategy == Strategy::Uniform) w = 1;
      if (strategy == Strategy::Compute) w = nodes[k].compute_score;
    }
    weight.push_back(w);
  }
  const std::vector<int> target = proportional_target(s.n, weight);
  auto distance = [&](size_t k, int b, int e) {
    const double d = (e - b) - target[k];
    return d * d;
  };
  return build_plan(s, nodes, budget, best_split(s, budget, false, distance), strategy);
}

}  // namespace lb
