#pragma once
// KV caches moving with their layers when the plan changes. A stage's old cache gives the layers
// the stage keeps to its new cache (moved, not copied), sends the layers it loses to their new
// owners as `kv` parts (through the broker, which knows who owns what), and the new cache waits
// for the layers the stage gains. Requests whose cache cannot be completed are reported missing;
// the broker rebuilds those by replaying their tokens.
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "model/kv_cache.hpp"
#include "wire/messages.hpp"

namespace lb {

// Keys plus values one `kv` part carries at most, so a long cache goes in several messages.
constexpr uint64_t kKvPartBytes = 4u << 20;

// Sends, for every request the assignment carries over, each layer of `old` outside the new range
// [a.begin, a.end), in parts of at most kKvPartBytes. A request `old` does not hold at the
// positions listed goes as one part with total == 0. Returns the bytes of keys and values sent.
uint64_t send_lost_layers(const KvCache& old, const wire::Assign& a,
                          const std::function<void(const wire::KvPart&)>& send);

// What a stage still waits for after an assignment, and where it goes.
class KvIntake {
 public:
  // Adopts every carried-over request into `fresh` (null for a stage left without layers),
  // moving the layers `old` (null for a stage that held none) shares with it.
  KvIntake(const wire::Assign& a, KvCache* old, KvCache* fresh);

  // Applies one part. Throws lb::Error for a part nobody waits for; a part that is out of order or
  // does not fit makes its request missing (and throws, so the sender hears of it).
  void accept(const wire::KvPart& p);
  bool complete() const { return pending_.empty(); }
  // Gives up on every part still awaited: their requests become missing (to be replayed), so a
  // part that never comes cannot hold up the move.
  void stop_waiting();
  std::vector<uint64_t> missing() const { return {missing_.begin(), missing_.end()}; }
  uint64_t received_bytes() const { return received_bytes_; }

 private:
  void give_up(uint64_t req);

  uint64_t epoch_;
  KvCache* cache_;
  std::map<uint64_t, int64_t> n_pos_;                        // per carried-over request
  std::map<std::pair<uint64_t, int64_t>, int64_t> pending_;  // (req, layer) -> positions received
  std::set<uint64_t> missing_;
  uint64_t received_bytes_ = 0;
};

}  // namespace lb
