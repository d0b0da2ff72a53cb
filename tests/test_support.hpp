#pragma once
// Helpers every test shares: where ../shared is, where the built executables are, temp dirs,
// seeded random data.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace lbtest {

// ../shared beside the project root, or $LAYERBUS_SHARED; empty when absent.
inline std::string shared_dir() {
  if (const char* env = std::getenv("LAYERBUS_SHARED"); env && *env) {
    return std::filesystem::is_directory(env) ? std::string(env) : std::string();
  }
  std::filesystem::path p = std::filesystem::path(LAYERBUS_SOURCE_DIR) / ".." / "shared";
  return std::filesystem::is_directory(p) ? std::filesystem::canonical(p).string() : std::string();
}

// n normally distributed floats (mean 0, standard deviation `scale`), the same for the same seed.
inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// The whole file, or "" when it cannot be read (a log its process never wrote).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string bin_path(const std::string& exe) {
  return (std::filesystem::path(LAYERBUS_BIN_DIR) / exe).string();
}

// A fresh directory under the build tree, removed by the caller's TempDir destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("layerbus-" + tag + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(reinterpret_cast<uintptr_t>(this) & 0xffff));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace lbtest

// Skips the current test when ../shared is missing, printing why.
#define LB_REQUIRE_SHARED(dir_var)                                                     \
  const std::string dir_var = lbtest::shared_dir();                                    \
  if (dir_var.empty()) {                                                               \
    GTEST_SKIP() << "../shared (or $LAYERBUS_SHARED) not found: real models and "      \
                    "reference outputs are unavailable, so this test cannot run here"; \
  }
