#include "stage/stage.hpp"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <set>

#include "compute/probe.hpp"
#include "config/stage_config.hpp"
#include "net/sockets.hpp"
#include "sampling/sampler.hpp"
#include "stage/model_cache.hpp"
#include "sys/memory.hpp"

namespace lb {

namespace {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;
void on_signal(int) {
  g_stop = 1;
}
void on_hangup(int) {
  g_reload = 1;
}

std::string host_name() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// CPUs online on this machine, which every stage on it shares (not only those this process may
// run on): the broker compares them with the threads of the stages on the host.
uint32_t host_cores() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? uint32_t(n) : 1;
}

}  // namespace

Stage::Stage(StageOptions opt)
    : opt_(std::move(opt)),
      ctx_(1),
      control_(make_socket(ctx_, zmq::socket_type::dealer, opt_.max_message_bytes)),
      data_in_(make_socket(ctx_, zmq::socket_type::pull, opt_.max_message_bytes)),
      data_out_(make_socket(ctx_, zmq::socket_type::push, opt_.max_message_bytes)),
      loop_out_(make_socket(ctx_, zmq::socket_type::push, opt_.max_message_bytes)),
      pool_(opt_.threads) {
  limits_.max_message_bytes = opt_.max_message_bytes;
  data_in_.bind(opt_.bind);
  data_endpoint_ = last_endpoint(data_in_);
  if (!opt_.advertise.empty()) data_endpoint_ = with_host(data_endpoint_, opt_.advertise, false);
  if (opt_.node_id.empty()) opt_.node_id = host_name() + "-" + std::to_string(::getpid());
  control_.set(zmq::sockopt::routing_id, opt_.node_id);
  control_.connect(opt_.broker);
  compute_score_ = probe_compute_score(pool_);
}

void Stage::send_control(const std::string& bytes) {
  send_frame(control_, bytes);
}

int Stage::run() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGHUP, on_hangup);

  wire::Register reg;
  reg.node = opt_.node_id;
  reg.order = opt_.order;
  reg.host = host_name();
  reg.budget = opt_.memory_budget;
  reg.high_water = opt_.high_water;
  reg.compute = compute_score_;
  reg.threads = uint32_t(pool_.size());
  reg.cores = host_cores();
  reg.data = data_endpoint_;
  reg.model = opt_.model;
  send_control(wire::encode(reg));
  spdlog::info(
      "stage {}: data on {}, budget {} MiB, compute {:.1f} GMAC/s, {} threads; registering with {}",
      opt_.node_id, data_endpoint_, opt_.memory_budget >> 20, compute_score_, pool_.size(),
      opt_.broker);

  auto next_heartbeat = std::chrono::steady_clock::now();
  while (!g_stop) {
    if (g_reload) {
      g_reload = 0;
      reload_config();
    }
    zmq::pollitem_t items[] = {{control_.handle(), 0, ZMQ_POLLIN, 0},
                               {data_in_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(opt_.heartbeat_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    if (items[0].revents & ZMQ_POLLIN) {
      zmq::message_t msg;
      while (control_.recv(msg, zmq::recv_flags::dontwait)) {
        on_control(msg.to_string());
        if (g_stop) break;
      }
    }
    while (!deferred_control_.empty() && !g_stop) {
      const std::string frame = std::move(deferred_control_.front());
      deferred_control_.pop_front();
      on_control(frame);
    }
    if (items[1].revents & ZMQ_POLLIN) {
      // The step will need the pool's workers, asleep since the last one: woken now, they come
      // up (tens of microseconds on a halted virtual CPU) while this thread receives and
      // decodes it, not after. Switched on and off between alternating generations of one
      // 3-stage cluster: with a tiny model, whose 0.4 ms tokens are half hops, the head's median
      // time per token was 4.4% (17 us) shorter, faster in 22 of 30 pairs; with the 1.1B Q4_0
      // model, whose tokens take 20 ms, the gain is within the machine's noise (median period
      // 2.2%, 0.3%, 0.3% shorter and 0.2% longer in four runs; faster in 185 of 340 pairs).
      pool_.wake();
      // Take everything waiting: concurrent requests run as one batch.
      std::vector<std::string> frames;
      zmq::message_t msg;
      while (data_in_.recv(msg, zmq::recv_flags::dontwait)) frames.push_back(msg.to_string());
      on_data(std::move(frames));
    }
    if (intake_ && std::chrono::steady_clock::now() - intake_progress_ >
                       std::chrono::seconds(opt_.kv_wait_s)) {
      spdlog::warn(
          "stage {}: no KV part for {} s while moving to epoch {}: the requests still "
          "waited for will be replayed",
          opt_.node_id, opt_.kv_wait_s, epoch_);
      intake_->stop_waiting();
      send_ready();
    }
    if (std::chrono::steady_clock::now() >= next_heartbeat) {
      heartbeat();
      next_heartbeat =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(opt_.heartbeat_ms);
    }
  }
  spdlog::info("stage {}: stopping", opt_.node_id);
  return 0;
}

void Stage::reload_config() {
  if (opt_.config_path.empty()) {
    spdlog::warn("stage {}: SIGHUP ignored: started without --config", opt_.node_id);
    return;
  }
  StageConfig c;
  try {
    c = load_stage_config(opt_.config_path);
  } catch (const Error& e) {
    spdlog::error("stage {}: keeping the current settings: {}", opt_.node_id, e.what());
    return;
  }
  if (c.memory && *c.memory != opt_.memory_budget) {
    spdlog::info("stage {}: budget {} MiB -> {} MiB (config reloaded); telling the broker",
                 opt_.node_id, opt_.memory_budget >> 20, *c.memory >> 20);
    opt_.memory_budget = *c.memory;
    pressure_reported_ = false;
    send_control(wire::encode(wire::Budget{opt_.memory_budget}));
  }
}

uint64_t Stage::bytes() const {
  return weights_ ? weights_->bytes() : 0;
}

void Stage::heartbeat() {
  wire::Heartbeat hb;
  hb.node = opt_.node_id;
  hb.rss = resident_bytes();
  hb.weights = bytes();
  hb.kv = runner_ ? runner_->kv().bytes() : 0;
  hb.budget = opt_.memory_budget;
  hb.batches = batches_;
  hb.overhead_us = batches_ > 0 ? overhead_seconds_ / double(batches_) * 1e6 : 0.0;
  cgroup_ = cgroup_memory();
  if (cgroup_) {
    hb.cg_limit = cgroup_->limit.value_or(0);
    hb.cg_usage = cgroup_->usage;
  }
  send_control(wire::encode(hb));
  check_pressure();
}

void Stage::check_pressure() {
  if (!runner_) return;
  // Once per epoch, and again every few seconds while it lasts: the broker may have had no
  // better plan the first time, and caches that keep growing may change that.
  const auto now = std::chrono::steady_clock::now();
  if (pressure_reported_ && now - pressure_reported_at_ < std::chrono::seconds(3)) return;
  // Weights and KV caches against the budget; and, under a cgroup v2 limit, the kernel's own
  // count against that limit, so the broker moves layers before the OOM killer acts. A limit
  // below the budget becomes the budget the broker is told about.
  const uint64_t held = bytes() + runner_->kv().bytes();
  uint64_t budget = opt_.memory_budget;
  bool over = double(held) > opt_.high_water * double(budget);
  // The cgroup figures are the last heartbeat's: no file reads after every batch.
  const std::optional<CgroupMemory>& cg = cgroup_;
  if (cg && cg->limit) {
    budget = std::min(budget, *cg->limit);
    over = over || double(cg->usage) > opt_.high_water * double(*cg->limit);
  }
  if (!over) return;
  wire::Pressure p;
  p.node = opt_.node_id;
  p.rss = resident_bytes();
  p.weights = bytes();
  p.kv = runner_->kv().bytes();
  p.budget = budget;
  spdlog::warn("stage {}: memory pressure: weights {} MiB + KV {} MiB of a {} MiB budget{}",
               opt_.node_id, p.weights >> 20, p.kv >> 20, p.budget >> 20,
               cg && cg->limit ? " (cgroup " + std::to_string(cg->usage >> 20) + " of " +
                                     std::to_string(*cg->limit >> 20) + " MiB)"
                               : "");
  send_control(wire::encode(p));
  pressure_reported_ = true;
  pressure_reported_at_ = now;
}

void Stage::on_control(const std::string& frame) {
  std::string type = "?";
  try {
    const wire::Envelope env = wire::Envelope::parse(frame.data(), frame.size(), limits_);
    type = env.type();
    if (type == "assign") {
      wire::Assign a;
      wire::decode(env, a);
      try {
        on_assign(a);
      } catch (const Error& e) {
        // With its epoch: the broker may have planned again meanwhile, and must not take this
        // for an answer to its newer assign.
        spdlog::error("stage {}: cannot serve epoch {}: {}", opt_.node_id, a.epoch, e.what());
        send_control(wire::encode(wire::ErrorMsg{e.what(), type, std::nullopt, a.epoch}));
      }
    } else if (type == "kv") {
      wire::KvPart p;
      wire::decode(env, p);
      on_kv(p);
    } else if (type == "release") {
      wire::Release r;
      wire::decode(env, r);
      if (runner_) runner_->kv().erase(r.req);
      unlooped_.erase(r.req);
      ::malloc_trim(0);  // give the freed cache back to the kernel, so resident memory shows it
    } else if (type == "unloop") {
      wire::Unloop u;
      wire::decode(env, u);
      // Bounded by the requests this stage holds caches for: a release erases the entry.
      for (uint64_t req : u.reqs) {
        if (runner_ && runner_->kv().find(req)) unlooped_.insert(req);
      }
    } else if (type == "budget") {
      wire::Budget b;
      wire::decode(env, b);
      if (b.budget != opt_.memory_budget) {
        spdlog::info("stage {}: budget {} MiB -> {} MiB", opt_.node_id, opt_.memory_budget >> 20,
                     b.budget >> 20);
        opt_.memory_budget = b.budget;
      }
    } else if (type == "bye") {
      spdlog::info("stage {}: broker said bye", opt_.node_id);
      g_stop = 1;
    } else if (type == "error") {
      wire::ErrorMsg e;
      wire::decode(env, e);
      spdlog::error("stage {}: broker reports: {} (about '{}')", opt_.node_id, e.msg, e.ref);
      if (e.ref == "register") g_stop = 1;
    } else {
      throw wire::WireError("unknown control message type '" + type + "'");
    }
  } catch (const Error& e) {
    spdlog::error("stage {}: rejected control message: {}", opt_.node_id, e.what());
    send_control(wire::encode(wire::ErrorMsg{e.what(), type, std::nullopt}));
  }
}

std::string Stage::fetch_chunk(const wire::ModelRef& model, uint64_t offset, uint64_t size) {
  constexpr int kAttempts = 5;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    send_control(wire::encode(wire::Fetch{model.digest, offset, size}));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline && !g_stop) {
      zmq::pollitem_t item{control_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(opt_.heartbeat_ms));
      zmq::message_t msg;
      if (!control_.recv(msg, zmq::recv_flags::dontwait)) {
        heartbeat();  // a long transfer must not look like a dead stage
        continue;
      }
      const wire::Envelope env = wire::Envelope::parse(msg.data(), msg.size(), limits_);
      if (env.type() == "error") {
        wire::ErrorMsg e;
        wire::decode(env, e);
        if (e.ref == "fetch") throw Error("the broker refused to send model bytes: " + e.msg);
      }
      if (env.type() != "chunk") {
        deferred_control_.push_back(msg.to_string());  // handled once the layers are in
        continue;
      }
      wire::ModelChunk c;
      wire::decode(env, c);
      if (c.digest != model.digest || c.offset != offset) continue;  // an answer to an earlier try
      if (c.data.size() != size || wire::chunk_hash(c.data) != c.hash) {
        spdlog::error(
            "stage {}: chunk at offset {} ({} bytes) failed its size/hash check: fetching it again",
            opt_.node_id, offset, c.data.size());
        break;
      }
      return std::move(c.data);
    }
  }
  throw Error("could not fetch bytes " + std::to_string(offset) + "+" + std::to_string(size) +
              " of model '" + model.name + "' from the broker");
}

std::string Stage::model_path(const wire::Assign& a) {
  if (!opt_.model.empty()) return opt_.model;
  ModelCache cache(opt_.cache_dir, a.model, [&](uint64_t offset, uint64_t size) {
    return fetch_chunk(a.model, offset, size);
  });
  if (a.begin < a.end) cache.ensure_range(a.begin, a.end);
  if (cache.fetched_bytes() > 0) {
    spdlog::info("stage {}: fetched {} MiB of '{}' from the broker into {}", opt_.node_id,
                 cache.fetched_bytes() >> 20, a.model.name, cache.path());
  }
  return cache.path();
}

void Stage::on_assign(const wire::Assign& a) {
  // The model: our own copy when we have one, else the layers fetched from the broker.
  const std::string path = model_path(a);
  if (!file_ || file_->path() != path) file_ = std::make_shared<GgufFile>(path);
  if (file_->digest() != a.model.digest) {
    throw Error("model file '" + path + "' is not the broker's '" + a.model.name + "' (digest " +
                file_->digest() + " vs " + a.model.digest + ")");
  }
  const auto t0 = std::chrono::steady_clock::now();
  // The new range first (mapping what it adds), then the old one goes, giving back only the
  // pages the new range does not hold. The old caches outlive the old range until their layers
  // have gone where they belong: kept ones into the new caches, lost ones to their new owners.
  std::unique_ptr<ModelWeights> next;
  if (a.begin < a.end) {
    next = std::make_unique<ModelWeights>(
        file_, a.begin, a.end, WeightOptions{weights_.get(), WeightLayout::Fastest, &pool_});
  }
  std::optional<KvCache> old_kv;
  if (runner_) old_kv.emplace(std::move(runner_->kv()));
  runner_.reset();
  if (weights_ && next) weights_->hand_over_to(*next);
  weights_ = std::move(next);
  if (weights_) runner_ = std::make_unique<RangeRunner>(*weights_, pool_, a.ctx);
  uint64_t kv_sent = 0;
  if (old_kv) {
    kv_sent =
        send_lost_layers(*old_kv, a, [&](const wire::KvPart& p) { send_control(wire::encode(p)); });
  }
  intake_.emplace(a, old_kv ? &*old_kv : nullptr, runner_ ? &runner_->kv() : nullptr);
  intake_progress_ = std::chrono::steady_clock::now();
  old_kv.reset();
  ::malloc_trim(0);  // the old caches' memory goes back to the kernel now, not at some later free
  if (downstream_ != a.downstream) {
    if (!downstream_.empty()) data_out_.disconnect(downstream_);
    if (!a.downstream.empty()) data_out_.connect(a.downstream);
    downstream_ = a.downstream;
  }
  if (head_ != a.head) {
    if (!head_.empty()) loop_out_.disconnect(head_);
    if (!a.head.empty()) loop_out_.connect(a.head);
    head_ = a.head;
  }
  eog_ = std::set<int32_t>(a.eog.begin(), a.eog.end());
  unlooped_.clear();
  epoch_ = a.epoch;
  dtype_ = a.dtype;
  pressure_reported_ = false;
  assigned_ = weights_ != nullptr;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info(
      "stage {}: epoch {}: layers [{}, {}) of {} ({} MiB) loaded in {:.3f}s; {} KiB of KV caches "
      "sent on; downstream {}",
      opt_.node_id, a.epoch, a.begin, a.end, a.model.name, bytes() >> 20, secs, kv_sent >> 10,
      a.downstream);
  if (intake_->complete()) send_ready();
}

void Stage::on_kv(const wire::KvPart& p) {
  if (!intake_) throw Error("kv part arrived while no move is under way");
  intake_progress_ = std::chrono::steady_clock::now();
  try {
    intake_->accept(p);
  } catch (const Error&) {
    if (intake_->complete()) send_ready();
    throw;
  }
  if (intake_->complete()) send_ready();
}

void Stage::send_ready() {
  wire::Ready r;
  r.epoch = epoch_;
  if (weights_) {
    r.begin = weights_->begin();
    r.end = weights_->end();
  }
  r.weights = bytes();
  r.rss = resident_bytes();
  r.missing = intake_->missing();
  spdlog::info("stage {}: epoch {} ready: {} KiB of KV caches received{}", opt_.node_id, epoch_,
               intake_->received_bytes() >> 10,
               r.missing.empty()
                   ? ""
                   : ", " + std::to_string(r.missing.size()) + " request(s) to be replayed");
  intake_.reset();
  send_control(wire::encode(r));
}

void Stage::on_data(std::vector<std::string> frames) {
  const auto t_in = std::chrono::steady_clock::now();
  compute_seconds_ = 0;
  uint64_t batches = 0;
  std::vector<wire::Step> steps;
  for (const std::string& f : frames) {
    try {
      const wire::Envelope env = wire::Envelope::parse(f.data(), f.size(), limits_);
      wire::Step s;
      wire::decode(env, s);
      if (!assigned_) throw Error("step arrived before any layers were assigned");
      if (s.epoch != epoch_) {
        throw Error("step " + std::to_string(s.id) + " is from epoch " + std::to_string(s.epoch) +
                    ", this stage serves epoch " + std::to_string(epoch_));
      }
      steps.push_back(std::move(s));
    } catch (const Error& e) {
      spdlog::error("stage {}: rejected data message: {}", opt_.node_id, e.what());
      send_control(wire::encode(wire::ErrorMsg{e.what(), "step", std::nullopt}));
    }
  }
  // Split into batches in which no request appears twice (its rows must be contiguous).
  size_t i = 0;
  while (i < steps.size()) {
    std::set<uint64_t> reqs;
    size_t j = i;
    for (; j < steps.size(); ++j) {
      bool clash = false;
      for (const auto& c : steps[j].seqs) clash |= reqs.count(c.req) != 0;
      if (clash) break;
      for (const auto& c : steps[j].seqs) reqs.insert(c.req);
    }
    std::vector<wire::Step> batch(std::make_move_iterator(steps.begin() + long(i)),
                                  std::make_move_iterator(steps.begin() + long(j)));
    if (batch.size() == 1) {
      run_batch(batch, true);
    } else if (!run_batch(batch, false)) {
      // One bad message must not fail its neighbours: run them one by one to find it.
      for (auto& s : batch) run_batch({s}, true);
    }
    ++batches;
    i = j;
  }
  if (batches > 0) {
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_in).count();
    overhead_seconds_ += total - compute_seconds_;
    batches_ += batches;
    check_pressure();
  }
}

bool Stage::run_batch(const std::vector<wire::Step>& steps, bool report_errors) {
  const auto t_batch = std::chrono::steady_clock::now();
  const HParams& hp = weights_->hparams();
  StepInput in;
  try {
    for (const wire::Step& s : steps) {
      if (weights_->has_embedding()) {
        if (s.tokens.empty())
          throw Error("step " + std::to_string(s.id) + " carries no token ids for the first stage");
        in.tokens.insert(in.tokens.end(), s.tokens.begin(), s.tokens.end());
      } else {
        if (s.dim != uint32_t(hp.dim)) {
          throw Error("step " + std::to_string(s.id) + " has rows of " + std::to_string(s.dim) +
                      " values, the model's are " + std::to_string(hp.dim));
        }
        const size_t off = in.hidden.size();
        in.hidden.resize(off + size_t(s.rows) * size_t(hp.dim));
        wire::unpack_activations(s.data, s.dtype, in.hidden.data() + off,
                                 size_t(s.rows) * size_t(hp.dim));
      }
      for (const wire::Chunk& c : s.seqs) {
        for (uint32_t r = 0; r < c.n; ++r) {
          in.seq.push_back(c.req);
          in.chunk.push_back(c.n);
          in.pos.push_back(c.pos + r);
          in.want_logits.push_back(c.sample.has_value() && r + 1 == c.n);
        }
      }
    }
    if (!weights_->has_head()) in.want_logits.clear();
    StepOutput out;
    const auto t0 = std::chrono::steady_clock::now();
    runner_->step(in, out);
    const auto t1 = std::chrono::steady_clock::now();
    compute_seconds_ += std::chrono::duration<double>(t1 - t0).count();
    emit(steps, out);
    if (spdlog::should_log(spdlog::level::debug)) {
      const auto ms = [](auto a, auto b) {
        return std::chrono::duration<double, std::milli>(b - a).count();
      };
      spdlog::debug(
          "stage {}: {} step(s) from step {}, {} rows: input {:.2f} ms, compute {:.2f} ms, emit "
          "{:.2f} ms",
          opt_.node_id, steps.size(), steps.front().id, in.rows(), ms(t_batch, t0), ms(t0, t1),
          ms(t1, std::chrono::steady_clock::now()));
    }
    return true;
  } catch (const Error& e) {
    if (!report_errors) return false;
    for (const wire::Step& s : steps) {
      spdlog::error("stage {}: step {} failed: {}", opt_.node_id, s.id, e.what());
      // One error per request: each of them waits for this step, and the broker fails them all.
      for (const wire::Chunk& c : s.seqs)
        send_control(wire::encode(wire::ErrorMsg{e.what(), "step", c.req}));
      if (s.seqs.empty())
        send_control(wire::encode(wire::ErrorMsg{e.what(), "step", std::nullopt}));
    }
    return false;
  }
}

void Stage::emit(const std::vector<wire::Step>& steps, const StepOutput& out) {
  const HParams& hp = weights_->hparams();
  if (!weights_->has_head()) {
    size_t row = 0;
    for (const wire::Step& s : steps) {
      wire::Step next;
      next.epoch = s.epoch;
      next.id = s.id;
      next.seqs = s.seqs;
      next.dtype = dtype_;
      next.rows = 0;
      for (const auto& c : s.seqs) next.rows += c.n;
      next.dim = uint32_t(hp.dim);
      next.data = wire::pack_activations(out.hidden.data() + row * size_t(hp.dim),
                                         size_t(next.rows) * size_t(hp.dim), dtype_);
      row += next.rows;
      send_frame(data_out_, wire::encode(next));
    }
    return;
  }
  // Sampling: one task per sampled row, spread over the pool (the rows are independent, and a
  // draw depends only on its logits, its parameters and its index).
  std::vector<std::pair<const wire::Chunk*, const float*>> rows;
  for (const wire::Step& s : steps) {
    for (const wire::Chunk& c : s.seqs) {
      if (c.sample) rows.emplace_back(&c, out.logits.data() + rows.size() * size_t(hp.n_vocab));
    }
  }
  std::vector<wire::Sampled> sampled(rows.size());
  pool_.run(int64_t(rows.size()), [&](int64_t i) {
    const wire::Chunk& c = *rows[size_t(i)].first;
    const wire::SampleSpec& sp = *c.sample;
    SamplingParams p;
    p.temperature = sp.temp;
    p.top_k = sp.top_k;
    p.top_p = sp.top_p;
    p.min_p = sp.min_p;
    p.repeat_penalty = sp.rep;
    p.repeat_last_n = int32_t(sp.recent.size());
    p.seed = sp.seed;
    wire::Sampled& smp = sampled[size_t(i)];
    smp.req = c.req;
    smp.pos = c.pos + c.n - 1;
    smp.token = sample_token(rows[size_t(i)].second, hp.n_vocab, p, sp.recent, sp.draw);
  });
  // Loop steps go first: the head waits for them, while the log-probabilities below and the
  // results only matter to the broker (computing them first kept the head waiting about 50 us
  // longer per token: a log-sum-exp over the vocabulary).
  size_t next = 0;
  for (const wire::Step& s : steps) {
    wire::Step loop;
    loop.epoch = s.epoch;
    loop.id = s.id;
    loop.dtype = dtype_;
    for (const wire::Chunk& c : s.seqs) {
      if (!c.sample) continue;
      wire::Sampled& smp = sampled[next++];
      smp.looped = goes_on(c, smp.token);
      if (smp.looped) {
        loop.seqs.push_back(wire::next_chunk(c, smp.token));
        loop.tokens.push_back(smp.token);
      }
    }
    if (!loop.seqs.empty()) send_frame(loop_out_, wire::encode(loop));
  }
  pool_.run(int64_t(rows.size()), [&](int64_t i) {
    const wire::SampleSpec& sp = *rows[size_t(i)].first->sample;
    const float* logits = rows[size_t(i)].second;
    wire::Sampled& smp = sampled[size_t(i)];
    const Logprobs lp = logprobs(logits, hp.n_vocab, smp.token, int(sp.top));
    smp.lp = lp.chosen;
    for (const TokenLogprob& t : lp.top) smp.top.push_back({t.id, t.logprob});
    if (sp.logits)
      smp.logits.assign(reinterpret_cast<const char*>(logits), size_t(hp.n_vocab) * sizeof(float));
  });
  next = 0;
  for (const wire::Step& s : steps) {
    wire::Result res;
    res.epoch = s.epoch;
    res.id = s.id;
    for (const wire::Chunk& c : s.seqs) {
      if (c.sample) res.out.push_back(std::move(sampled[next++]));
    }
    send_frame(data_out_, wire::encode(res));
  }
}

bool Stage::goes_on(const wire::Chunk& c, int32_t token) {
  const bool unlooped = unlooped_.erase(c.req) > 0;  // this token answers the unloop
  return !unlooped && !head_.empty() && c.more > 0 && eog_.count(token) == 0;
}

}  // namespace lb
