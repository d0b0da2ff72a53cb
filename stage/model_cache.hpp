#pragma once
// A stage without its own copy of the model keeps a sparse local copy of the broker's file in a
// cache directory: the same size and offsets, holding only the header and the tensors it was
// assigned (fetched from the broker in hash-checked chunks), so it maps them like any GGUF file.
// What is present is recorded beside it, so a restart or a later assignment fetches only what
// is missing.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "wire/messages.hpp"

namespace lb {

class ModelCache {
 public:
  // Fetches bytes [offset, offset + size) of the model from the broker, hash-checked.
  using FetchFn = std::function<std::string(uint64_t offset, uint64_t size)>;

  ModelCache(const std::string& dir, const wire::ModelRef& model, FetchFn fetch);
  const std::string& path() const { return path_; }

  // Makes bytes [offset, offset + size) present, fetching what is missing in chunks.
  void ensure(uint64_t offset, uint64_t size);
  // Makes the header and every tensor of layers [begin, end) (plus the embedding, output norm
  // and head for the first and last stage) present.
  void ensure_range(int64_t begin, int64_t end);

  uint64_t fetched_bytes() const { return fetched_; }

 private:
  void read_index();                       // merges the recorded ranges into have_
  void add_range(uint64_t b, uint64_t e);  // [b, e) is present
  void save_index();

  std::string path_;
  std::string index_path_;
  wire::ModelRef model_;
  FetchFn fetch_;
  std::map<uint64_t, uint64_t> have_;  // offset -> end, disjoint
  uint64_t fetched_ = 0;
};

constexpr uint64_t kModelChunkBytes = 4ull << 20;

// $XDG_CACHE_HOME/layerbus, else ~/.cache/layerbus, else /tmp/layerbus-cache-UID.
std::string default_cache_dir();

}  // namespace lb
