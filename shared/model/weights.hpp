#pragma once
// The weights one process holds: layers [begin, end) of a GGUF model, plus the token embedding
// when begin == 0 and the output head when end == n_layers. Tensors are used in place in the
// file mapping; only the held tensors' pages are faulted in, and a range change gives dropped
// tensors' pages back to the kernel. Matrices the kernels compute faster with in another layout
// (repack_for) are rearranged into memory of their own instead, and their file pages given back.
#include <map>
#include <memory>
#include <vector>

#include "compute/matmul.hpp"
#include "gguf/gguf_file.hpp"
#include "model/hparams.hpp"
#include "util/mapped_memory.hpp"

namespace lb {

struct LayerWeights {
  const float* attn_norm = nullptr;
  Matrix wq, wk, wv, wo;
  const float* bq = nullptr;  // qwen2 biases
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;  // qwen3 per-head norms
  const float* k_norm = nullptr;
  const float* ffn_norm = nullptr;
  Matrix w_gate, w_up, w_down;
  std::vector<const GgufTensor*> tensors;  // everything above, for byte counts and paging
};

// Whether matrices are copied into memory of their own in huge pages, rearranged where the kernels
// have a faster layout (the same results, faster), or used where the file's mapping has them
// (benchmarks compare the two).
enum class WeightLayout { Fastest, File };

class ModelWeights;

struct WeightOptions {
  // A range of the same file whose rearranged matrices are shared rather than done again, so a
  // rebalance pays only for the layers it adds.
  const ModelWeights* predecessor = nullptr;
  WeightLayout layout = WeightLayout::Fastest;
  // Rearranges each matrix's rows on these threads (else on the caller's).
  ThreadPool* pool = nullptr;
};

class ModelWeights {
 public:
  // Validates every tensor of the range (presence, shape, type) and copies it into memory of its
  // own (matrices rearranged for the kernels where that is faster), except matrices only looked
  // up by row (the embedding), whose file pages are faulted in instead.
  ModelWeights(std::shared_ptr<const GgufFile> file, int64_t begin, int64_t end,
               const WeightOptions& options = {});
  ~ModelWeights();
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;

  const GgufFile& file() const { return *file_; }
  const HParams& hparams() const { return hp_; }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  bool has_embedding() const { return begin_ == 0; }
  bool has_head() const { return end_ == hp_.n_layers; }

  const LayerWeights& layer(int64_t il) const { return layers_[il - begin_]; }
  const Matrix& token_embd() const { return token_embd_; }
  const float* output_norm() const { return output_norm_; }
  const Matrix& output() const { return output_; }
  const float* rope_freqs() const { return rope_freqs_; }  // may be null

  // Bytes of tensor data this range holds.
  uint64_t bytes() const;

  // When a range is replaced by another of the same file: pages the successor also holds are
  // not given back when this one is destroyed (so they stay resident across a rebalance).
  void hand_over_to(const ModelWeights& successor);

 private:
  std::vector<const GgufTensor*> held_tensors() const;
  // The tensor `name` of shape [cols, rows] as a Matrix, noted in `held`; `multiplied` says the
  // engine multiplies with it (else it only looks rows up, which the file's layout serves).
  Matrix matrix(const std::string& name, int64_t cols, int64_t rows, bool multiplied,
                std::vector<const GgufTensor*>& held, const WeightOptions& options);
  // The F32 vector `name` of n values (a norm's weights, a bias), copied, noted in `held`.
  const float* vec(const std::string& name, int64_t n, std::vector<const GgufTensor*>& held);

  std::shared_ptr<const GgufFile> file_;
  HParams hp_;
  int64_t begin_, end_;
  std::vector<LayerWeights> layers_;
  Matrix token_embd_;
  const float* output_norm_ = nullptr;
  Matrix output_;
  const float* rope_freqs_ = nullptr;
  std::vector<const GgufTensor*> global_tensors_;
  std::vector<const GgufTensor*> kept_by_successor_;
  std::map<const GgufTensor*, std::shared_ptr<const MappedMemory>> packed_;
  std::map<const GgufTensor*, std::vector<float>> vectors_;
};

// Bytes of one layer's tensors, of the embedding and of the head, without loading anything
// (the planner's inputs).
struct ModelSizes {
  std::vector<uint64_t> layer_bytes;
  uint64_t embedding_bytes = 0;
  uint64_t head_bytes = 0;  // output norm + output matrix (the embedding again when tied)
};
ModelSizes model_sizes(const GgufFile& file, const HParams& hp);

// The layer a tensor named "blk.N.*" belongs to, or -1 for tensors outside the layers.
int64_t layer_of(const std::string& tensor_name);

}  // namespace lb
