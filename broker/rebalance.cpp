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
  reply(peer, wire::encode(change_plan(m)));
}

void Broker::on_stage_budget(const std::string& peer, const wire::Budget& m) {
  auto n = nodes_.find(peer);
  if (n == nodes_.end()) throw Error("budget from an unregistered stage");
  spdlog::info("broker: stage '{}' reports a new budget: {} -> {}", peer,
               format_bytes(n->second.info.budget), format_bytes(m.budget));
  // Kept even when no plan can change now: the next plan uses it, and a stage past its
  // high-water mark meanwhile reports pressure, which re-plans.
  n->second.info.budget = m.budget;
  if (!plan_ || migration_) return;
  try {
    change_plan(wire::Control{"set_budget", peer, m.budget, ""});
  } catch (const Error& e) {
    spdlog::error("broker: cannot plan with the new budget of '{}': {}", peer, e.what());
  }
}

wire::PlanChange Broker::change_plan(const wire::Control& m) {
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
  const bool moves = begin_migration(*next, leaving, m.op + (m.node.empty() ? "" : " " + m.node));
  nlohmann::json after;
  after["model"] = model().entry.name;
  after["epoch"] = epoch_ + (moves ? 1 : 0);
  after["plan"] = plan_to_json(*next);
  return wire::PlanChange{old_plan, after.dump()};
}

void Broker::on_kv(const std::string& peer, const std::string& frame, const wire::KvPart& m) {
  if (!migration_ || !migration_->assigned || m.epoch != epoch_) {
    throw Error("kv part for epoch " + std::to_string(m.epoch) + " outside a move (epoch " +
                std::to_string(epoch_) + ")");
  }
  auto holds = [&](const Plan& p, const std::string& node) {
    return std::any_of(p.stages.begin(), p.stages.end(), [&](const PlanStage& s) {
      return s.node_id == node && m.layer >= s.layer_begin && m.layer < s.layer_end;
    });
  };
  if (!holds(migration_->previous, peer))
    throw Error("kv part for layer " + std::to_string(m.layer) +
                " from a stage that did not hold it");
  auto owner = std::find_if(plan_->stages.begin(), plan_->stages.end(), [&](const PlanStage& s) {
    return m.layer >= s.layer_begin && m.layer < s.layer_end;
  });
  if (owner == plan_->stages.end())
    throw Error("kv part for layer " + std::to_string(m.layer) + ", which no stage holds");
  if (cfg_.drop_kv_parts > 0) {
    --cfg_.drop_kv_parts;  // fault injection for tests: the new owner must stop waiting for it
    spdlog::warn("broker: dropping a KV part of request {} layer {} (--drop-kv-parts)", m.req,
                 m.layer);
    return;
  }
  migration_->kv_bytes += m.k.size() + m.v.size();
  reply(owner->node_id, frame);  // as it came: the new owner checks it against what it awaits
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
  Migration mig;
  mig.next = next;
  mig.previous = *plan_;
  mig.why = why;
  mig.leaving = std::move(leaving);
  mig.started = Clock::now();
  migration_ = std::move(mig);
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
  const PlanStage* stage = planned_stage(peer);
  if (!stage) return;
  // Reserve what the caches really use (with room to grow) on every stage, and plan again.
  const ModelFootprint& f = model().footprint;
  const uint64_t layers = uint64_t(stage->layer_end - stage->layer_begin);
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

void Broker::maybe_offer_layers() {
  if (joined_.empty() || !serving_ || migration_) return;
  std::string who;
  for (const std::string& id : joined_) who += (who.empty() ? "" : ", ") + id;
  joined_.clear();
  if (!cfg_.auto_rebalance) {
    spdlog::info("broker: {} joined while serving: layers at the next rebalance", who);
    return;
  }
  try {
    const Plan next =
        make_plan(planning_footprint(model_index_), plan_nodes(), parse_strategy(cfg_.strategy));
    begin_migration(next, {}, who + " joined (auto_rebalance)");
  } catch (const PlanError& e) {
    spdlog::error("broker: cannot plan with {}: {}", who, e.what());
  }
}

void Broker::advance_migration() {
  if (!migration_ || migration_->assigned) return;
  unloop();
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
  migration_->drained = Clock::now();
  spdlog::info("broker: in-flight steps drained after {:.3f}s",
               seconds(migration_->drained - migration_->started));
  send_assignments(emptied);
}

void Broker::finish_migration() {
  // Every active request goes on with its next chunk: its prompt when it has not run yet, else
  // its last token. A request some stage could not complete the cache of (or every request, when
  // caches do not move) first goes through again in the chunks it first went in (the prompt,
  // then one token at a time), which rebuilds the caches bit for bit; its last chunk samples.
  const auto now = Clock::now();
  MigrationReport report;
  report.epoch = epoch_;
  report.why = migration_->why;
  report.drain_s = seconds(migration_->drained - migration_->started);
  report.load_s = seconds(now - migration_->drained);
  report.kv_bytes = migration_->kv_bytes;
  ready_chunks_.clear();
  ready_tokens_.clear();
  for (auto& [id, r] : requests_) {
    if (!r.active) continue;
    const bool only_prompt = r.generated.empty();
    const bool replay = !only_prompt && (!cfg_.kv_transfer || migration_->replay.count(id));
    if (only_prompt || replay) {
      ready_chunks_.push_back(make_chunk(r, 0, uint32_t(r.prompt.size()), only_prompt));
      ready_tokens_.insert(ready_tokens_.end(), r.prompt.begin(), r.prompt.end());
    }
    if (only_prompt) continue;
    const size_t from = replay ? 0 : r.generated.size() - 1;
    for (size_t g = from; g < r.generated.size(); ++g) {
      ready_chunks_.push_back(
          make_chunk(r, int64_t(r.prompt.size() + g), 1, g + 1 == r.generated.size()));
      ready_tokens_.push_back(r.generated[g]);
    }
    ++(replay ? report.replayed : report.moved);
  }
  for (const std::string& id : migration_->leaving) {
    reply(id, wire::encode(wire::Bye{}));
    nodes_.erase(id);
    node_order_.erase(std::remove(node_order_.begin(), node_order_.end(), id), node_order_.end());
    spdlog::info("broker: node '{}' drained and released", id);
  }
  spdlog::info(
      "broker: epoch {} resumed after {:.3f}s (drain {:.3f}s, load {:.3f}s): {} request(s) kept "
      "their caches ({} of KV moved between stages), {} replayed",
      epoch_, seconds(now - migration_->started), report.drain_s, report.load_s, report.moved,
      format_bytes(report.kv_bytes), report.replayed);
  last_migration_ = report;
  migration_.reset();
}

}  // namespace lb
