#include "model/kv_cache.hpp"

#include <algorithm>

#include "util/error.hpp"

namespace lb {

namespace {
constexpr int64_t kGrowStep = 256;  // positions added at a time
}

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
  SeqKv& s = seqs_[seq];
  if (s.k.empty()) {
    s.k.resize(size_t(n_layers()));
    s.v.resize(size_t(n_layers()));
  }
  if (pos < 0 || pos > s.n_pos) {
    throw Error("position " + std::to_string(pos) + " of sequence " + std::to_string(seq) +
                " skips ahead: the cache holds " + std::to_string(s.n_pos) + " positions");
  }
  if (n < 1 || pos + n > n_ctx_) {
    throw Error("positions " + std::to_string(pos) + ".." + std::to_string(pos + n - 1) +
                " of sequence " + std::to_string(seq) + " pass the context length " +
                std::to_string(n_ctx_));
  }
  s.n_pos = pos + n;
  if (s.n_pos > s.capacity) {
    const int64_t cap = std::min(n_ctx_, ((s.n_pos - 1) / kGrowStep + 1) * kGrowStep);
    for (size_t l = 0; l < s.k.size(); ++l) {
      s.k[l].resize(size_t(cap * kv_dim_));
      s.v[l].resize(size_t(cap * kv_dim_));
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

int64_t KvCache::n_pos(uint64_t seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.n_pos;
}

}  // namespace lb
