#include "stage/model_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gguf/gguf_file.hpp"
#include "model/weights.hpp"

namespace lb {

namespace fs = std::filesystem;

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/layerbus";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/layerbus";
  return "/tmp/layerbus-cache-" + std::to_string(::getuid());
}

ModelCache::ModelCache(const std::string& dir, const wire::ModelRef& model, FetchFn fetch)
    : model_(model), fetch_(std::move(fetch)) {
  fs::create_directories(dir);
  path_ = (fs::path(dir) / (model.digest + ".gguf")).string();
  index_path_ = path_ + ".have";
  // The file has the model's full size from the start; what was never fetched is a hole.
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::ftruncate(fd, off_t(model.size)) != 0) {
    if (fd >= 0) ::close(fd);
    throw Error("cannot create the model cache file " + path_);
  }
  ::close(fd);
  read_index();
}

void ModelCache::read_index() {
  std::ifstream in(index_path_);
  uint64_t b, e;
  while (in >> b >> e) {
    if (b < e && e <= model_.size) add_range(b, e);
  }
}

void ModelCache::add_range(uint64_t b, uint64_t e) {
  // Merged with what it overlaps or touches, so the ranges stay disjoint and the index small.
  auto it = have_.upper_bound(b);
  if (it != have_.begin() && std::prev(it)->second >= b) {
    --it;
    b = it->first;
  }
  while (it != have_.end() && it->first <= e) {
    e = std::max(e, it->second);
    it = have_.erase(it);
  }
  have_[b] = e;
}

void ModelCache::save_index() {
  // Stages on one machine may share the cache: what another one recorded since is kept (every
  // recorded range was written and synced first), and each writes its own temporary file.
  read_index();
  const std::string tmp = index_path_ + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    for (const auto& [b, e] : have_) out << b << " " << e << "\n";
  }
  fs::rename(tmp, index_path_);
}

void ModelCache::ensure(uint64_t offset, uint64_t size) {
  if (offset > model_.size || size > model_.size - offset) {
    throw Error("model cache: bytes " + std::to_string(offset) + "+" + std::to_string(size) +
                " are outside the model");
  }
  const uint64_t end = offset + size;
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot write the model cache file " + path_);
  uint64_t pos = offset;
  while (pos < end) {
    // Skip what is present already.
    auto it = have_.upper_bound(pos);
    if (it != have_.begin() && std::prev(it)->second > pos) {
      pos = std::prev(it)->second;
      continue;
    }
    uint64_t stop = std::min(end, pos + kModelChunkBytes);
    if (it != have_.end()) stop = std::min(stop, it->first);
    const std::string data = fetch_(pos, stop - pos);
    if (::pwrite(fd, data.data(), data.size(), off_t(pos)) != ssize_t(data.size())) {
      ::close(fd);
      throw Error("cannot write the model cache file " + path_);
    }
    fetched_ += data.size();
    add_range(pos, stop);
    pos = stop;
  }
  ::fsync(fd);
  ::close(fd);
  save_index();
}

void ModelCache::ensure_range(int64_t begin, int64_t end) {
  ensure(0, model_.header);
  GgufFile file(path_);
  const HParams hp = read_hparams(file);
  const bool ends = begin == 0 || end == hp.n_layers;
  for (const GgufTensor& t : file.tensors()) {
    // Outside the layers: token_embd, output_norm, output, rope_freqs, for the first and last
    // stage.
    const int64_t il = layer_of(t.name);
    const bool need = il >= 0 ? il >= begin && il < end : ends;
    if (need) ensure(file.data_offset() + t.offset, t.n_bytes);
  }
}

}  // namespace lb
