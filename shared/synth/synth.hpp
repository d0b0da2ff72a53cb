#pragma once
// Synthetic models: GGUF files llama.cpp would load (its tensor names, shapes and metadata keys for
// the llama, qwen2 and qwen3 architectures, plus a SentencePiece-style `llama` vocabulary), filled
// with seeded random weights. The same spec and seed always give the same bytes, on any machine:
// the generator is integer splitmix64 plus float arithmetic without library calls.
//
// Weights are scaled so activations stay finite and varied through many layers: matrices have
// standard deviation 1/sqrt(row length) (each projection keeps unit-RMS inputs at unit scale),
// norm weights are near 1, biases small. Tensors are generated, quantized and written one at a
// time, a bounded batch of rows at a time, on all cores, so a 1.1B model needs little memory.
#include <cstdint>
#include <string>
#include <vector>

#include "quant/ggml_type.hpp"

namespace lb {

struct SynthSpec {
  std::string arch;  // llama | qwen2 | qwen3
  int64_t dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, ffn = 0, vocab = 0;
  GgmlType type = GgmlType::F32;  // f32 | f16 | q8_0 | q4_0 | q4_k (see synth_type_names)
  uint64_t seed = 1;
  int64_t context_length = 2048;
};

// A spec from shapes, in the order `layerbus synth` takes them.
SynthSpec synth_spec(const std::string& arch, int64_t dim, int64_t n_layers, int64_t n_heads,
                     int64_t n_kv_heads, int64_t ffn, int64_t vocab, GgmlType type,
                     uint64_t seed = 1);

// The architectures and weight types write_synthetic_model accepts.
std::vector<std::string> synth_arch_names();
std::vector<std::string> synth_type_names();

// A ggml type from its name ("f32", "f16", "bf16", "q4_0", "q8_0", "q4_k", "Q4_K", "q6_k", ...;
// case-insensitive; every type ggml_type.hpp names). Throws lb::Error listing the known names.
GgmlType parse_type_name(const std::string& name);

// Throws lb::Error explaining the first thing wrong with the spec (unknown arch or type, sizes not
// positive, dim not divisible by n_heads, n_heads not a multiple of n_kv_heads, odd head size,
// row lengths not a multiple of the type's block size (256 for q4_k), vocab too small, ...).
void validate_synth_spec(const SynthSpec& spec);

// The smallest vocab a synthetic model can have: <unk>, <s>, </s>, 256 byte tokens, then "▁" and
// the letters a-z with and without "▁".
constexpr int64_t kSynthMinVocab = 259 + 1 + 52;

// The tokenizer written into synthetic models: tokenizer.ggml.tokens / scores / token_type.
struct SynthVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // 1 normal, 2 unknown, 3 control, 6 byte
};
SynthVocab synth_vocab(int64_t n_tokens);

// Writes the model (see the file comment); throws lb::Error for a bad spec or a failed write.
void write_synthetic_model(const SynthSpec& spec, const std::string& path);

}  // namespace lb
