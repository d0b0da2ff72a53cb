// The generation loop: requests start, their chunks go into the head as steps, sampled tokens
// come back from the tail and stream to clients, and requests end.
#include "broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "broker/plan_json.hpp"
#include "net/sockets.hpp"
#include "util/bytes.hpp"

namespace lb {

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
  cancel(it->second);
}

void Broker::cancel(Request& r) {
  // A step in the chain holds it: it ends when that step comes back, so no stage gets a step
  // for a request whose caches it was already told to free.
  if (!r.in_flight) {
    finish(r, "cancelled");
    return;
  }
  r.ending = "cancelled";
  unloop(&r);
}

void Broker::unloop(const Request* only) {
  if (!plan_) return;
  wire::Unloop u;
  for (auto& [id, r] : requests_) {
    if (r.in_flight && r.looping && !r.unloop_sent && (!only || only == &r)) {
      u.reqs.push_back(id);
      r.unloop_sent = true;
    }
  }
  if (!u.reqs.empty()) reply(plan_->stages.back().node_id, wire::encode(u));
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
  std::set<uint64_t> inflight;
  for (const auto& [id, r] : requests_) {
    if (r.in_flight) inflight.insert(r.step);
  }
  // Chunks wait while the chain holds max_inflight_steps steps: they join the next one. With
  // room for several steps, each carries at most an even share of the active requests, so the
  // groups of requests that travel together stay about equal in size (a request's result comes
  // back with the rest of its step, and it goes on in the next step sent after that): every
  // stage then gets batches of the same size instead of one big and one small group taking turns.
  const size_t limit = max_inflight_steps();
  const size_t share = (size_t(std::max(active, 1)) + limit - 1) / limit;
  while (!ready_chunks_.empty() && inflight.size() < limit) {
    inflight.insert(send_step(share));
  }
  // Loop steps keep the chain full for as long as their requests go on: they come back here to
  // be regrouped with the chunks that wait.
  if (!ready_chunks_.empty()) unloop();
}

uint64_t Broker::send_step(size_t max_requests) {
  wire::Step step;
  step.epoch = epoch_;
  step.id = next_step_++;
  step.dtype = dtype_;
  // The first max_requests requests in ready order, with all their chunks (a request replayed
  // after a move has several, which must stay in one step, in order).
  std::set<uint64_t> taken;
  take_ready(
      [&](const wire::Chunk& c) {
        if (!taken.count(c.req) && taken.size() < max_requests) taken.insert(c.req);
        return taken.count(c.req) != 0;
      },
      step.seqs, step.tokens);
  for (wire::Chunk& c : step.seqs) {
    Request& r = requests_.at(c.req);
    r.in_flight = true;
    r.looping = false;
    r.step = step.id;
    // The tail may go on by itself up to the request's last token (the one this chunk samples
    // is number generated + 1).
    if (c.sample && cfg_.loop_steps) c.more = uint32_t(r.params.n - r.generated.size() - 1);
  }
  send_frame(feed_, wire::encode(step));
  ++steps_sent_;
  step_rows_sent_ += step.tokens.size();
  step_rows_squared_ += step.tokens.size() * step.tokens.size();
  step_max_requests_ = std::max<uint64_t>(step_max_requests_, taken.size());
  step_sent_at_[step.id] = Clock::now();
  spdlog::debug("broker: step {} out: {} request(s), {} row(s); {} step(s) in flight", step.id,
                taken.size(), step.tokens.size(), step_sent_at_.size());
  return step.id;
}

void Broker::take_ready(const std::function<bool(const wire::Chunk&)>& take,
                        std::vector<wire::Chunk>& chunks, std::vector<int32_t>& tokens) {
  std::vector<wire::Chunk> rest;
  std::vector<int32_t> rest_tokens;
  size_t token = 0;
  for (wire::Chunk& c : ready_chunks_) {
    const bool taken = take(c);
    std::vector<int32_t>& to = taken ? tokens : rest_tokens;
    to.insert(to.end(), ready_tokens_.begin() + long(token),
              ready_tokens_.begin() + long(token + c.n));
    token += c.n;
    (taken ? chunks : rest).push_back(std::move(c));
  }
  ready_chunks_ = std::move(rest);
  ready_tokens_ = std::move(rest_tokens);
}

size_t Broker::max_inflight_steps() const {
  if (cfg_.max_inflight_steps > 0) return size_t(cfg_.max_inflight_steps);
  // Per host, as many steps as its cores can run at once at its stages' mean thread count, at
  // least one and at most one per stage. Stages whose threads fit the host's cores each get a
  // step to work on, as stages on different machines do. Stages whose threads together exceed
  // the cores would only take turns on them with a step each, while one step holding every
  // request reads each weight once for all of them.
  struct Host {
    size_t stages = 0;
    uint64_t threads = 0;
    uint64_t cores = 1;
  };
  std::map<std::string, Host> hosts;
  for (const PlanStage& s : plan_->stages) {
    const wire::Register& info = nodes_.at(s.node_id).info;
    Host& h = hosts[info.host];
    ++h.stages;
    h.threads += std::max<uint32_t>(1, info.threads);
    h.cores = std::max<uint64_t>(h.cores, info.cores);
  }
  size_t steps = 0;
  for (const auto& [name, h] : hosts)
    steps += std::clamp<size_t>(size_t(h.cores * h.stages / h.threads), 1, h.stages);
  return std::max<size_t>(1, steps);
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
  if (auto it = step_sent_at_.find(res.id); it != step_sent_at_.end()) {
    spdlog::debug("broker: step {} back after {:.2f} ms: {} token(s)", res.id,
                  seconds(Clock::now() - it->second) * 1e3, res.out.size());
    step_sent_at_.erase(it);
  }
  const ServedModel& sm = model();
  // The tokens of requests that go on reach their clients once the next step has left: the chain
  // waits for that step, a client only reads, and the broker's one ZeroMQ thread sends in order.
  std::vector<std::pair<uint64_t, std::string>> replies;  // request, token message
  uint64_t looped = 0;
  for (const wire::Sampled& s : res.out) {
    auto it = requests_.find(s.req);
    if (it == requests_.end()) {
      spdlog::warn("broker: result for unknown request {}", s.req);
      continue;
    }
    Request& r = it->second;
    // A looped token's next step is already on its way through the chain.
    r.in_flight = r.looping = s.looped;
    if (!s.looped) r.unloop_sent = false;
    looped += s.looped;
    if (!r.ending.empty()) {
      if (s.looped) {
        unloop(&r);
      } else {
        finish(r, r.ending);
      }
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
    std::string msg = wire::encode(wire::TokenMsg{r.id, s.token, s.lp, text});
    const char* end = stopped                                       ? "stop"
                      : sm.tokenizer->is_end_of_generation(s.token) ? "eos"
                      : r.generated.size() >= r.params.n            ? "length"
                                                                    : nullptr;
    if (end) {
      // Ends now, before the next step is made up, so a waiting request can take its place.
      if (!reply(r.client, msg)) {
        spdlog::info("broker: client of request {} is gone", r.id);
        end = "cancelled";
      }
      if (s.looped) {
        // Only a stop string or a client gone: the tail knows the last token and the end ones.
        r.ending = end;
        unloop(&r);
      } else {
        finish(r, end);
      }
      continue;
    }
    if (s.looped) {
      replies.emplace_back(r.id, std::move(msg));
      continue;
    }
    const int64_t pos = int64_t(r.prompt.size() + r.generated.size()) - 1;
    ready_chunks_.push_back(make_chunk(r, pos, 1));
    ready_tokens_.push_back(s.token);
    replies.emplace_back(r.id, std::move(msg));
  }
  if (looped > 0) {
    // The loop step the tail sent counts as a step into the chain, as if from here.
    ++steps_sent_;
    ++steps_looped_;
    step_rows_sent_ += looped;
    step_rows_squared_ += looped * looped;
    step_sent_at_[res.id] = Clock::now();
  }
  schedule();
  for (const auto& [req, msg] : replies) {
    auto it = requests_.find(req);
    if (it != requests_.end() && !reply(it->second.client, msg)) {
      spdlog::info("broker: client of request {} is gone: cancelling", req);
      cancel(it->second);
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
  forget(r);
}

void Broker::fail(Request& r, const std::string& message) {
  spdlog::error("broker: request {} failed: {}", r.id, message);
  wire::ErrorMsg e{message, "generate", r.id};
  reply(r.client, wire::encode(e));
  forget(r);
}

void Broker::forget(Request& r) {
  if (r.active) release(r.id);
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), r.id), waiting_.end());
  // A request can end while a chunk of it waits for room in the chain (cancelled then, or failed
  // with an abandoned plan): the chunk must not go out for a request that no longer exists.
  std::vector<wire::Chunk> dropped;
  std::vector<int32_t> dropped_tokens;
  take_ready([&](const wire::Chunk& c) { return c.req == r.id; }, dropped, dropped_tokens);
  requests_.erase(r.id);
}

}  // namespace lb
