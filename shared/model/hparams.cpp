#include "model/hparams.hpp"

namespace lb {

namespace {

constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxVocab = 1 << 24;

int64_t checked(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  uint64_t v = f.get_uint(key);
  if (v < uint64_t(lo) || v > uint64_t(hi)) {
    throw GgufError(f.path() + ": metadata '" + key + "' = " + std::to_string(v) + " is outside [" +
                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return int64_t(v);
}

}  // namespace

HParams read_hparams(const GgufFile& f) {
  HParams hp;
  hp.arch_name = f.get_string("general.architecture");
  if (hp.arch_name == "llama") {
    hp.arch = Arch::Llama;
  } else if (hp.arch_name == "qwen2") {
    hp.arch = Arch::Qwen2;
    hp.qkv_bias = true;
    hp.rope_neox = true;
  } else if (hp.arch_name == "qwen3") {
    hp.arch = Arch::Qwen3;
    hp.qk_norm = true;
    hp.rope_neox = true;
  } else {
    throw GgufError(f.path() + ": architecture '" + hp.arch_name +
                    "' is not supported (llama, qwen2, qwen3 are)");
  }
  const std::string a = hp.arch_name + ".";
  hp.dim = checked(f, a + "embedding_length", 1, kMaxDim);
  hp.n_layers = checked(f, a + "block_count", 1, kMaxLayers);
  hp.ffn = checked(f, a + "feed_forward_length", 1, kMaxDim);
  hp.n_heads = checked(f, a + "attention.head_count", 1, kMaxDim);
  hp.n_kv_heads = f.has(a + "attention.head_count_kv")
                      ? checked(f, a + "attention.head_count_kv", 1, hp.n_heads)
                      : hp.n_heads;
  if (hp.n_heads % hp.n_kv_heads != 0) {
    throw GgufError(f.path() + ": head_count " + std::to_string(hp.n_heads) +
                    " is not a multiple of head_count_kv " + std::to_string(hp.n_kv_heads));
  }
  hp.head_dim = f.has(a + "attention.key_length")
                    ? checked(f, a + "attention.key_length", 1, kMaxDim)
                    : hp.dim / hp.n_heads;
  if (!f.has(a + "attention.key_length") && hp.dim % hp.n_heads != 0) {
    throw GgufError(f.path() + ": embedding_length is not a multiple of head_count");
  }
  if (f.has(a + "attention.value_length") &&
      checked(f, a + "attention.value_length", 1, kMaxDim) != hp.head_dim) {
    throw GgufError(f.path() + ": attention.value_length differs from key_length (unsupported)");
  }
  if (hp.head_dim % 2 != 0) throw GgufError(f.path() + ": head dimension must be even for RoPE");
  hp.n_ctx_train =
      f.has(a + "context_length") ? checked(f, a + "context_length", 1, 1 << 24) : 2048;
  hp.rms_eps = float(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  hp.rope_base = float(f.get_float(a + "rope.freq_base", 10000.0));
  hp.rope_dims = f.has(a + "rope.dimension_count")
                     ? checked(f, a + "rope.dimension_count", 2, hp.head_dim)
                     : hp.head_dim;
  if (hp.rope_dims % 2 != 0) throw GgufError(f.path() + ": rope.dimension_count must be even");
  const std::string scaling = f.get_string(a + "rope.scaling.type", "none");
  if (scaling == "linear") {
    double factor = f.get_float(a + "rope.scaling.factor", 1.0);
    if (!(factor > 0)) throw GgufError(f.path() + ": rope.scaling.factor must be positive");
    hp.rope_freq_scale = float(1.0 / factor);
  } else if (scaling != "none" && scaling != "") {
    throw GgufError(f.path() + ": rope.scaling.type '" + scaling +
                    "' is not supported (none, linear are)");
  }
  if (!(hp.rms_eps > 0) || !(hp.rope_base > 0)) {
    throw GgufError(f.path() + ": rms epsilon and rope.freq_base must be positive");
  }

  const GgufTensor& embd = f.tensor("token_embd.weight");
  if (embd.n_dims != 2 || embd.ne[0] != hp.dim || embd.ne[1] < 1 || embd.ne[1] > kMaxVocab) {
    throw GgufError(f.path() + ": tensor 'token_embd.weight' has the wrong shape");
  }
  hp.n_vocab = embd.ne[1];
  hp.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  return hp;
}

}  // namespace lb
