#include "stage/kv_handover.hpp"

#include <algorithm>

#include "util/error.hpp"

namespace lb {

uint64_t send_lost_layers(const KvCache& old, const wire::Assign& a,
                          const std::function<void(const wire::KvPart&)>& send) {
  const uint64_t row_bytes = uint64_t(old.kv_dim()) * 2 * sizeof(uint16_t);
  const int64_t per_part = int64_t(std::max<uint64_t>(1, kKvPartBytes / row_bytes));
  uint64_t sent = 0;
  for (const wire::KvHold& h : a.kv) {
    const SeqKv* s = old.find(h.req);
    const bool held = s && s->n_pos == h.n_pos;
    for (int64_t l = old.begin(); l < old.end(); ++l) {
      if (l >= a.begin && l < a.end) continue;  // kept here
      wire::KvPart p;
      p.epoch = a.epoch;
      p.req = h.req;
      p.layer = l;
      if (!held) {
        send(p);  // total == 0: the new owner reports the request missing
        continue;
      }
      p.total = h.n_pos;
      const size_t li = size_t(l - old.begin());
      for (int64_t pos = 0; pos < h.n_pos; pos += per_part) {
        p.pos = pos;
        p.n = std::min(per_part, h.n_pos - pos);
        const size_t off = size_t(pos * old.kv_dim()), count = size_t(p.n * old.kv_dim());
        p.k = wire::pack_halves(s->keys(li) + off, count);
        p.v = wire::pack_halves(s->values(li) + off, count);
        sent += p.k.size() + p.v.size();
        send(p);
      }
    }
  }
  return sent;
}

KvIntake::KvIntake(const wire::Assign& a, KvCache* old, KvCache* fresh)
    : epoch_(a.epoch), cache_(fresh) {
  if (!fresh) return;
  for (const wire::KvHold& h : a.kv) {
    n_pos_[h.req] = h.n_pos;
    if (!fresh->adopt(h.req, h.n_pos, old)) {
      missing_.insert(h.req);  // replayed whatever arrives for it: nothing to wait for
      continue;
    }
    for (int64_t l = fresh->begin(); l < fresh->end(); ++l) {
      const bool had = old && l >= old->begin() && l < old->end();
      if (!had) pending_[{h.req, l}] = 0;
    }
  }
}

void KvIntake::give_up(uint64_t req) {
  missing_.insert(req);
  for (auto it = pending_.begin(); it != pending_.end();) {
    it = it->first.first == req ? pending_.erase(it) : std::next(it);
  }
}

void KvIntake::stop_waiting() {
  for (const auto& [key, received] : pending_) missing_.insert(key.first);
  pending_.clear();
}

void KvIntake::accept(const wire::KvPart& p) {
  if (p.epoch != epoch_) {
    throw Error("kv part of epoch " + std::to_string(p.epoch) + " while moving to epoch " +
                std::to_string(epoch_));
  }
  if (missing_.count(p.req)) return;  // being replayed: the rest of its parts do not matter
  auto it = pending_.find({p.req, p.layer});
  if (it == pending_.end()) {
    throw Error("kv part for request " + std::to_string(p.req) + " layer " +
                std::to_string(p.layer) + " that this stage does not wait for");
  }
  if (p.total == 0) {
    give_up(p.req);  // its old owner did not hold it
    return;
  }
  const int64_t n_pos = n_pos_.at(p.req);
  const uint64_t want = uint64_t(p.n) * uint64_t(cache_->kv_dim()) * sizeof(uint16_t);
  std::string problem;
  if (p.total != n_pos)
    problem = "holds " + std::to_string(p.total) + " positions, expected " + std::to_string(n_pos);
  else if (p.pos != it->second)
    problem =
        "starts at position " + std::to_string(p.pos) + ", expected " + std::to_string(it->second);
  else if (p.k.size() != want)
    problem = "carries " + std::to_string(p.k.size()) + " bytes of keys for " +
              std::to_string(p.n) + " positions, expected " + std::to_string(want);
  if (!problem.empty()) {
    give_up(p.req);
    throw Error("kv part for request " + std::to_string(p.req) + " layer " +
                std::to_string(p.layer) + " " + problem + ": the request will be replayed");
  }
  std::vector<uint16_t> k(size_t(p.n * cache_->kv_dim())), v(k.size());
  wire::unpack_halves(p.k, k.data(), k.size());
  wire::unpack_halves(p.v, v.data(), v.size());
  cache_->write(p.req, p.layer, p.pos, p.n, k.data(), v.data());
  received_bytes_ += p.k.size() + p.v.size();
  it->second += p.n;
  if (it->second == n_pos) pending_.erase(it);
}

}  // namespace lb
