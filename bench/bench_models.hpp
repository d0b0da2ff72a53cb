#pragma once
// The synthetic models the benchmarks run, written once into build/bench-models/ (or
// $LAYERBUS_BENCH_DIR) and reused.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "synth/synth.hpp"

namespace lbbench {

inline std::string bench_dir() {
  const char* env = std::getenv("LAYERBUS_BENCH_DIR");
  std::string dir = env && *env ? env : std::string(LAYERBUS_BIN_DIR) + "/../bench-models";
  std::filesystem::create_directories(dir);
  return dir;
}

// TinyLlama-1.1B's shapes: --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000.
inline std::string tinyllama_shaped(const std::string& type) {
  const std::string path = bench_dir() + "/tinyllama-1.1b-" + type + ".gguf";
  if (std::filesystem::exists(path)) return path;
  std::fprintf(stderr, "writing %s ...\n", path.c_str());
  lb::SynthSpec s;
  s.arch = "llama";
  s.dim = 2048;
  s.n_layers = 22;
  s.n_heads = 32;
  s.n_kv_heads = 4;
  s.ffn = 5632;
  s.vocab = 32000;
  s.type = lb::parse_type_name(type);
  s.seed = 1;
  lb::write_synthetic_model(s, path);
  return path;
}

}  // namespace lbbench
