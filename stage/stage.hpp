#pragma once
// A stage: holds a contiguous range of a model's layers, takes activations (or token ids) from
// its predecessor, runs them through its layers as one batch, and passes the result on; the last
// stage samples and returns only the sampled tokens to the broker.
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "compute/thread_pool.hpp"
#include "model/forward.hpp"
#include "stage/kv_handover.hpp"
#include "sys/memory.hpp"
#include "wire/messages.hpp"

namespace lb {

struct StageOptions {
  std::string broker;     // control endpoint of the broker
  std::string bind;       // data endpoint to bind (port may be "*")
  std::string advertise;  // host others use to reach bind, when it is not the bound one
  std::string node_id;
  int64_t order = 0;  // chain position the broker gives this node: lower first
  std::string model;  // local model file, may be empty
  uint64_t memory_budget = 0;
  int threads = 1;
  size_t max_message_bytes = 64u << 20;
  int heartbeat_ms = 1000;
  double high_water = 0.9;  // report pressure when usage passes this share of the budget
  // Silence after which a move stops waiting for KV parts (a sender that failed, a part lost on
  // the way): the requests still awaited are replayed, which rebuilds their caches bit for bit.
  // A sender sends its parts once it has loaded its own new layers, which may mean fetching them
  // from the broker first; replaying is only slower, never wrong.
  int kv_wait_s = 120;
  std::string cache_dir;    // where a stage without --model keeps the layers it fetched
  std::string config_path;  // --config: re-read on SIGHUP for a new budget
};

class Stage {
 public:
  explicit Stage(StageOptions opt);
  // Serves until the broker says bye or a SIGINT/SIGTERM arrives; returns the exit code.
  int run();

 private:
  void send_control(const std::string& bytes);
  void on_control(const std::string& frame);
  void on_assign(const wire::Assign& a);
  void on_kv(const wire::KvPart& p);
  void send_ready();  // once the assigned layers are loaded and every awaited KV part is in
  // The model file to map: --model, or the cache with the assigned range fetched into it.
  std::string model_path(const wire::Assign& a);
  std::string fetch_chunk(const wire::ModelRef& model, uint64_t offset, uint64_t size);
  void on_data(std::vector<std::string> frames);
  // Runs steps as one batch; false when the batch failed (the caller then retries one by one).
  bool run_batch(const std::vector<wire::Step>& steps, bool report_errors);
  void emit(const std::vector<wire::Step>& steps, const StepOutput& out);
  // As the last stage: whether the token sampled after chunk c goes straight on to the head.
  bool goes_on(const wire::Chunk& c, int32_t token);
  void reload_config();  // SIGHUP: a new budget goes to the broker, which re-plans with it
  void heartbeat();
  void check_pressure();
  uint64_t bytes() const;  // weight bytes held

  StageOptions opt_;
  wire::Limits limits_;
  zmq::context_t ctx_;
  zmq::socket_t control_;
  zmq::socket_t data_in_;
  zmq::socket_t data_out_;
  zmq::socket_t loop_out_;  // the last stage's loop steps, to the head's data endpoint
  std::string data_endpoint_;
  std::string downstream_;
  // As the last stage: where loop steps go (empty: none), the tokens that end generation, and
  // the requests whose next token goes back to the broker (an `unloop` asked for it).
  std::string head_;
  std::set<int32_t> eog_;
  std::set<uint64_t> unlooped_;
  std::deque<std::string> deferred_control_;  // arrived while waiting for model chunks
  ThreadPool pool_;
  double compute_score_ = 0;

  uint64_t epoch_ = 0;
  bool assigned_ = false;
  wire::DType dtype_ = wire::DType::F32;
  std::string model_digest_;
  std::shared_ptr<GgufFile> file_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<RangeRunner> runner_;
  std::optional<KvIntake> intake_;  // KV parts still awaited for the assigned epoch
  std::chrono::steady_clock::time_point intake_progress_;  // assignment or last part accepted

  // Time from message in to message out, compute excluded: the cost of a hop inside a stage.
  uint64_t batches_ = 0;
  double overhead_seconds_ = 0;
  double compute_seconds_ = 0;          // of the data currently being handled
  std::optional<CgroupMemory> cgroup_;  // as read at the last heartbeat
  bool pressure_reported_ = false;      // in this epoch: the broker's answer is a new epoch
  std::chrono::steady_clock::time_point pressure_reported_at_;
};

}  // namespace lb
