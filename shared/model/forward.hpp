#pragma once
// Layer-range execution: runs layers [begin, end) of a model on a batch that holds several
// sequences, each at one or more consecutive positions, with a KV cache per sequence for those
// layers. The first range looks up token embeddings; the last applies the final norm and the
// output head. Single-process generation is one range covering every layer.
#include <cstdint>
#include <vector>

#include "compute/thread_pool.hpp"
#include "model/kv_cache.hpp"
#include "model/weights.hpp"

namespace lb {

// One step's input. A sequence's rows are contiguous, at consecutive positions, starting at or
// before the position its cache has reached.
struct StepInput {
  std::vector<uint64_t> seq;         // per row
  std::vector<int64_t> pos;          // per row
  std::vector<int32_t> tokens;       // per row, when the range starts at layer 0
  std::vector<float> hidden;         // [rows][dim], when it does not
  std::vector<uint8_t> want_logits;  // per row (last range only): rows whose logits are needed
  // Per row, the rows of the chunk it came in (a prompt, or one decode token). Products over a
  // chunk of several rows sum in llama.cpp's batch order, so re-running a sequence must keep its
  // chunks; empty means each sequence's rows in this step are one chunk.
  std::vector<int64_t> chunk;
  size_t rows() const { return seq.size(); }
};

struct StepOutput {
  std::vector<float> hidden;  // [rows][dim], when the range ends before the last layer
  std::vector<float> logits;  // [rows with want_logits][n_vocab], when it ends at the last layer
};

class RangeRunner {
 public:
  RangeRunner(const ModelWeights& weights, ThreadPool& pool, int64_t n_ctx);

  // Throws lb::Error for malformed input (wrong sizes, token ids out of range, positions that
  // skip ahead or pass the context) before changing any cache.
  void step(const StepInput& in, StepOutput& out);

  KvCache& kv() { return kv_; }
  const ModelWeights& weights() const { return w_; }

 private:
  void validate(const StepInput& in) const;
  void attention(int64_t il, const StepInput& in, const float* q, float* out);

  const ModelWeights& w_;
  ThreadPool& pool_;
  KvCache kv_;
};

}  // namespace lb
