// The layer planner: every strategy on heterogeneous nodes, budgets (caps, KV cache, embedding,
// head), infeasible cases and their messages, balanced checked against brute force, plus the byte
// parser/formatter and the status bar.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "plan/planner.hpp"
#include "util/bytes.hpp"
#include "util/error.hpp"

namespace {

using lb::ModelFootprint;
using lb::Plan;
using lb::PlanError;
using lb::PlanNode;
using lb::Strategy;

constexpr uint64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
const Strategy kAll[] = {Strategy::Memory, Strategy::Uniform, Strategy::Priority, Strategy::Compute,
                         Strategy::Balanced};

ModelFootprint model(int layers, uint64_t layer_bytes, uint64_t embedding = 0, uint64_t head = 0) {
  ModelFootprint m;
  m.layer_weight_bytes.assign(layers, layer_bytes);
  m.embedding_bytes = embedding;
  m.head_bytes = head;
  return m;
}

PlanNode node(const std::string& id, uint64_t budget, double score = 1.0, uint64_t cap = 0,
              bool included = true) {
  PlanNode n;
  n.id = id;
  n.budget_bytes = budget;
  n.cap_bytes = cap;
  n.compute_score = score;
  n.included = included;
  return n;
}

// Layers per input node (0 when unused).
std::vector<int> counts(const Plan& plan, size_t n_nodes) {
  std::vector<int> c(n_nodes, 0);
  for (const auto& st : plan.stages) c[st.node_index] = st.layer_end - st.layer_begin;
  return c;
}

// Everything a plan promises, whatever the strategy.
void expect_valid(const Plan& plan, const ModelFootprint& m, const std::vector<PlanNode>& nodes) {
  const int n = static_cast<int>(m.layer_weight_bytes.size());
  const uint64_t kv = lb::kv_bytes_per_layer(m);
  ASSERT_EQ(plan.n_layers, n);
  ASSERT_FALSE(plan.stages.empty());
  int next = 0;
  size_t last_index = 0;
  std::vector<bool> used(nodes.size(), false);
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const auto& st = plan.stages[i];
    ASSERT_LT(st.node_index, nodes.size());
    if (i > 0) {
      EXPECT_GT(st.node_index, last_index) << "stages out of node order";
    }
    last_index = st.node_index;
    used[st.node_index] = true;
    const PlanNode& nd = nodes[st.node_index];
    EXPECT_TRUE(nd.included);
    EXPECT_EQ(st.node_id, nd.id);
    EXPECT_EQ(st.layer_begin, next);
    EXPECT_LT(st.layer_begin, st.layer_end);
    next = st.layer_end;
    uint64_t w = 0;
    for (int l = st.layer_begin; l < st.layer_end; ++l) w += m.layer_weight_bytes[l];
    EXPECT_EQ(st.weight_bytes, w);
    EXPECT_EQ(st.kv_bytes, kv * (st.layer_end - st.layer_begin));
    EXPECT_EQ(st.has_embedding, i == 0);
    EXPECT_EQ(st.has_head, i + 1 == plan.stages.size());
    EXPECT_EQ(st.embedding_bytes, st.has_embedding ? m.embedding_bytes : 0);
    EXPECT_EQ(st.head_bytes, st.has_head ? m.head_bytes : 0);
    EXPECT_EQ(st.total_bytes, st.weight_bytes + st.kv_bytes + st.embedding_bytes + st.head_bytes);
    EXPECT_EQ(st.budget_bytes, lb::effective_budget(nd));
    EXPECT_LE(st.total_bytes, st.budget_bytes) << "stage on " << nd.id << " over budget";
  }
  EXPECT_EQ(next, n);
  std::vector<std::string> unused;
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (!used[k]) unused.push_back(nodes[k].id);
  }
  EXPECT_EQ(plan.unused_nodes, unused);
}

Plan plan_ok(const ModelFootprint& m, const std::vector<PlanNode>& nodes, Strategy s) {
  Plan p = lb::make_plan(m, nodes, s);
  expect_valid(p, m, nodes);
  return p;
}

std::string plan_error(const ModelFootprint& m, const std::vector<PlanNode>& nodes,
                       Strategy s = Strategy::Memory) {
  try {
    lb::make_plan(m, nodes, s);
  } catch (const PlanError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a PlanError";
  return "";
}

// ---------------------------------------------------------------- strategies

TEST(Planner, MemoryIsProportionalToBudget) {
  const auto m = model(24, 10 * MiB);
  const std::vector<PlanNode> nodes = {node("a", 1 * GiB), node("b", 2 * GiB), node("c", 3 * GiB)};
  const Plan p = plan_ok(m, nodes, Strategy::Memory);
  EXPECT_EQ(counts(p, 3), (std::vector<int>{4, 8, 12}));
  EXPECT_EQ(p.strategy, Strategy::Memory);
  EXPECT_STREQ(lb::strategy_name(p.strategy), "memory");
  EXPECT_TRUE(p.unused_nodes.empty());
}

TEST(Planner, MemoryIsTheDefault) {
  const auto m = model(24, 10 * MiB);
  const std::vector<PlanNode> nodes = {node("a", 3 * GiB), node("b", 1 * GiB)};
  EXPECT_EQ(counts(lb::make_plan(m, nodes), 2), (std::vector<int>{18, 6}));
}

TEST(Planner, MemoryUsesLargestRemainder) {
  // Shares 10/3 each: the one leftover layer goes to the earliest; 7 * (2,3,5)/10 = 1.4, 2.1, 3.5.
  EXPECT_EQ(counts(plan_ok(model(10, 1), {node("a", 100), node("b", 100), node("c", 100)},
                           Strategy::Memory),
                   3),
            (std::vector<int>{4, 3, 3}));
  EXPECT_EQ(counts(plan_ok(model(7, 1), {node("a", 200), node("b", 300), node("c", 500)},
                           Strategy::Memory),
                   3),
            (std::vector<int>{1, 2, 4}));
}

TEST(Planner, MemoryGivesEveryNodeWithAShareAtLeastOneLayer) {
  // 24 * 1/101 rounds to 0, but the small node can hold a layer, so it gets one.
  const Plan p = plan_ok(model(24, 1 * MiB), {node("small", 10 * MiB), node("big", 1000 * MiB)},
                         Strategy::Memory);
  EXPECT_EQ(counts(p, 2), (std::vector<int>{1, 23}));
}

TEST(Planner, MemoryRepairsAnOverBudgetTarget) {
  // Target 3/3/3, but the first node holds the 800-byte embedding: only 2 layers fit there, and
  // the spare layer goes to a neighbour: the closest fitting split to the target.
  const auto m = model(9, 100, 800);
  const std::vector<PlanNode> nodes = {node("a", 1000), node("b", 1000), node("c", 1000)};
  const auto c = counts(plan_ok(m, nodes, Strategy::Memory), 3);
  EXPECT_EQ(c[0], 2);
  EXPECT_TRUE((c == std::vector<int>{2, 4, 3}) || (c == std::vector<int>{2, 3, 4}));
}

TEST(Planner, MemoryRepairSpreadsOverflowEvenly) {
  // Budgets 1:1:1:1 but node d has room for 2 layers only (cap): target 4/4/4/4; the 2 extra
  // layers land one each on two other nodes rather than both on one.
  const auto m = model(16, 100);
  const std::vector<PlanNode> nodes = {node("a", 10000), node("b", 10000), node("c", 10000),
                                       node("d", 10000, 1.0, 250)};
  // With the cap the budgets are 10000:10000:10000:250, so the target is 5/5/5/1 and fits.
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Memory), 4), (std::vector<int>{5, 5, 5, 1}));
  // Uniform ignores budget sizes: target 4/4/4/4, d can take 2, two neighbours take one each.
  const auto c = counts(plan_ok(m, nodes, Strategy::Uniform), 4);
  EXPECT_EQ(c[3], 2);
  std::vector<int> rest(c.begin(), c.begin() + 3);
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<int>{4, 5, 5}));
}

TEST(Planner, UniformSplitsEqually) {
  const auto m = model(10, 1 * MiB);
  const std::vector<PlanNode> nodes = {node("a", 1 * GiB), node("b", 8 * GiB), node("c", 2 * GiB),
                                       node("d", 4 * GiB)};
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Uniform), 4), (std::vector<int>{3, 3, 2, 2}));
}

TEST(Planner, ZeroBudgetNodeIsAllowedAndUnused) {
  const auto m = model(10, 1 * MiB);
  const std::vector<PlanNode> nodes = {node("a", 1 * GiB), node("zero", 0), node("c", 1 * GiB),
                                       node("d", 1 * GiB)};
  for (Strategy s : kAll) {
    const Plan p = plan_ok(m, nodes, s);
    EXPECT_EQ(counts(p, 4)[1], 0) << lb::strategy_name(s);
    if (s != Strategy::Priority) {  // priority packs everything onto a
      EXPECT_EQ(p.unused_nodes, std::vector<std::string>{"zero"}) << lb::strategy_name(s);
    }
  }
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Uniform), 4), (std::vector<int>{4, 0, 3, 3}));
}

TEST(Planner, ComputeIsProportionalToScore) {
  const auto m = model(20, 1 * MiB);
  const std::vector<PlanNode> nodes = {node("slow", 4 * GiB, 100), node("fast", 1 * GiB, 300)};
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Compute), 2), (std::vector<int>{5, 15}));
  // Memory on the same nodes goes the other way.
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Memory), 2), (std::vector<int>{16, 4}));
}

TEST(Planner, ComputeRespectsBudgets) {
  // The fast node would get 15 layers but holds only 10.
  const auto m = model(20, 1 * MiB);
  const std::vector<PlanNode> nodes = {node("slow", 4 * GiB, 100), node("fast", 10 * MiB, 300)};
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Compute), 2), (std::vector<int>{10, 10}));
}

TEST(Planner, ComputeAndBalancedRejectNonPositiveScores) {
  const auto m = model(4, 1);
  const std::vector<PlanNode> nodes = {node("a", 100, 1), node("b", 100, 0)};
  EXPECT_NE(plan_error(m, nodes, Strategy::Compute).find("node 'b'"), std::string::npos);
  EXPECT_NE(plan_error(m, nodes, Strategy::Balanced).find("positive score"), std::string::npos);
  plan_ok(m, nodes, Strategy::Memory);  // the score does not matter there
  auto excluded = nodes;
  excluded[1].included = false;
  plan_ok(m, excluded, Strategy::Compute);
}

TEST(Planner, PriorityPacksTheFirstNodes) {
  const auto m = model(20, 100, 50, 70);
  // a: 50 + 5 * 100 = 550 fits, a sixth layer does not. b takes the rest (+ head), c is unused.
  const std::vector<PlanNode> nodes = {node("a", 599), node("b", 100000), node("c", 100000)};
  const Plan p = plan_ok(m, nodes, Strategy::Priority);
  EXPECT_EQ(counts(p, 3), (std::vector<int>{5, 15, 0}));
  EXPECT_EQ(p.unused_nodes, std::vector<std::string>{"c"});
  EXPECT_EQ(p.stages[0].total_bytes, 550u);
  EXPECT_EQ(p.stages[1].total_bytes, 1570u);
}

TEST(Planner, PrioritySkipsANodeThatCannotHoldTheEmbedding) {
  const auto m = model(4, 100, 500);
  const std::vector<PlanNode> nodes = {node("tiny", 550), node("big", 10000), node("c", 10000)};
  const Plan p = plan_ok(m, nodes, Strategy::Priority);
  EXPECT_EQ(counts(p, 3), (std::vector<int>{0, 4, 0}));
  EXPECT_EQ(p.unused_nodes, (std::vector<std::string>{"tiny", "c"}));
}

TEST(Planner, BalancedMinimisesTheSlowestStage) {
  const auto m = model(8, 1000);
  const std::vector<PlanNode> nodes = {node("slow", 1 * GiB, 1), node("fast", 1 * GiB, 3)};
  // 2/6: both stages take 2000 time units; any other split has a slower stage.
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Balanced), 2), (std::vector<int>{2, 6}));
}

TEST(Planner, BalancedSkipsNodesThatOnlySlowThingsDown) {
  // One 90-byte layer dominates; the middle node is so slow that any layer there is the
  // bottleneck, so it is skipped.
  ModelFootprint m;
  m.layer_weight_bytes = {10, 10, 90, 10, 10};
  const std::vector<PlanNode> nodes = {node("a", 1000, 1), node("crawl", 1000, 0.01),
                                       node("c", 1000, 1)};
  const Plan p = plan_ok(m, nodes, Strategy::Balanced);
  EXPECT_EQ(counts(p, 3)[1], 0);
  EXPECT_EQ(p.unused_nodes, std::vector<std::string>{"crawl"});
}

TEST(Planner, BalancedBreaksTiesByTotalTime) {
  // The fast node has room for the small layers only, so layer 0 on node a is the bottleneck (100)
  // whatever happens; the two small layers then go to the fast node rather than the slow one,
  // which would tie on the bottleneck but be slower overall.
  ModelFootprint m;
  m.layer_weight_bytes = {100, 10, 10};
  const std::vector<PlanNode> nodes = {node("a", 1000, 1), node("fast", 50, 10),
                                       node("slow", 1000, 1)};
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Balanced), 3), (std::vector<int>{1, 2, 0}));
}

// All ways of giving n layers to the nodes in order, each >= 0 layers.
void for_each_split(int n, size_t nodes, const std::function<void(const std::vector<int>&)>& f) {
  std::vector<int> c(nodes, 0);
  std::function<void(size_t, int)> rec = [&](size_t k, int left) {
    if (k + 1 == nodes) {
      c[k] = left;
      f(c);
      return;
    }
    for (int x = 0; x <= left; ++x) {
      c[k] = x;
      rec(k + 1, left - x);
    }
  };
  rec(0, n);
}

struct Brute {
  bool feasible = false;
  double best_max = 0;
};

// Brute force over every contiguous split: feasibility and the best slowest-stage time.
Brute brute_force(const ModelFootprint& m, const std::vector<PlanNode>& nodes) {
  const int n = static_cast<int>(m.layer_weight_bytes.size());
  const uint64_t kv = lb::kv_bytes_per_layer(m);
  Brute r;
  for_each_split(n, nodes.size(), [&](const std::vector<int>& c) {
    int b = 0;
    double worst = 0;
    for (size_t k = 0; k < nodes.size(); ++k) {
      const int e = b + c[k];
      if (c[k] > 0) {
        uint64_t w = 0;
        for (int l = b; l < e; ++l) w += m.layer_weight_bytes[l];
        uint64_t need =
            w + kv * c[k] + (b == 0 ? m.embedding_bytes : 0) + (e == n ? m.head_bytes : 0);
        if (!nodes[k].included || need > lb::effective_budget(nodes[k])) return;
        worst = std::max(worst, static_cast<double>(w) / nodes[k].compute_score);
      }
      b = e;
    }
    if (!r.feasible || worst < r.best_max) r.best_max = worst;
    r.feasible = true;
  });
  return r;
}

double slowest_stage(const Plan& p, const std::vector<PlanNode>& nodes) {
  double worst = 0;
  for (const auto& st : p.stages) {
    worst =
        std::max(worst, static_cast<double>(st.weight_bytes) / nodes[st.node_index].compute_score);
  }
  return worst;
}

TEST(Planner, BalancedIsExactAndEveryStrategyAgreesOnFeasibility) {
  std::mt19937 rng(12345);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int feasible = 0, infeasible = 0;
  for (int iter = 0; iter < 600; ++iter) {
    ModelFootprint m;
    const int n = uni(1, 8);
    for (int l = 0; l < n; ++l) m.layer_weight_bytes.push_back(uni(1, 100));
    m.embedding_bytes = uni(0, 60);
    m.head_bytes = uni(0, 60);
    m.kv_bytes_per_token_per_layer = uni(0, 2);
    m.context_length = uni(0, 8);
    m.max_seqs = uni(1, 2);
    std::vector<PlanNode> nodes;
    const int k = uni(1, 4);
    for (int i = 0; i < k; ++i) {
      nodes.push_back(node("n" + std::to_string(i), uni(0, 400), uni(1, 20) / 4.0,
                           uni(0, 3) == 0 ? uni(1, 400) : 0, uni(0, 5) != 0));
    }
    const Brute brute = brute_force(m, nodes);
    bool any_included = false;
    for (const auto& nd : nodes) any_included |= nd.included;
    for (Strategy s : kAll) {
      SCOPED_TRACE("iteration " + std::to_string(iter) + " strategy " + lb::strategy_name(s));
      if (!brute.feasible || !any_included) {
        EXPECT_THROW(lb::make_plan(m, nodes, s), PlanError);
        continue;
      }
      const Plan p = plan_ok(m, nodes, s);
      if (s == Strategy::Balanced) {
        EXPECT_DOUBLE_EQ(slowest_stage(p, nodes), brute.best_max);
      }
    }
    (brute.feasible && any_included ? feasible : infeasible)++;
  }
  // The generator must exercise both outcomes, or the test proves little.
  EXPECT_GT(feasible, 100);
  EXPECT_GT(infeasible, 100);
}

// ---------------------------------------------------------------- nodes: caps, exclusion, shapes

TEST(Planner, CapLimitsTheBudget) {
  const auto m = model(24, 10 * MiB);
  const std::vector<PlanNode> nodes = {node("a", 64 * GiB, 1, 1 * GiB), node("b", 2 * GiB),
                                       node("c", 3 * GiB, 1, 100 * GiB)};
  EXPECT_EQ(lb::effective_budget(nodes[0]), 1 * GiB);
  EXPECT_EQ(lb::effective_budget(nodes[2]), 3 * GiB);
  const Plan p = plan_ok(m, nodes, Strategy::Memory);
  EXPECT_EQ(counts(p, 3), (std::vector<int>{4, 8, 12}));
  EXPECT_EQ(p.stages[0].budget_bytes, 1 * GiB);
}

TEST(Planner, ExcludedNodesGetNothing) {
  const auto m = model(12, 1 * MiB);
  const std::vector<PlanNode> nodes = {node("a", 1 * GiB), node("huge", 100 * GiB, 100, 0, false),
                                       node("c", 1 * GiB)};
  for (Strategy s : kAll) {
    const Plan p = plan_ok(m, nodes, s);
    EXPECT_EQ(counts(p, 3)[1], 0) << lb::strategy_name(s);
  }
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Memory), 3), (std::vector<int>{6, 0, 6}));
  // Excluded capacity does not count towards what is available.
  const std::string msg = plan_error(model(12, 200 * MiB), nodes);
  EXPECT_NE(msg.find("the 2 included node(s) have 2 GiB in total"), std::string::npos) << msg;
}

TEST(Planner, NoIncludedNodesOrNoLayersIsAnError) {
  EXPECT_NE(plan_error(model(4, 1), {}).find("no included nodes"), std::string::npos);
  EXPECT_NE(plan_error(model(4, 1), {node("a", 100, 1, 0, false)}).find("no included nodes"),
            std::string::npos);
  EXPECT_NE(plan_error(model(0, 1), {node("a", 100)}).find("no layers"), std::string::npos);
  EXPECT_NE(plan_error(model(4, 1), {node("a", 100), node("a", 100)}).find("'a' appears twice"),
            std::string::npos);
}

TEST(Planner, NodeTooSmallForOneLayerIsUnused) {
  const auto m = model(10, 100);
  const std::vector<PlanNode> nodes = {node("a", 1000), node("crumb", 99), node("c", 1000)};
  for (Strategy s : kAll) {
    const Plan p = plan_ok(m, nodes, s);
    EXPECT_EQ(counts(p, 3)[1], 0) << lb::strategy_name(s);
    if (s != Strategy::Priority) {  // priority packs everything onto a
      EXPECT_EQ(p.unused_nodes, std::vector<std::string>{"crumb"}) << lb::strategy_name(s);
    }
  }
}

TEST(Planner, SingleNodeHoldsEverything) {
  const auto m = model(5, 100, 30, 40);
  for (Strategy s : kAll) {
    const Plan p = plan_ok(m, {node("only", 570)}, s);
    ASSERT_EQ(p.stages.size(), 1u);
    EXPECT_TRUE(p.stages[0].has_embedding);
    EXPECT_TRUE(p.stages[0].has_head);
    EXPECT_EQ(p.stages[0].total_bytes, 570u);
  }
  EXPECT_NE(plan_error(m, {node("only", 569)}).find("1 B (1 bytes) missing"), std::string::npos);
}

TEST(Planner, MoreNodesThanLayers) {
  const auto m = model(3, 100);
  const std::vector<PlanNode> nodes = {node("a", 1000), node("b", 1000), node("c", 1000),
                                       node("d", 1000), node("e", 1000)};
  for (Strategy s : kAll) {
    const Plan p = plan_ok(m, nodes, s);
    EXPECT_EQ(p.unused_nodes.size(), s == Strategy::Priority ? 4u : 2u) << lb::strategy_name(s);
  }
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Memory), 5), (std::vector<int>{1, 1, 1, 0, 0}));
}

// ---------------------------------------------------------------- what a stage holds

TEST(Planner, EmbeddingAndHeadAreCountedOnTheEndStages) {
  // Target 5/5, but the embedding leaves room for 3 layers on a and the head for 7 on b... the
  // only split that fits is 3/7.
  const auto m = model(10, 100, 400, 0);
  const std::vector<PlanNode> nodes = {node("a", 700), node("b", 700)};
  const Plan p = plan_ok(m, nodes, Strategy::Memory);
  EXPECT_EQ(counts(p, 2), (std::vector<int>{3, 7}));
  EXPECT_EQ(p.stages[0].embedding_bytes, 400u);
  EXPECT_EQ(p.stages[0].total_bytes, 700u);
  EXPECT_EQ(p.stages[1].head_bytes, 0u);

  const auto h = model(10, 100, 0, 400);
  const Plan q = plan_ok(h, nodes, Strategy::Memory);
  EXPECT_EQ(counts(q, 2), (std::vector<int>{7, 3}));
  EXPECT_FALSE(q.stages[0].has_head);
  EXPECT_EQ(q.stages[1].head_bytes, 400u);
  EXPECT_EQ(q.stages[1].total_bytes, 700u);
}

TEST(Planner, KvCacheIsCounted) {
  auto m = model(10, 100);
  m.kv_bytes_per_token_per_layer = 1;
  m.context_length = 10;
  m.max_seqs = 1;
  EXPECT_EQ(lb::kv_bytes_per_layer(m), 10u);
  const std::vector<PlanNode> nodes = {node("a", 550), node("b", 2000)};
  // 110 bytes per layer: a fits 5.
  Plan p = plan_ok(m, nodes, Strategy::Priority);
  EXPECT_EQ(counts(p, 2), (std::vector<int>{5, 5}));
  EXPECT_EQ(p.stages[0].kv_bytes, 50u);
  // Longer context: 150 bytes per layer, a fits 3.
  m.context_length = 50;
  EXPECT_EQ(counts(plan_ok(m, nodes, Strategy::Priority), 2), (std::vector<int>{3, 7}));
  // More sequences: 100 + 50 * 4 = 300 bytes per layer, 3000 in all, 2550 available.
  m.max_seqs = 4;
  const std::string msg = plan_error(m, nodes, Strategy::Priority);
  EXPECT_NE(msg.find("KV cache 2.0 KiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("450 B (450 bytes) missing"), std::string::npos) << msg;
}

TEST(Planner, KvOverflowIsAPlanError) {
  auto m = model(2, 1);
  m.kv_bytes_per_token_per_layer = 1ull << 40;
  m.context_length = 1ull << 20;
  m.max_seqs = 1ull << 10;
  EXPECT_THROW(lb::make_plan(m, {node("a", 100)}), PlanError);
}

// ---------------------------------------------------------------- infeasible: messages

TEST(Planner, NotEnoughMemoryInTotal) {
  // 24 layers of 300 MiB = 7.0 GiB + 0.2 GiB embedding; 6.0 GiB available.
  const auto m = model(24, 300 * MiB, 204 * MiB + 819 * KiB, 0);
  const std::vector<PlanNode> nodes = {node("a", 1 * GiB), node("b", 2 * GiB), node("c", 3 * GiB)};
  const uint64_t missing = 24 * 300 * MiB + 204 * MiB + 819 * KiB - 6 * GiB;
  for (Strategy s : kAll) {
    const std::string msg = plan_error(m, nodes, s);
    EXPECT_NE(msg.find("model needs 7.2 GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("3 included node(s) have 6 GiB in total"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1.2 GiB (" + std::to_string(missing) + " bytes) missing"),
              std::string::npos)
        << msg;
  }
}

TEST(Planner, LayerTooBigForAnyNode) {
  ModelFootprint m;
  m.layer_weight_bytes = {100 * MiB, 100 * MiB, 900 * MiB, 100 * MiB};
  const std::string msg = plan_error(m, {node("a", 800 * MiB), node("b", 800 * MiB)});
  EXPECT_NE(msg.find("layer 2 alone needs 900 MiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'a'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("100 MiB (104857600 bytes) missing"), std::string::npos) << msg;
}

TEST(Planner, EmbeddingTooBigForAnyNode) {
  const auto m = model(3, 10 * MiB, 250 * MiB, 0);
  const std::vector<PlanNode> nodes = {node("a", 1 * GiB, 1, 200 * MiB), node("b", 150 * MiB),
                                       node("c", 150 * MiB)};
  const std::string msg = plan_error(m, nodes);
  EXPECT_NE(msg.find("embedding (250 MiB) plus layer 0 (10 MiB)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'a' (cap 200 MiB)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("60 MiB (62914560 bytes) missing"), std::string::npos) << msg;
}

TEST(Planner, HeadTooBigForAnyNode) {
  const auto m = model(3, 10 * MiB, 0, 250 * MiB);
  const std::string msg = plan_error(m, {node("a", 200 * MiB), node("b", 200 * MiB)});
  EXPECT_NE(msg.find("layer 2 (10 MiB) plus the head (250 MiB)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("60 MiB (62914560 bytes) missing"), std::string::npos) << msg;
}

TEST(Planner, FitsInTotalButNotContiguously) {
  const auto m = model(3, 60);
  const std::string msg =
      plan_error(m, {node("a", 100), node("b", 100), node("c", 50), node("d", 50)});
  EXPECT_NE(msg.find("not as contiguous stages"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layers 2-2 (60 B (60 bytes)"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- strategy names, bar

TEST(Planner, StrategyNamesRoundTrip) {
  for (Strategy s : kAll) EXPECT_EQ(lb::parse_strategy(lb::strategy_name(s)), s);
  EXPECT_THROW(lb::parse_strategy("fastest"), lb::Error);
  EXPECT_THROW(lb::parse_strategy("Memory"), lb::Error);
  try {
    lb::parse_strategy("fastest");
  } catch (const lb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"fastest\""), std::string::npos);
  }
}

TEST(Planner, BarShowsStagesAcrossTheModel) {
  const Plan p = lb::make_plan(model(24, 10 * MiB),
                               {node("a", 1 * GiB), node("b", 2 * GiB), node("c", 3 * GiB)});
  EXPECT_EQ(lb::render_plan_bar(p), "[AAAABBBBBBBBCCCCCCCCCCCC]  A=a 0-3  B=b 4-11  C=c 12-23");
  EXPECT_EQ(lb::render_plan_bar(p, 12), "[AABBBBCCCCCC]  A=a 0-3  B=b 4-11  C=c 12-23");
  EXPECT_EQ(lb::render_plan_bar(p, 48).size(),
            50u + std::string("  A=a 0-3  B=b 4-11  C=c 12-23").size());
  const Plan one = lb::make_plan(model(3, 1), {node("x", 100), node("y", 1)}, Strategy::Priority);
  EXPECT_EQ(lb::render_plan_bar(one, 5), "[AAAAA]  A=x 0-2");
}

// ---------------------------------------------------------------- bytes

TEST(Bytes, ParsesSizes) {
  EXPECT_EQ(lb::parse_bytes("100000"), 100000u);
  EXPECT_EQ(lb::parse_bytes("0"), 0u);
  EXPECT_EQ(lb::parse_bytes("6GiB"), 6 * GiB);
  EXPECT_EQ(lb::parse_bytes("512MiB"), 512 * MiB);
  EXPECT_EQ(lb::parse_bytes("1.5G"), 3 * GiB / 2);
  EXPECT_EQ(lb::parse_bytes("2GB"), 2000000000u);
  EXPECT_EQ(lb::parse_bytes("2 gb"), 2000000000u);
  EXPECT_EQ(lb::parse_bytes(" 4 KiB "), 4096u);
  EXPECT_EQ(lb::parse_bytes("3K"), 3072u);
  EXPECT_EQ(lb::parse_bytes("3KB"), 3000u);
  EXPECT_EQ(lb::parse_bytes("7M"), 7 * MiB);
  EXPECT_EQ(lb::parse_bytes("1MB"), 1000000u);
  EXPECT_EQ(lb::parse_bytes("12B"), 12u);
  EXPECT_EQ(lb::parse_bytes("2TiB"), 2048 * GiB);
  EXPECT_EQ(lb::parse_bytes("0.5KiB"), 512u);
  EXPECT_EQ(lb::parse_bytes("1.0"), 1u);
  EXPECT_EQ(lb::parse_bytes("0.001KB"), 1u);
  EXPECT_EQ(lb::parse_bytes("0.1K"), 102u);  // 102.4 rounds to 102
  EXPECT_EQ(lb::parse_bytes("18446744073709551615"), UINT64_MAX);
}

TEST(Bytes, RejectsBadSizes) {
  for (const char* bad : {"",
                          " ",
                          "abc",
                          "-1",
                          "-5GiB",
                          "1.2.3",
                          "1 GiBs",
                          "G",
                          "1.",
                          ".5G",
                          "1e9",
                          "+3",
                          "1.5",
                          "nan",
                          "1 2",
                          "18446744073709551616",
                          "16384PiB",
                          "99999999999GiB",
                          "17179869184GiB",
                          "0x10"}) {
    try {
      lb::parse_bytes(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const lb::Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("\"") + bad + "\""), std::string::npos)
          << e.what();
    }
  }
  try {
    lb::parse_bytes("-1");
  } catch (const lb::Error& e) {
    EXPECT_NE(std::string(e.what()).find("negative"), std::string::npos);
  }
}

TEST(Bytes, FormatsSizes) {
  EXPECT_EQ(lb::format_bytes(0), "0 B");
  EXPECT_EQ(lb::format_bytes(1023), "1023 B");
  EXPECT_EQ(lb::format_bytes(1024), "1 KiB");
  EXPECT_EQ(lb::format_bytes(3 * GiB / 2), "1.5 GiB");
  EXPECT_EQ(lb::format_bytes(900 * MiB), "900 MiB");
  EXPECT_EQ(lb::format_bytes(12 * GiB + 300 * MiB), "12.3 GiB");
  EXPECT_EQ(lb::format_bytes(2048 * GiB), "2 TiB");
  EXPECT_EQ(lb::format_bytes(1025), "1.0 KiB");  // rounded, so it shows the decimal
  EXPECT_EQ(lb::format_bytes(6 * GiB + 1), "6.0 GiB");
  EXPECT_EQ(lb::format_bytes(6 * GiB), "6 GiB");
  EXPECT_EQ(lb::format_bytes(UINT64_MAX), "16.0 EiB");
  for (uint64_t v : {uint64_t{1}, uint64_t{4096}, 6 * GiB, 512 * MiB}) {
    EXPECT_EQ(lb::parse_bytes(lb::format_bytes(v)), v);
  }
}

}  // namespace
