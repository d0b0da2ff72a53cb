#include "broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/weights.hpp"
#include "net/sockets.hpp"
#include "util/bytes.hpp"

namespace lb {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

std::unique_ptr<ServedModel> open_model(const ModelEntry& e, const BrokerConfig& cfg) {
  auto m = std::make_unique<ServedModel>();
  m->entry = e;
  m->file = std::make_shared<GgufFile>(e.path);
  m->hp = read_hparams(*m->file);
  m->tokenizer = std::make_unique<Tokenizer>(*m->file);
  const ModelSizes sizes = model_sizes(*m->file, m->hp);
  m->footprint.layer_weight_bytes = sizes.layer_bytes;
  m->footprint.embedding_bytes = sizes.embedding_bytes;
  m->footprint.head_bytes = sizes.head_bytes;
  m->footprint.kv_bytes_per_token_per_layer = uint64_t(m->hp.kv_dim()) * 2 * sizeof(uint16_t);
  m->footprint.context_length = uint64_t(cfg.context);
  m->footprint.max_seqs = uint64_t(cfg.max_sequences);
  return m;
}

uint64_t total_bytes(const ModelFootprint& f) {
  uint64_t n = f.embedding_bytes + f.head_bytes;
  for (uint64_t b : f.layer_weight_bytes) n += b;
  return n;
}

}  // namespace

Broker::Broker(BrokerConfig config)
    : cfg_(std::move(config)),
      dtype_(wire::parse_dtype(cfg_.activation_dtype)),
      ctx_(1),
      control_(make_socket(ctx_, zmq::socket_type::router, cfg_.max_message_bytes)),
      feed_(make_socket(ctx_, zmq::socket_type::push, cfg_.max_message_bytes)),
      collect_(make_socket(ctx_, zmq::socket_type::pull, cfg_.max_message_bytes)) {
  limits_.max_message_bytes = cfg_.max_message_bytes;
  kv_reserve_tokens_ = cfg_.kv_reserve_tokens > 0
                           ? uint64_t(cfg_.kv_reserve_tokens)
                           : uint64_t(cfg_.context) * uint64_t(cfg_.max_sequences);
  if (cfg_.models.empty())
    throw Error("no models configured: give --model PATH or a 'models' list");
  for (const ModelEntry& e : cfg_.models) {
    try {
      models_.push_back(open_model(e, cfg_));
    } catch (const Error& err) {
      // One missing or corrupt file must not keep the other configured models from being
      // served, unless it is the one asked for.
      if (e.name == cfg_.model) throw;
      spdlog::error("broker: model {} is not served: {}", e.name, err.what());
      unavailable_ += "; " + e.name + " is unavailable: " + err.what();
    }
  }
  if (models_.empty()) throw Error("none of the configured models could be opened");
  control_.set(zmq::sockopt::router_mandatory, 1);
  control_.bind(cfg_.control);
  collect_.bind(cfg_.collect);
  collect_endpoint_ = with_host(last_endpoint(collect_), cfg_.advertise_host, true);
  const std::string control_endpoint =
      with_host(last_endpoint(control_), cfg_.advertise_host, true);
  if (!cfg_.endpoint_file.empty()) {
    std::ofstream(cfg_.endpoint_file) << control_endpoint << "\n";
  }
  spdlog::info(
      "broker: control on {}, collecting results on {}; {} model(s); waiting for {} stage(s)",
      control_endpoint, collect_endpoint_, models_.size(), cfg_.min_stages);
}

int Broker::run() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) {
    zmq::pollitem_t items[] = {{control_.handle(), 0, ZMQ_POLLIN, 0},
                               {collect_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(cfg_.heartbeat_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    if (items[1].revents & ZMQ_POLLIN) {
      zmq::message_t msg;
      while (collect_.recv(msg, zmq::recv_flags::dontwait)) on_result(msg.to_string());
    }
    if (items[0].revents & ZMQ_POLLIN) {
      std::vector<zmq::message_t> parts;
      while (zmq::recv_multipart(control_, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
        if (parts.size() == 2) {
          on_control(parts[0].to_string(), parts[1].to_string());
        } else {
          spdlog::error("broker: dropped a control message of {} frames (expected 1)",
                        parts.size() - 1);
        }
        parts.clear();
      }
    }
    check_nodes();
    maybe_plan();
    maybe_offer_layers();
    advance_migration();
    schedule();
  }
  for (const auto& [id, n] : nodes_) {
    if (!n.lost) reply(id, wire::encode(wire::Bye{}));
  }
  spdlog::info("broker: stopping");
  return 0;
}

bool Broker::reply(const std::string& peer, const std::string& bytes) {
  if (!send_frame(control_, peer, true)) return false;
  return send_frame(control_, bytes);
}

void Broker::on_control(const std::string& peer, const std::string& frame) {
  std::string type = "?";
  try {
    const wire::Envelope env = wire::Envelope::parse(frame.data(), frame.size(), limits_);
    type = env.type();
    if (auto it = nodes_.find(peer); it != nodes_.end()) it->second.last_seen = Clock::now();
    if (type == "register") {
      wire::Register m;
      wire::decode(env, m);
      on_register(peer, m);
    } else if (type == "ready") {
      wire::Ready m;
      wire::decode(env, m);
      on_ready(peer, m);
    } else if (type == "heartbeat") {
      wire::Heartbeat m;
      wire::decode(env, m);
      if (auto it = nodes_.find(peer); it != nodes_.end()) it->second.last_heartbeat = m;
    } else if (type == "error") {
      wire::ErrorMsg m;
      wire::decode(env, m);
      on_stage_error(peer, m);
    } else if (type == "generate") {
      wire::Generate m;
      wire::decode(env, m);
      on_generate(peer, m);
    } else if (type == "cancel") {
      wire::Cancel m;
      wire::decode(env, m);
      on_cancel(peer, m);
    } else if (type == "status") {
      reply(peer, wire::encode(wire::StatusReply{status_json()}));
    } else if (type == "fetch") {
      wire::Fetch m;
      wire::decode(env, m);
      on_fetch(peer, m);
    } else if (type == "pressure") {
      wire::Pressure m;
      wire::decode(env, m);
      on_pressure(peer, m);
    } else if (type == "kv") {
      wire::KvPart m;
      wire::decode(env, m);
      on_kv(peer, frame, m);
    } else if (type == "budget") {
      wire::Budget m;
      wire::decode(env, m);
      on_stage_budget(peer, m);
    } else if (type == "control") {
      wire::Control m;
      wire::decode(env, m);
      on_control_op(peer, m);
    } else if (type == "plan") {
      wire::PlanQuery m;
      wire::decode(env, m);
      reply(peer, wire::encode(wire::PlanReply{plan_json(m)}));
    } else {
      throw wire::WireError("unknown message type '" + type + "'");
    }
  } catch (const Error& e) {
    spdlog::error("broker: rejected '{}' message: {}", type, e.what());
    reply(peer, wire::encode(wire::ErrorMsg{e.what(), type, std::nullopt}));
  }
}

void Broker::on_register(const std::string& peer, const wire::Register& m) {
  if (m.node != peer) throw Error("node id '" + m.node + "' differs from its connection id");
  NodeState& n = nodes_[m.node];
  const bool known = !n.id.empty();
  n.id = m.node;
  n.info = m;
  n.last_seen = Clock::now();
  n.lost = false;
  n.failed = false;  // a restarted stage gets another chance
  if (!known) node_order_.push_back(m.node);
  if (!known && plan_) joined_.push_back(m.node);
  std::stable_sort(node_order_.begin(), node_order_.end(),
                   [&](const std::string& a, const std::string& b) {
                     return nodes_.at(a).info.order < nodes_.at(b).info.order;
                   });
  spdlog::info(
      "broker: stage '{}' on {} registered: budget {}, compute {:.1f}, {} threads ({} cores on "
      "its host), data {}",
      m.node, m.host, format_bytes(m.budget), m.compute, m.threads, m.cores, m.data);
}

const PlanStage* Broker::planned_stage(const std::string& id) const {
  if (!plan_) return nullptr;
  for (const PlanStage& s : plan_->stages) {
    if (s.node_id == id) return &s;
  }
  return nullptr;
}

std::vector<PlanNode> Broker::plan_nodes() const {
  std::vector<PlanNode> out;
  for (const std::string& id : node_order_) {
    const NodeState& n = nodes_.at(id);
    if (n.lost || n.failed) continue;
    PlanNode p;
    p.id = id;
    // Plan within the stage's high-water mark: filling past it would report pressure at once.
    p.budget_bytes = uint64_t(double(n.info.budget) * n.info.high_water);
    p.compute_score = n.info.compute > 0 ? n.info.compute : 1.0;
    if (auto it = cfg_.nodes.find(id); it != cfg_.nodes.end()) {
      p.cap_bytes = it->second.cap;
      p.included = !it->second.exclude;
    }
    out.push_back(p);
  }
  return out;
}

void Broker::maybe_plan() {
  if (plan_) return;
  const std::vector<PlanNode> nodes = plan_nodes();
  if (int(nodes.size()) < cfg_.min_stages) return;
  const Strategy strategy = parse_strategy(cfg_.strategy);

  // Candidates: the configured model, or with auto every model, largest first.
  std::vector<size_t> order;
  for (size_t i = 0; i < models_.size(); ++i) {
    if (cfg_.model == "auto" || models_[i]->entry.name == cfg_.model) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return total_bytes(models_[a]->footprint) > total_bytes(models_[b]->footprint);
  });
  std::string skipped = unavailable_;
  for (size_t i : order) {
    try {
      Plan p = make_plan(planning_footprint(i), nodes, strategy);
      model_index_ = i;
      model_reason_ = cfg_.model == "auto"
                          ? "auto: " + models_[i]->entry.name + " (" +
                                format_bytes(total_bytes(models_[i]->footprint)) +
                                ") is the largest configured model that fits the " +
                                std::to_string(nodes.size()) + " registered stage(s)" + skipped
                          : "configured: " + models_[i]->entry.name;
      plan_ = std::move(p);
      break;
    } catch (const PlanError& e) {
      skipped += "; " + models_[i]->entry.name + " does not fit: " + e.what();
    }
  }
  if (!plan_) {
    // Planning is retried at every registration and heartbeat: say why once, not each time.
    if (plan_error_ != skipped) spdlog::warn("broker: no model can be served yet{}", skipped);
    plan_error_ = skipped;
    return;
  }
  plan_error_.clear();
  spdlog::info("broker: model {}", model_reason_);
  send_assignments({});
}

void Broker::send_assignments(const std::vector<std::string>& emptied) {
  ++epoch_;
  step_sent_at_.clear();  // results of the old epoch's steps are dropped
  serving_ = false;
  spdlog::info("broker: epoch {} plan ({}): {}", epoch_, strategy_name(plan_->strategy),
               render_plan_bar(*plan_, 0));
  const ServedModel& m = model();
  wire::Assign a;
  a.epoch = epoch_;
  a.n_layers = m.hp.n_layers;
  a.model = {m.entry.name, m.entry.path, m.file->file_size(), m.file->digest(),
             m.file->data_offset()};
  a.ctx = cfg_.context;
  a.seqs = uint32_t(cfg_.max_sequences);
  a.dtype = dtype_;
  const std::set<int32_t>& eog = m.tokenizer->end_of_generation();
  a.eog.assign(eog.begin(), eog.end());
  if (migration_ && cfg_.kv_transfer) {
    // Caches that hold positions carry over; a request whose prompt has not run holds none.
    for (const auto& [id, r] : requests_) {
      if (r.active && !r.generated.empty())
        a.kv.push_back({id, int64_t(r.prompt.size() + r.generated.size()) - 1});
    }
  }
  for (size_t i = 0; i < plan_->stages.size(); ++i) {
    const PlanStage& s = plan_->stages[i];
    nodes_[s.node_id].ready = false;
    a.begin = s.layer_begin;
    a.end = s.layer_end;
    a.upstream = i == 0 ? "broker" : nodes_[plan_->stages[i - 1].node_id].info.data;
    const bool tail = i + 1 == plan_->stages.size();
    a.downstream = tail ? collect_endpoint_ : nodes_[plan_->stages[i + 1].node_id].info.data;
    a.head = tail && cfg_.loop_steps ? nodes_[plan_->stages.front().node_id].info.data : "";
    reply(s.node_id, wire::encode(a));
  }
  // Stages that held layers and hold none now give their memory back.
  a.begin = a.end = 0;
  a.upstream = a.downstream = a.head = "";
  for (const std::string& id : emptied) reply(id, wire::encode(a));
  const std::string head = nodes_[plan_->stages.front().node_id].info.data;
  if (feed_target_ != head) {
    if (!feed_target_.empty()) feed_.disconnect(feed_target_);
    feed_.connect(head);
    feed_target_ = head;
  }
}

void Broker::on_ready(const std::string& peer, const wire::Ready& m) {
  if (!plan_ || m.epoch != epoch_) {
    spdlog::warn("broker: stage '{}' reports ready for epoch {}, current is {}", peer, m.epoch,
                 epoch_);
    return;
  }
  nodes_[peer].ready = true;
  nodes_[peer].error.clear();
  if (migration_) migration_->replay.insert(m.missing.begin(), m.missing.end());
  spdlog::info("broker: stage '{}' ready with layers [{}, {}) ({} of weights, rss {})", peer,
               m.begin, m.end, format_bytes(m.weights), format_bytes(m.rss));
  for (const PlanStage& s : plan_->stages) {
    if (!nodes_[s.node_id].ready) return;
  }
  serving_ = true;
  spdlog::info("broker: epoch {} serving: {} stage(s), model {}", epoch_, plan_->stages.size(),
               model().entry.name);
  if (migration_) finish_migration();
}

void Broker::on_stage_error(const std::string& peer, const wire::ErrorMsg& m) {
  spdlog::error("broker: '{}' reports an error about '{}': {}", peer, m.ref, m.msg);
  auto node = nodes_.find(peer);
  if (node != nodes_.end()) node->second.error = m.msg;
  if (m.req) {
    if (auto it = requests_.find(*m.req); it != requests_.end())
      fail(it->second, "stage " + peer + ": " + m.msg);
  }
  // A planned stage that cannot load its layers would keep the epoch from ever serving. An answer
  // to an earlier epoch's assign is not about this one (the stage may well load the new range).
  const bool this_epoch = !m.epoch || *m.epoch == epoch_;
  if (m.ref == "assign" && this_epoch && node != nodes_.end() && !node->second.ready &&
      planned_stage(peer)) {
    node->second.failed = true;
    abandon_plan("stage '" + peer + "' could not load its layers (" + m.msg +
                 "): planning without it");
  }
}

void Broker::check_nodes() {
  const auto now = Clock::now();
  for (auto& [id, n] : nodes_) {
    if (n.lost || now - n.last_seen < std::chrono::milliseconds(cfg_.node_timeout_ms)) continue;
    n.lost = true;
    spdlog::warn("broker: stage '{}' has been silent for {} ms: considered lost", id,
                 cfg_.node_timeout_ms);
    if (planned_stage(id)) abandon_plan("stage '" + id + "' was lost");
  }
}

void Broker::abandon_plan(const std::string& why) {
  spdlog::warn("broker: epoch {} abandoned: {}", epoch_, why);
  std::vector<uint64_t> active;
  for (const auto& [rid, r] : requests_) {
    if (r.active) active.push_back(rid);
  }
  for (uint64_t rid : active) fail(requests_.at(rid), why);
  plan_.reset();
  migration_.reset();
  serving_ = false;
}

ModelFootprint Broker::planning_footprint(size_t model) const {
  ModelFootprint f = models_[model]->footprint;
  f.context_length = kv_reserve_tokens_;
  f.max_seqs = 1;
  return f;
}

}  // namespace lb
