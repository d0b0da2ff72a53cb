#include "model/weights.hpp"

#include <algorithm>
#include <cstring>

#include "quant/kernels.hpp"

namespace lb {

namespace {

std::string blk(int64_t il, const char* name) {
  return "blk." + std::to_string(il) + "." + name;
}

const GgufTensor& expect(const GgufFile& f, const std::string& name, int64_t ne0, int64_t ne1) {
  const GgufTensor& t = f.tensor(name);
  const bool is_vector = ne1 == 0;
  if ((is_vector && (t.n_dims != 1 || t.ne[0] != ne0)) ||
      (!is_vector && (t.n_dims != 2 || t.ne[0] != ne0 || t.ne[1] != ne1))) {
    throw GgufError(f.path() + ": tensor '" + name + "' has shape [" + std::to_string(t.ne[0]) +
                    ", " + std::to_string(t.ne[1]) + "], expected [" + std::to_string(ne0) + ", " +
                    std::to_string(ne1) + "]");
  }
  return t;
}

}  // namespace

const float* ModelWeights::vec(const std::string& name, int64_t n,
                               std::vector<const GgufTensor*>& held) {
  const GgufTensor& t = expect(*file_, name, n, 0);
  if (t.type != GgmlType::F32) {
    throw GgufError(file_->path() + ": tensor '" + name + "' is " + type_name(t.type) +
                    ", expected F32");
  }
  held.push_back(&t);
  const float* src = reinterpret_cast<const float*>(t.data);
  std::vector<float>& copy = vectors_[&t];
  copy.assign(src, src + n);
  return copy.data();
}

Matrix ModelWeights::matrix(const std::string& name, int64_t cols, int64_t rows, bool multiplied,
                            std::vector<const GgufTensor*>& held, const WeightOptions& options) {
  const GgufTensor& t = expect(*file_, name, cols, rows);
  kernels_for(t.type);  // throws for types we cannot compute with, naming the type
  held.push_back(&t);
  if (!multiplied || options.layout == WeightLayout::File)
    return Matrix{t.data, t.type, cols, rows};
  // Matrices the kernels take as filed are copied too: in huge pages a decode token misses the
  // TLB far less often than over the file's 4 KiB pages (1.1B Q8_0, paired runs: 1.067x tokens/s,
  // faster in 6 of 6 rounds).
  const Repack repack = repack_for(t.type, cols);
  std::shared_ptr<const MappedMemory>& packed = packed_[&t];
  const ModelWeights* predecessor = options.predecessor;
  if (predecessor && &predecessor->file() == file_.get()) {
    const auto it = predecessor->packed_.find(&t);
    if (it != predecessor->packed_.end()) packed = it->second;
  }
  if (!packed) {
    const size_t src_row = row_bytes(t.type, cols);
    const size_t dst_row = row_bytes(repack.layout, cols);
    auto p = std::make_shared<MappedMemory>(dst_row * size_t(rows), MappedMemory::Pages::Huge);
    const uint8_t* src = static_cast<const uint8_t*>(t.data);
    const auto rearrange = [&](int64_t r0, int64_t r1) {
      if (!repack.row) {
        std::memcpy(p->data() + size_t(r0) * dst_row, src + size_t(r0) * src_row,
                    size_t(r1 - r0) * src_row);
        return;
      }
      for (int64_t r = r0; r < r1; ++r) {
        repack.row(src + size_t(r) * src_row, p->data() + size_t(r) * dst_row, cols);
      }
    };
    if (options.pool) {
      constexpr int64_t kRowsPerTask = 256;
      options.pool->run((rows + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task) {
        rearrange(task * kRowsPerTask, std::min(rows, (task + 1) * kRowsPerTask));
      });
    } else {
      rearrange(0, rows);
    }
    file_->release(t);
    packed = std::move(p);
  }
  return Matrix{packed->data(), repack.layout, cols, rows};
}

ModelWeights::ModelWeights(std::shared_ptr<const GgufFile> file, int64_t begin, int64_t end,
                           const WeightOptions& options)
    : file_(std::move(file)), hp_(read_hparams(*file_)), begin_(begin), end_(end) {
  const GgufFile& f = *file_;
  if (begin < 0 || end > hp_.n_layers || begin >= end) {
    throw Error("layer range [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") is not within the model's " + std::to_string(hp_.n_layers) + " layers");
  }
  for (int64_t il = begin; il < end; ++il) {
    LayerWeights L;
    auto& h = L.tensors;
    L.attn_norm = vec(blk(il, "attn_norm.weight"), hp_.dim, h);
    L.wq = matrix(blk(il, "attn_q.weight"), hp_.dim, hp_.q_dim(), true, h, options);
    L.wk = matrix(blk(il, "attn_k.weight"), hp_.dim, hp_.kv_dim(), true, h, options);
    L.wv = matrix(blk(il, "attn_v.weight"), hp_.dim, hp_.kv_dim(), true, h, options);
    L.wo = matrix(blk(il, "attn_output.weight"), hp_.q_dim(), hp_.dim, true, h, options);
    if (hp_.qkv_bias) {
      L.bq = vec(blk(il, "attn_q.bias"), hp_.q_dim(), h);
      L.bk = vec(blk(il, "attn_k.bias"), hp_.kv_dim(), h);
      L.bv = vec(blk(il, "attn_v.bias"), hp_.kv_dim(), h);
    }
    if (hp_.qk_norm) {
      L.q_norm = vec(blk(il, "attn_q_norm.weight"), hp_.head_dim, h);
      L.k_norm = vec(blk(il, "attn_k_norm.weight"), hp_.head_dim, h);
    }
    L.ffn_norm = vec(blk(il, "ffn_norm.weight"), hp_.dim, h);
    L.w_gate = matrix(blk(il, "ffn_gate.weight"), hp_.dim, hp_.ffn, true, h, options);
    L.w_up = matrix(blk(il, "ffn_up.weight"), hp_.dim, hp_.ffn, true, h, options);
    L.w_down = matrix(blk(il, "ffn_down.weight"), hp_.ffn, hp_.dim, true, h, options);
    layers_.push_back(std::move(L));
  }
  if (f.find_tensor("rope_freqs.weight")) {
    rope_freqs_ = vec("rope_freqs.weight", hp_.rope_dims / 2, global_tensors_);
  }
  if (has_embedding() || (has_head() && hp_.tied_embeddings)) {
    // Multiplied with only as the tied output head.
    token_embd_ = matrix("token_embd.weight", hp_.dim, hp_.n_vocab,
                         has_head() && hp_.tied_embeddings, global_tensors_, options);
  }
  if (has_head()) {
    output_norm_ = vec("output_norm.weight", hp_.dim, global_tensors_);
    output_ = hp_.tied_embeddings
                  ? token_embd_
                  : matrix("output.weight", hp_.dim, hp_.n_vocab, true, global_tensors_, options);
  }
  // What was copied is never read from the file again: its pages go back, also where a vector's
  // read mapped them again (a fault in a file mapping maps the pages around it too, and vectors
  // share pages with the matrices beside them). The rest, row lookups, is faulted in now.
  for (const GgufTensor* t : held_tensors()) {
    if (packed_.count(t) || vectors_.count(t)) f.release(*t);
  }
  for (const GgufTensor* t : held_tensors()) {
    if (!packed_.count(t) && !vectors_.count(t)) f.prefetch(*t);
  }
}

ModelWeights::~ModelWeights() {
  for (const GgufTensor* t : held_tensors()) {
    if (std::find(kept_by_successor_.begin(), kept_by_successor_.end(), t) ==
        kept_by_successor_.end()) {
      file_->release(*t);
    }
  }
}

void ModelWeights::hand_over_to(const ModelWeights& successor) {
  if (&successor.file() == file_.get()) kept_by_successor_ = successor.held_tensors();
}

std::vector<const GgufTensor*> ModelWeights::held_tensors() const {
  std::vector<const GgufTensor*> all = global_tensors_;
  for (const LayerWeights& L : layers_) all.insert(all.end(), L.tensors.begin(), L.tensors.end());
  return all;
}

uint64_t ModelWeights::bytes() const {
  uint64_t n = 0;
  for (const GgufTensor* t : held_tensors()) n += t->n_bytes;
  return n;
}

int64_t layer_of(const std::string& name) {
  const std::string prefix = "blk.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  int64_t il = 0;
  size_t i = prefix.size();
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && il < (int64_t(1) << 32); ++i) {
    il = il * 10 + (name[i] - '0');
  }
  return i > prefix.size() && i < name.size() && name[i] == '.' ? il : -1;
}

ModelSizes model_sizes(const GgufFile& f, const HParams& hp) {
  ModelSizes s;
  s.layer_bytes.assign(size_t(hp.n_layers), 0);
  for (const GgufTensor& t : f.tensors()) {
    const int64_t il = layer_of(t.name);
    if (il >= 0 && il < hp.n_layers) s.layer_bytes[size_t(il)] += t.n_bytes;
  }
  const uint64_t embd = f.tensor("token_embd.weight").n_bytes;
  s.embedding_bytes = embd;
  s.head_bytes = f.tensor("output_norm.weight").n_bytes +
                 (hp.tied_embeddings ? embd : f.tensor("output.weight").n_bytes);
  return s;
}

}  // namespace lb
