#pragma once
// Per-sequence key/value cache for the layers one process holds, stored as F16 like llama.cpp's
// default (half the memory of F32, and the rounding its reference outputs were made with).
// Memory grows with the positions actually used, in steps, up to the context length; a step's
// pages cost nothing until positions in them are written.
#include <cstdint>
#include <map>
#include <vector>

#include "model/hparams.hpp"
#include "quant/f16.hpp"
#include "util/mapped_memory.hpp"

namespace lb {

struct SeqKv {
  int64_t n_pos = 0;  // positions [0, n_pos) hold keys and values
  int64_t capacity = 0;
  // [layer]: capacity * kv_dim halves each. Mapped memory rather than vectors: a new sequence's
  // cache would otherwise be cleared whole when it starts, which took 130 ms of an 8-prompt
  // step of the 1.1B model (44 layer buffers of 256 positions per sequence, page-faulted in).
  std::vector<MappedMemory> k, v;

  Half* keys(size_t layer) const { return reinterpret_cast<Half*>(k[layer].data()); }
  Half* values(size_t layer) const { return reinterpret_cast<Half*>(v[layer].data()); }
};

class KvCache {
 public:
  KvCache(const HParams& hp, int64_t begin, int64_t end, int64_t n_ctx);

  int64_t n_ctx() const { return n_ctx_; }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  int64_t n_layers() const { return end_ - begin_; }
  int64_t kv_dim() const { return kv_dim_; }
  // Bytes one position costs in every held layer (keys + values).
  uint64_t bytes_per_token() const;
  // Bytes currently allocated over all sequences.
  uint64_t bytes() const;

  // Positions a sequence holds (0 for one never seen).
  int64_t n_pos(uint64_t seq) const;
  // The sequence's cache made ready to write positions [pos, pos + n): created on first use,
  // positions at or past pos forgotten (a sequence may be re-run from an earlier position), grown
  // as needed; n_pos becomes pos + n. Throws lb::Error when pos skips past what the sequence holds
  // or pos + n passes the context length.
  SeqKv& prepare(uint64_t seq, int64_t pos, int64_t n);
  SeqKv& at(uint64_t seq);
  const SeqKv* find(uint64_t seq) const;

  // Starts this cache's entry for a sequence that holds n_pos positions elsewhere (a move to a
  // new layer range): the layers `from` (may be null) also holds move over when it holds exactly
  // n_pos positions of the sequence, the others are allocated for write(). False when `from` shares
  // layers with this range but lacks those positions (its layers then stay unfilled).
  bool adopt(uint64_t seq, int64_t n_pos, KvCache* from);
  // Copies keys and values of positions [pos, pos + n) of a layer into an adopted sequence;
  // throws lb::Error when the layer, the positions or the sizes do not fit.
  void write(uint64_t seq, int64_t layer, int64_t pos, int64_t n, const uint16_t* k,
             const uint16_t* v);
  void erase(uint64_t seq) { seqs_.erase(seq); }
  void clear() { seqs_.clear(); }

 private:
  int64_t begin_, end_, kv_dim_, n_ctx_;
  std::map<uint64_t, SeqKv> seqs_;
};

}  // namespace lb
