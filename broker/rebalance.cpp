// Changing the plan while serving: control commands, memory pressure, the move itself, and
// model bytes for stages without their own copy.
#include "broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "broker/plan_json.hpp"
#include "net/sockets.hpp"
#include "util/bytes.hpp"

namespace lb {

std::string Broker::current_plan_json() const {
  nlohmann::json j;
  j["model"] = model().entry.name;
  j["epoch"] = epoch_;
  j["plan"] = plan_ ? plan_to_json(*plan_) : nlohmann::json(nullptr);
  return j.dump();
}

void Broker::on_control_op(const std::string& peer, const wire::Control& m) {
  if (!plan_) throw Error("there is no plan yet to change");
  if (migration_) throw Error("a rebalance is already under way; try again when it ends");
  const bool needs_node = m.op != "rebalance";
  if (needs_node && (!nodes_.count(m.node) || nodes_.at(m.node).lost)) {
    throw Error("no registered node '" + m.node + "'");
  }
  // Decide on copies, so a plan that does not fit changes nothing.
  BrokerConfig cfg = cfg_;
  std::map<std::string, NodeState> nodes = nodes_;
  std::vector<std::string> leaving;
  if (m.op == "rebalance" && !m.strategy.empty())
    cfg.strategy = strategy_name(parse_strategy(m.strategy));
  if (m.op == "drain" || m.op == "exclude") cfg.nodes[m.node].exclude = true;
  if (m.op == "include") cfg.nodes[m.node].exclude = false;
  if (m.op == "set_budget") nodes[m.node].info.budget = m.budget;
  if (m.op == "drain") leaving.push_back(m.node);
  std::swap(cfg, cfg_);
  std::swap(nodes, nodes_);
  std::optional<Plan> next;
  try {
    next = make_plan(planning_footprint(model_index_), plan_nodes(), parse_strategy(cfg_.strategy));
  } catch (...) {
    std::swap(cfg, cfg_);
    std::swap(nodes, nodes_);
    throw;
  }
  const std::string old_plan = current_plan_json();
  if (m.op == "set_budget") reply(m.node, wire::encode(wire::Budget{m.budget}));
  begin_migration(*next, leaving, m.op + (m.node.empty() ? "" : " " + m.node));
  nlohmann::json after;
  after["model"] = model().entry.name;
  after["epoch"] = epoch_ + 1;
  after["plan"] = plan_to_json(*next);
  reply(peer, wire::encode(wire::PlanChange{old_plan, after.dump()}));
}

void Broker::on_fetch(const std::string& peer, const wire::Fetch& m) {
  auto it = std::find_if(models_.begin(), models_.end(),
                         [&](const auto& s) { return s->file->digest() == m.digest; });
  if (it == models_.end()) throw Error("no model with digest " + m.digest);
  if (m.size > cfg_.max_message_bytes / 2) {
    throw Error("fetch of " + std::to_string(m.size) + " bytes is larger than a chunk may be");
  }
  wire::ModelChunk c;
  c.digest = m.digest;
  c.offset = m.offset;
  c.data = (*it)->file->read_bytes(m.offset, m.size);
  c.hash = wire::chunk_hash(c.data);
  if (cfg_.corrupt_chunks > 0 && !c.data.empty()) {
    --cfg_.corrupt_chunks;  // fault injection for tests: the stage must notice and fetch again
    c.data[c.data.size() / 2] ^= 0x5a;
    spdlog::warn("broker: corrupting the chunk at offset {} for '{}' (--corrupt-chunks)", m.offset,
                 peer);
  }
  reply(peer, wire::encode(c));
}

bool Broker::begin_migration(const Plan& next, std::vector<std::string> leaving,
                             const std::string& why) {
  bool same = leaving.empty() && next.stages.size() == plan_->stages.size() &&
              next.strategy == plan_->strategy;
  for (size_t i = 0; same && i < next.stages.size(); ++i) {
    same = next.stages[i].node_id == plan_->stages[i].node_id &&
           next.stages[i].layer_begin == plan_->stages[i].layer_begin &&
           next.stages[i].layer_end == plan_->stages[i].layer_end;
  }
  if (same) {
    spdlog::info("broker: {}: the plan stays as it is", why);
    return false;
  }
  spdlog::info("broker: {}: moving to a new plan", why);
  migration_ = Migration{next, std::move(leaving), false, Clock::now()};
  return true;
}

void Broker::on_pressure(const std::string& peer, const wire::Pressure& m) {
  spdlog::warn(
      "broker: stage '{}' under memory pressure: weights {}, KV {}, resident {}, budget {}", peer,
      format_bytes(m.weights), format_bytes(m.kv), format_bytes(m.rss), format_bytes(m.budget));
  if (auto n = nodes_.find(peer); n != nodes_.end() && m.budget < n->second.info.budget) {
    // The stage found it has less than it registered with (a cgroup limit): plan with that.
    n->second.info.budget = m.budget;
  }
  if (!plan_ || migration_) return;
  auto it = std::find_if(plan_->stages.begin(), plan_->stages.end(),
                         [&](const PlanStage& s) { return s.node_id == peer; });
  if (it == plan_->stages.end()) return;
  // Reserve what the caches really use (with room to grow) on every stage, and plan again.
  const ModelFootprint& f = model().footprint;
  const uint64_t layers = uint64_t(it->layer_end - it->layer_begin);
  const uint64_t in_use = m.kv / std::max<uint64_t>(1, layers * f.kv_bytes_per_token_per_layer);
  const uint64_t full = uint64_t(cfg_.context) * uint64_t(cfg_.max_sequences);
  const uint64_t before = kv_reserve_tokens_;
  kv_reserve_tokens_ = std::min(full, std::max(kv_reserve_tokens_ * 2, in_use + in_use / 4));
  try {
    const Plan next =
        make_plan(planning_footprint(model_index_), plan_nodes(), parse_strategy(cfg_.strategy));
    if (!begin_migration(next, {}, "memory pressure on " + peer)) {
      spdlog::warn("broker: no other plan relieves '{}'", peer);
    }
  } catch (const PlanError& e) {
    kv_reserve_tokens_ = before;
    spdlog::error("broker: cannot relieve '{}': {}", peer, e.what());
  }
}

void Broker::advance_migration() {
  if (!migration_ || migration_->assigned) return;
  for (const auto& [id, r] : requests_) {
    if (r.in_flight) return;  // its step must come back first
  }
  std::vector<std::string> emptied;
  for (const PlanStage& s : plan_->stages) {
    const bool kept = std::any_of(migration_->next.stages.begin(), migration_->next.stages.end(),
                                  [&](const PlanStage& n) { return n.node_id == s.node_id; });
    if (!kept) emptied.push_back(s.node_id);
  }
  plan_ = migration_->next;
  migration_->assigned = true;
  spdlog::info("broker: in-flight steps drained after {:.3f}s",
               seconds(Clock::now() - migration_->started));
  send_assignments(emptied);
}

void Broker::finish_migration() {
  // The stages' caches were dropped with their old ranges: each active request's history goes
  // through again in the chunks it first went in (the prompt, then one token at a time), which
  // rebuilds them bit for bit; the last chunk samples its next token.
  ready_chunks_.clear();
  ready_tokens_.clear();
  for (auto& [id, r] : requests_) {
    if (!r.active) continue;
    const bool only_prompt = r.generated.empty();
    ready_chunks_.push_back(make_chunk(r, 0, uint32_t(r.prompt.size()), only_prompt));
    ready_tokens_.insert(ready_tokens_.end(), r.prompt.begin(), r.prompt.end());
    for (size_t g = 0; g < r.generated.size(); ++g) {
      ready_chunks_.push_back(
          make_chunk(r, int64_t(r.prompt.size() + g), 1, g + 1 == r.generated.size()));
      ready_tokens_.push_back(r.generated[g]);
    }
  }
  for (const std::string& id : migration_->leaving) {
    reply(id, wire::encode(wire::Bye{}));
    nodes_.erase(id);
    node_order_.erase(std::remove(node_order_.begin(), node_order_.end(), id), node_order_.end());
    spdlog::info("broker: node '{}' drained and released", id);
  }
  const auto resumed = std::count_if(requests_.begin(), requests_.end(),
                                     [](const auto& r) { return r.second.active; });
  spdlog::info("broker: epoch {} resumed {} request(s) after {:.3f}s", epoch_, resumed,
               seconds(Clock::now() - migration_->started));
  migration_.reset();
}

}  // namespace lb
