#pragma once
// The broker: registers stages, plans which layers each holds, feeds token ids into the head of
// the chain, collects sampled tokens from its tail, runs every request's generation loop and
// streams each token to its client as soon as it exists.
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "broker/text_stream.hpp"
#include "config/broker_config.hpp"
#include "gguf/gguf_file.hpp"
#include "model/hparams.hpp"
#include "plan/planner.hpp"
#include "tokenizer/tokenizer.hpp"
#include "wire/messages.hpp"

namespace lb {

using Clock = std::chrono::steady_clock;

struct NodeState {
  std::string id;  // also its ROUTER routing id
  wire::Register info;
  Clock::time_point last_seen;
  wire::Heartbeat last_heartbeat;
  bool lost = false;
  bool failed = false;  // could not load its last assignment: planned around from then on
  bool ready = false;
  std::string error;
};

// A model the broker can serve, opened for its metadata and tokenizer (weights stay unread).
struct ServedModel {
  ModelEntry entry;
  std::shared_ptr<GgufFile> file;
  HParams hp;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelFootprint footprint;
};

struct Request {
  uint64_t id = 0;
  std::string client;  // routing id
  wire::Generate params;
  std::vector<int32_t> prompt;
  std::vector<int32_t> generated;
  std::unique_ptr<TextStream> text;
  std::string text_so_far;
  bool active = false;     // holds a KV cache in the stages
  bool in_flight = false;  // a step for it is in the chain
  uint64_t step = 0;       // the last step it went in
  bool looping = false;    // that step is a loop step: the tail sent its last token on itself
  bool unloop_sent = false;
  // Set when it ends while a step holds it (cancelled, or a stop string in a looped token): it
  // finishes with this reason when that step comes back, and that step's token is dropped.
  std::string ending;
  Clock::time_point start, first_token, last_token;
  uint64_t decode_steps = 0;
};

// The chunk of a request's tokens at [pos, pos + n), with the sampling the last stage applies
// after its last row when `sample` (the request's next token is drawn there).
wire::Chunk make_chunk(const Request& r, int64_t pos, uint32_t n, bool sample = true);

inline double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// A move to a new plan while serving: steps are held at the head until every in-flight step is
// back, then the new ranges are assigned and KV caches move with their layers (stage to stage,
// through the broker); once all stages are ready, generation resumes. Requests whose caches could
// not move are rebuilt by replaying their tokens.
struct Migration {
  Plan next;
  Plan previous;  // who held which layers before: the senders of KV parts
  std::string why;
  std::vector<std::string> leaving;  // drained nodes: sent bye once the new plan serves
  bool assigned = false;
  Clock::time_point started, drained;
  uint64_t kv_bytes = 0;      // keys and values forwarded between stages
  std::set<uint64_t> replay;  // requests some stage could not complete
};

// How the last move went, for `status`.
struct MigrationReport {
  uint64_t epoch = 0;
  std::string why;
  double drain_s = 0, load_s = 0;
  uint64_t kv_bytes = 0;
  size_t moved = 0, replayed = 0;  // requests whose caches moved, and those replayed
};

class Broker {
 public:
  explicit Broker(BrokerConfig config);
  // Serves until SIGINT/SIGTERM; returns the exit code.
  int run();

 private:
  void on_control(const std::string& peer, const std::string& frame);
  void on_result(const std::string& frame);
  void on_register(const std::string& peer, const wire::Register& m);
  void on_ready(const std::string& peer, const wire::Ready& m);
  void on_stage_error(const std::string& peer, const wire::ErrorMsg& m);
  void on_generate(const std::string& peer, const wire::Generate& m);
  void on_cancel(const std::string& peer, const wire::Cancel& m);
  // Ends a request now, or when the step in the chain that holds it comes back.
  void cancel(Request& r);
  // Asks the tail to send the next token of `only` (of every looping request when null) back here
  // instead of on to the head.
  void unloop(const Request* only = nullptr);
  std::string status_json() const;
  std::string plan_json(const wire::PlanQuery& q) const;
  std::string current_plan_json() const;

  void maybe_plan();
  void send_assignments(const std::vector<std::string>& emptied);
  void on_control_op(const std::string& peer, const wire::Control& m);
  void on_pressure(const std::string& peer, const wire::Pressure& m);
  void on_fetch(const std::string& peer, const wire::Fetch& m);
  void on_kv(const std::string& peer, const std::string& frame, const wire::KvPart& m);
  void on_stage_budget(const std::string& peer, const wire::Budget& m);
  // Applies a control op to a copy of the settings; when the new plan fits, starts moving to it
  // and returns the plans before and after. Throws lb::Error (changing nothing) otherwise.
  wire::PlanChange change_plan(const wire::Control& m);
  ModelFootprint planning_footprint(size_t model) const;
  // Starts a move to `next` (a new epoch); false when it equals the current plan.
  bool begin_migration(const Plan& next, std::vector<std::string> leaving, const std::string& why);
  void advance_migration();
  // With auto_rebalance: plans again once serving when a stage joined, so it gets layers.
  void maybe_offer_layers();
  void finish_migration();
  void check_nodes();
  // Drops the current plan because a planned stage cannot serve it: fails the requests under
  // way (their caches are gone with its layers); the loop then plans with the stages left.
  void abandon_plan(const std::string& why);
  // Starts waiting requests and sends ready chunks as steps, as many as max_inflight_steps allows.
  void schedule();
  // Sends the ready chunks of at most max_requests requests as one step; returns its id.
  uint64_t send_step(size_t max_requests);
  // Moves the ready chunks for which take(chunk) holds, with their tokens, to the ends of chunks
  // and tokens; the others stay ready, in order.
  void take_ready(const std::function<bool(const wire::Chunk&)>& take,
                  std::vector<wire::Chunk>& chunks, std::vector<int32_t>& tokens);
  // Steps that may be in the chain at once: more keep stages on different machines busy at the
  // same time, fewer make bigger batches where stages share a machine's cores.
  size_t max_inflight_steps() const;
  bool start(Request& r);  // tokenizes and queues the prompt; false when it ended at once
  void finish(Request& r, const std::string& reason);
  void fail(Request& r, const std::string& message);
  // Ends a request on the broker's side (after its client has been told): its caches on the
  // stages, its place in the queue and any chunk of it still waiting to be sent.
  void forget(Request& r);
  void release(uint64_t req);
  bool reply(const std::string& peer, const std::string& bytes);
  std::vector<PlanNode> plan_nodes() const;
  // The node's place in the current plan, or nullptr (no plan, or no layers for it).
  const PlanStage* planned_stage(const std::string& id) const;
  const ServedModel& model() const { return *models_[model_index_]; }

  BrokerConfig cfg_;
  wire::Limits limits_;
  wire::DType dtype_;
  zmq::context_t ctx_;
  zmq::socket_t control_;
  zmq::socket_t feed_;
  zmq::socket_t collect_;
  std::string collect_endpoint_;
  std::string feed_target_;

  std::vector<std::unique_ptr<ServedModel>> models_;
  std::string unavailable_;  // "; NAME is unavailable: why" per configured model not opened
  size_t model_index_ = 0;
  std::string model_reason_;

  std::map<std::string, NodeState> nodes_;  // by id
  std::vector<std::string> node_order_;     // chain order: by `order`, then registration
  std::optional<Plan> plan_;
  std::optional<Migration> migration_;
  std::optional<MigrationReport> last_migration_;
  std::vector<std::string> joined_;  // stages that registered while serving, not yet planned in
  uint64_t kv_reserve_tokens_ = 0;   // positions per layer the planner reserves (grows on pressure)
  uint64_t epoch_ = 0;
  bool serving_ = false;
  std::string plan_error_;

  std::map<uint64_t, Request> requests_;
  std::deque<uint64_t> waiting_;
  std::vector<wire::Chunk> ready_chunks_;
  std::vector<int32_t> ready_tokens_;
  uint64_t next_req_ = 1;
  uint64_t next_step_ = 1;
  // For status: steps sent, their rows, and the sum of each step's rows squared (the mean size
  // of the step a row travels in is rows_squared / rows: equal to rows / steps when every step
  // has the same size, larger when big and small steps take turns).
  uint64_t steps_sent_ = 0, step_rows_sent_ = 0, step_rows_squared_ = 0;
  uint64_t steps_looped_ = 0;       // of those, loop steps the tail sent on by itself
  uint64_t step_max_requests_ = 0;  // the most requests one step has carried
  std::map<uint64_t, Clock::time_point> step_sent_at_;  // steps in the chain, for debug logs
  std::deque<Clock::time_point> recent_tokens_;         // for tokens/s in status
};

}  // namespace lb
