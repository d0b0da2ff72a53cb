#include "model/kv_cache.hpp"

#include <algorithm>

#include "util/error.hpp"

namespace lb {

namespace {
constexpr int64_t kGrowStep = 256;  // positions added at a time

int64_t capacity_for(int64_t n_pos, int64_t n_ctx) {
  return std::min(n_ctx, ((n_pos - 1) / kGrowStep + 1) * kGrowStep);
}
}  // namespace

KvCache::KvCache(const HParams& hp, int64_t begin, int64_t end, int64_t n_ctx)
    : begin_(begin), end_(end), kv_dim_(hp.kv_dim()), n_ctx_(n_ctx) {
  if (n_ctx <= 0) throw Error("context length must be positive");
}

uint64_t KvCache::bytes_per_token() const {
  return uint64_t(n_layers()) * 2 * uint64_t(kv_dim_) * sizeof(uint16_t);
}

uint64_t KvCache::bytes() const {
  uint64_t n = 0;
  for (const auto& [id, s] : seqs_) n += uint64_t(s.capacity) * bytes_per_token();
  return n;
}

SeqKv& KvCache::prepare(uint64_t seq, int64_t pos, int64_t n) {
  // Checked before an entry is made: a step for a released sequence must not leave one behind.
  const int64_t held = n_pos(seq);
  if (pos < 0 || pos > held) {
    throw Error("position " + std::to_string(pos) + " of sequence " + std::to_string(seq) +
                " skips ahead: the cache holds " + std::to_string(held) + " positions");
  }
  if (n < 1 || pos + n > n_ctx_) {
    throw Error("positions " + std::to_string(pos) + ".." + std::to_string(pos + n - 1) +
                " of sequence " + std::to_string(seq) + " pass the context length " +
                std::to_string(n_ctx_));
  }
  SeqKv& s = seqs_[seq];
  if (s.k.empty()) {
    s.k.resize(size_t(n_layers()));
    s.v.resize(size_t(n_layers()));
  }
  s.n_pos = pos + n;
  if (s.n_pos > s.capacity) {
    const int64_t cap = capacity_for(s.n_pos, n_ctx_);
    for (size_t l = 0; l < s.k.size(); ++l) {
      s.k[l].grow(size_t(cap * kv_dim_) * sizeof(Half));
      s.v[l].grow(size_t(cap * kv_dim_) * sizeof(Half));
    }
    s.capacity = cap;
  }
  return s;
}

SeqKv& KvCache::at(uint64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) throw Error("unknown sequence " + std::to_string(seq));
  return it->second;
}

const SeqKv* KvCache::find(uint64_t seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second;
}

bool KvCache::adopt(uint64_t seq, int64_t n_pos, KvCache* from) {
  if (n_pos < 1 || n_pos > n_ctx_) {
    throw Error("cannot adopt " + std::to_string(n_pos) + " positions of sequence " +
                std::to_string(seq) + " into a context of " + std::to_string(n_ctx_));
  }
  SeqKv s;
  s.n_pos = n_pos;
  s.capacity = capacity_for(n_pos, n_ctx_);
  s.k.resize(size_t(n_layers()));
  s.v.resize(size_t(n_layers()));
  SeqKv* old = nullptr;
  if (from) {
    auto it = from->seqs_.find(seq);
    if (it != from->seqs_.end() && it->second.n_pos == n_pos) old = &it->second;
  }
  const bool overlap = from && std::max(begin_, from->begin_) < std::min(end_, from->end_);
  const size_t size = size_t(s.capacity * kv_dim_) * sizeof(Half);
  for (int64_t l = begin_; l < end_; ++l) {
    auto& k = s.k[size_t(l - begin_)];
    auto& v = s.v[size_t(l - begin_)];
    if (old && l >= from->begin_ && l < from->end_) {
      // Moved, not copied: the old range's memory becomes the new one's.
      k = std::move(old->k[size_t(l - from->begin_)]);
      v = std::move(old->v[size_t(l - from->begin_)]);
    }
    k.grow(size);
    v.grow(size);
  }
  seqs_[seq] = std::move(s);
  return old || !overlap;
}

void KvCache::write(uint64_t seq, int64_t layer, int64_t pos, int64_t n, const uint16_t* k,
                    const uint16_t* v) {
  SeqKv& s = at(seq);
  if (layer < begin_ || layer >= end_) {
    throw Error("layer " + std::to_string(layer) + " is outside this cache's layers [" +
                std::to_string(begin_) + ", " + std::to_string(end_) + ")");
  }
  if (pos < 0 || n < 0 || pos + n > s.n_pos) {
    throw Error("positions " + std::to_string(pos) + "+" + std::to_string(n) + " of sequence " +
                std::to_string(seq) + " pass the " + std::to_string(s.n_pos) + " it holds");
  }
  const size_t off = size_t(pos * kv_dim_), count = size_t(n * kv_dim_);
  std::copy(k, k + count, s.keys(size_t(layer - begin_)) + off);
  std::copy(v, v + count, s.values(size_t(layer - begin_)) + off);
}

int64_t KvCache::n_pos(uint64_t seq) const {
  const SeqKv* s = find(seq);
  return s ? s->n_pos : 0;
}

}  // namespace lb
