// `layerbus synth`: write a GGUF with seeded random weights of the given shapes, so tests and
// benchmarks get realistic sizes without downloading anything.
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "synth/synth.hpp"

namespace lb::client {

void add_synth(CLI::App& app) {
  struct Args {
    SynthSpec spec;
    std::string type = "f32";
    std::string out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a synthetic GGUF model with random weights");
  cmd->add_option("--arch", a->spec.arch, "llama | qwen2 | qwen3")->required();
  cmd->add_option("--dim", a->spec.dim, "Embedding length")->required();
  cmd->add_option("--layers", a->spec.n_layers, "Transformer layers")->required();
  cmd->add_option("--heads", a->spec.n_heads, "Attention heads")->required();
  cmd->add_option("--kv-heads", a->spec.n_kv_heads, "Key/value heads")->required();
  cmd->add_option("--ffn", a->spec.ffn, "Feed-forward length")->required();
  cmd->add_option("--vocab", a->spec.vocab, "Vocabulary size")->required();
  cmd->add_option("--type", a->type, "f32 | f16 | q8_0 | q4_0 | q4_k")->required();
  cmd->add_option("--out", a->out, "Output file")->required();
  cmd->add_option("--seed", a->spec.seed, "Seed for the weights");
  cmd->add_option("--ctx", a->spec.context_length, "Context length written to the metadata");
  cmd->callback([a] {
    a->spec.type = parse_type_name(a->type);
    write_synthetic_model(a->spec, a->out);
    std::cerr << "wrote " << a->out << "\n";
  });
}

}  // namespace lb::client
