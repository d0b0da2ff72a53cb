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
  lb::write_synthetic_model(
      lb::synth_spec("llama", 2048, 22, 32, 4, 5632, 32000, lb::parse_type_name(type)), path);
  return path;
}

}  // namespace lbbench
