#pragma once
// A model's hyperparameters, read from GGUF metadata and checked for consistency.
#include <cstdint>
#include <string>

#include "gguf/gguf_file.hpp"

namespace lb {

enum class Arch { Llama, Qwen2, Qwen3 };

struct HParams {
  Arch arch = Arch::Llama;
  std::string arch_name;
  int64_t n_vocab = 0;
  int64_t dim = 0;  // embedding length
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;  // key/value length per head
  int64_t ffn = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / linear scaling factor
  int64_t rope_dims = 0;
  bool rope_neox = false;  // rotate (i, i + d/2) pairs instead of (2i, 2i+1)
  bool qkv_bias = false;
  bool qk_norm = false;
  bool tied_embeddings = false;

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Throws GgufError naming the key for anything missing, unsupported or inconsistent.
HParams read_hparams(const GgufFile& file);

}  // namespace lb
