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

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
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
  for (const ModelEntry& e : cfg_.models) models_.push_back(open_model(e, cfg_));
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
  if (!known) node_order_.push_back(m.node);
  std::stable_sort(node_order_.begin(), node_order_.end(),
                   [&](const std::string& a, const std::string& b) {
                     return nodes_.at(a).info.order < nodes_.at(b).info.order;
                   });
  spdlog::info(
      "broker: stage '{}' on {} registered: budget {}, compute {:.1f}, {} threads, data {}", m.node,
      m.host, format_bytes(m.budget), m.compute, m.threads, m.data);
}

std::vector<PlanNode> Broker::plan_nodes() const {
  std::vector<PlanNode> out;
  for (const std::string& id : node_order_) {
    const NodeState& n = nodes_.at(id);
    if (n.lost) continue;
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
  std::string skipped;
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
      if (plan_error_ != skipped)
        spdlog::warn("broker: {} does not fit: {}", models_[i]->entry.name, e.what());
    }
  }
  if (!plan_) {
    plan_error_ = skipped;
    return;
  }
  plan_error_.clear();
  spdlog::info("broker: model {}", model_reason_);
  send_assignments({});
}

void Broker::send_assignments(const std::vector<std::string>& emptied) {
  ++epoch_;
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
  for (size_t i = 0; i < plan_->stages.size(); ++i) {
    const PlanStage& s = plan_->stages[i];
    nodes_[s.node_id].ready = false;
    a.begin = s.layer_begin;
    a.end = s.layer_end;
    a.upstream = i == 0 ? "broker" : nodes_[plan_->stages[i - 1].node_id].info.data;
    a.downstream = i + 1 < plan_->stages.size() ? nodes_[plan_->stages[i + 1].node_id].info.data
                                                : collect_endpoint_;
    reply(s.node_id, wire::encode(a));
  }
  // Stages that held layers and hold none now give their memory back.
  a.begin = a.end = 0;
  a.upstream = a.downstream = "";
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
  if (auto it = nodes_.find(peer); it != nodes_.end()) it->second.error = m.msg;
  if (m.req) {
    if (auto it = requests_.find(*m.req); it != requests_.end())
      fail(it->second, "stage " + peer + ": " + m.msg);
  }
}

void Broker::check_nodes() {
  const auto now = Clock::now();
  for (auto& [id, n] : nodes_) {
    if (n.lost || now - n.last_seen < std::chrono::milliseconds(cfg_.node_timeout_ms)) continue;
    n.lost = true;
    spdlog::warn("broker: stage '{}' has been silent for {} ms: considered lost", id,
                 cfg_.node_timeout_ms);
    if (!plan_) continue;
    const bool planned = std::any_of(plan_->stages.begin(), plan_->stages.end(),
                                     [&](const PlanStage& s) { return s.node_id == id; });
    if (!planned) continue;
    // Its layers are gone: fail what was running and plan again with the stages left.
    std::vector<uint64_t> active;
    for (const auto& [rid, r] : requests_) {
      if (r.active) active.push_back(rid);
    }
    for (uint64_t rid : active) fail(requests_.at(rid), "stage '" + id + "' was lost");
    plan_.reset();
    migration_.reset();
    serving_ = false;
  }
}

namespace {

wire::Chunk make_chunk(const Request& r, int64_t pos, uint32_t n, bool sample = true) {
  wire::Chunk c;
  c.req = r.id;
  c.pos = pos;
  c.n = n;
  if (!sample) return c;
  wire::SampleSpec s;
  s.temp = r.params.temp;
  s.top_k = r.params.top_k;
  s.top_p = r.params.top_p;
  s.min_p = r.params.min_p;
  s.rep = r.params.rep;
  s.seed = r.params.seed;
  s.draw = r.generated.size();
  s.top = r.params.top;
  if (s.rep != 1.0f) {
    // The repetition penalty looks at the last 64 tokens, as `layerbus run` does.
    std::vector<int32_t> all = r.prompt;
    all.insert(all.end(), r.generated.begin(), r.generated.end());
    const size_t from = all.size() > 64 ? all.size() - 64 : 0;
    s.recent.assign(all.begin() + long(from), all.end());
  }
  c.sample = s;
  return c;
}

}  // namespace

void Broker::on_generate(const std::string& peer, const wire::Generate& m) {
  // Tokenized when it starts: until the first plan it is not known which model will serve it.
  Request r;
  r.id = next_req_++;
  r.client = peer;
  r.params = m;
  r.start = Clock::now();
  waiting_.push_back(r.id);
  requests_.emplace(r.id, std::move(r));
}

bool Broker::start(Request& r) {
  const ServedModel& sm = model();
  r.prompt = sm.tokenizer->encode(r.params.prompt, true);
  if (r.prompt.empty()) {
    fail(r, "the prompt has no tokens");
    return false;
  }
  if (int64_t(r.prompt.size()) >= cfg_.context) {
    fail(r, "the prompt has " + std::to_string(r.prompt.size()) + " tokens; the context holds " +
                std::to_string(cfg_.context));
    return false;
  }
  r.params.n = uint32_t(std::min<int64_t>(r.params.n, cfg_.context - int64_t(r.prompt.size())));
  r.text = std::make_unique<TextStream>(*sm.tokenizer, r.params.stop);
  if (!reply(r.client, wire::encode(wire::Accepted{r.id, r.prompt}))) {
    finish(r, "cancelled");
    return false;
  }
  if (r.params.n == 0) {
    finish(r, "length");
    return false;
  }
  r.active = true;
  ready_chunks_.push_back(make_chunk(r, 0, uint32_t(r.prompt.size())));
  ready_tokens_.insert(ready_tokens_.end(), r.prompt.begin(), r.prompt.end());
  return true;
}

void Broker::on_cancel(const std::string& peer, const wire::Cancel& m) {
  auto it = requests_.find(m.req);
  if (it == requests_.end() || it->second.client != peer)
    throw Error("no request " + std::to_string(m.req) + " of yours");
  it->second.cancelled = true;
  if (!it->second.in_flight) finish(it->second, "cancelled");
}

void Broker::schedule() {
  if (!serving_ || migration_) return;
  int active = 0;
  for (const auto& [id, r] : requests_) active += r.active;
  while (!waiting_.empty() && active < cfg_.max_sequences) {
    auto it = requests_.find(waiting_.front());
    waiting_.pop_front();
    if (it != requests_.end() && start(it->second)) ++active;
  }
  if (ready_chunks_.empty()) return;
  wire::Step step;
  step.epoch = epoch_;
  step.id = next_step_++;
  step.seqs = std::move(ready_chunks_);
  step.tokens = std::move(ready_tokens_);
  step.dtype = dtype_;
  ready_chunks_.clear();
  ready_tokens_.clear();
  for (const wire::Chunk& c : step.seqs) requests_.at(c.req).in_flight = true;
  send_frame(feed_, wire::encode(step));
}

void Broker::on_result(const std::string& frame) {
  wire::Result res;
  try {
    const wire::Envelope env = wire::Envelope::parse(frame.data(), frame.size(), limits_);
    wire::decode(env, res);
  } catch (const Error& e) {
    spdlog::error("broker: rejected a result: {}", e.what());
    return;
  }
  if (res.epoch != epoch_) {
    spdlog::warn("broker: dropped step {} result from epoch {} (current {})", res.id, res.epoch,
                 epoch_);
    return;
  }
  const ServedModel& sm = model();
  for (const wire::Sampled& s : res.out) {
    auto it = requests_.find(s.req);
    if (it == requests_.end()) {
      spdlog::warn("broker: result for unknown request {}", s.req);
      continue;
    }
    Request& r = it->second;
    r.in_flight = false;
    if (r.cancelled) {
      finish(r, "cancelled");
      continue;
    }
    if (s.token < 0 || s.token >= sm.hp.n_vocab) {
      fail(r,
           "the last stage sampled token " + std::to_string(s.token) + ", outside the vocabulary");
      continue;
    }
    const auto now = Clock::now();
    if (r.generated.empty())
      r.first_token = now;
    else
      ++r.decode_steps;
    r.last_token = now;
    r.generated.push_back(s.token);
    recent_tokens_.push_back(now);
    while (now - recent_tokens_.front() > std::chrono::seconds(10)) recent_tokens_.pop_front();
    bool stopped = false;
    const std::string text = r.text->push(s.token, stopped);
    r.text_so_far += text;
    if (!reply(r.client, wire::encode(wire::TokenMsg{r.id, s.token, s.lp, text}))) {
      spdlog::info("broker: client of request {} is gone: cancelling", r.id);
      finish(r, "cancelled");
      continue;
    }
    if (stopped)
      finish(r, "stop");
    else if (sm.tokenizer->is_end_of_generation(s.token))
      finish(r, "eos");
    else if (r.generated.size() >= r.params.n)
      finish(r, "length");
    else {
      const int64_t pos = int64_t(r.prompt.size() + r.generated.size()) - 1;
      ready_chunks_.push_back(make_chunk(r, pos, 1));
      ready_tokens_.push_back(s.token);
    }
  }
}

void Broker::release(uint64_t req) {
  if (!plan_) return;
  for (const PlanStage& s : plan_->stages) reply(s.node_id, wire::encode(wire::Release{req}));
}

void Broker::finish(Request& r, const std::string& reason) {
  if (r.text) r.text_so_far += r.text->flush();
  wire::Done d;
  d.req = r.id;
  d.reason = reason;
  d.tokens = r.generated;
  d.text = r.text_so_far;
  d.prompt_s = r.generated.empty() ? 0 : seconds(r.first_token - r.start);
  d.decode_s = r.generated.size() > 1 ? seconds(r.last_token - r.first_token) : 0;
  d.decode_steps = r.decode_steps;
  reply(r.client, wire::encode(d));
  if (r.active) release(r.id);
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), r.id), waiting_.end());
  requests_.erase(r.id);
}

void Broker::fail(Request& r, const std::string& message) {
  spdlog::error("broker: request {} failed: {}", r.id, message);
  wire::ErrorMsg e{message, "generate", r.id};
  reply(r.client, wire::encode(e));
  if (r.active) release(r.id);
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), r.id), waiting_.end());
  requests_.erase(r.id);
}

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
                     {"batches", n.last_heartbeat.batches},
                     {"overhead_us", n.last_heartbeat.overhead_us},
                     {"data", n.info.data},
                     {"state", n.lost    ? "lost"
                               : n.ready ? "ready"
                                         : "registered"}};
    if (!n.error.empty()) e["error"] = n.error;
    if (plan_) {
      for (const PlanStage& s : plan_->stages) {
        if (s.node_id == id) e["layers"] = {s.layer_begin, s.layer_end};
      }
    }
    nodes.push_back(e);
  }
  j["nodes"] = nodes;
  j["serving"] = serving_;
  j["rebalancing"] = migration_.has_value();
  j["kv_reserve_tokens"] = kv_reserve_tokens_;
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

ModelFootprint Broker::planning_footprint(size_t model) const {
  ModelFootprint f = models_[model]->footprint;
  f.context_length = kv_reserve_tokens_;
  f.max_seqs = 1;
  return f;
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
