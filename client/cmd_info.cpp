// `layerbus info`: what a GGUF model is, and what each layer costs in memory.
#include <cstdio>
#include <map>
#include <memory>

#include "commands.hpp"
#include "model/hparams.hpp"
#include "model/weights.hpp"
#include "util/bytes.hpp"

namespace lb::client {

void add_info(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "Show a model's architecture, sizes and tensor types");
  cmd->add_option("--model", *model, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->callback([model] {
    GgufFile f(*model);
    const HParams hp = read_hparams(f);
    const ModelSizes sizes = model_sizes(f, hp);
    std::printf("file          %s (GGUF v%u, %s)\n", f.path().c_str(), f.version(),
                format_bytes(f.file_size()).c_str());
    std::printf("name          %s\n", f.get_string("general.name", "-").c_str());
    std::printf("architecture  %s\n", hp.arch_name.c_str());
    std::printf("layers        %lld\n", (long long)hp.n_layers);
    std::printf("dim           %lld\n", (long long)hp.dim);
    std::printf("heads         %lld (kv %lld, head dim %lld)\n", (long long)hp.n_heads,
                (long long)hp.n_kv_heads, (long long)hp.head_dim);
    std::printf("ffn           %lld\n", (long long)hp.ffn);
    std::printf("vocab         %lld\n", (long long)hp.n_vocab);
    std::printf("context       %lld\n", (long long)hp.n_ctx_train);
    std::printf("rope          base %g, scale %g, dims %lld, %s\n", double(hp.rope_base),
                double(hp.rope_freq_scale), (long long)hp.rope_dims,
                hp.rope_neox ? "neox" : "normal");
    std::printf("rms eps       %g\n", double(hp.rms_eps));
    std::printf("embeddings    %s\n",
                hp.tied_embeddings ? "tied (output uses token_embd)" : "separate output.weight");
    std::printf("kv cache      %s per token per layer (F16)\n",
                format_bytes(uint64_t(2 * hp.kv_dim() * 2)).c_str());
    std::printf("embedding     %s\n", format_bytes(sizes.embedding_bytes).c_str());
    std::printf("head          %s\n", format_bytes(sizes.head_bytes).c_str());
    for (size_t i = 0; i < sizes.layer_bytes.size(); ++i) {
      std::printf("layer %-4zu    %s\n", i, format_bytes(sizes.layer_bytes[i]).c_str());
    }
    std::map<std::string, std::pair<int, uint64_t>> types;
    for (const GgufTensor& t : f.tensors()) {
      auto& e = types[type_name(t.type)];
      e.first += 1;
      e.second += t.n_bytes;
    }
    for (const auto& [name, e] : types) {
      std::printf("type %-8s %d tensors, %s\n", name.c_str(), e.first,
                  format_bytes(e.second).c_str());
    }
  });
}

}  // namespace lb::client
