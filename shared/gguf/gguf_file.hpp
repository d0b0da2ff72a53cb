#pragma once
// Read-only view of a GGUF file (versions 2 and 3), memory-mapped. Parsing reads only the header,
// metadata and tensor infos; tensor data pages are touched by whoever uses a tensor, so a stage
// that holds layers 10-19 never faults in layers 0-9. Every count, length, offset, dimension and
// type read from the file is checked before use; a bad file raises GgufError naming the field.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "quant/ggml_type.hpp"
#include "util/error.hpp"

namespace lb {

class GgufError : public Error {
 public:
  using Error::Error;
};

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// One metadata value. Integers land in u64/i64 (both filled when representable), floats in f64,
// strings in str, arrays in elems (all of elem_type; arrays may nest).
struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  uint64_t u64 = 0;
  int64_t i64 = 0;
  double f64 = 0;
  std::string str;
  GgufValueType elem_type = GgufValueType::UINT8;
  std::vector<GgufValue> elems;

  bool is_integer() const;
  bool is_float() const;
};

struct GgufTensor {
  std::string name;
  uint32_t n_dims = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the row length (innermost)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping; valid while the GgufFile lives

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Maps and parses path; throws GgufError (naming the file and field) for anything malformed.
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }

  // Typed getters: the key must exist with a compatible type, else GgufError naming the key.
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  // Same, with a default when the key is absent (a present key of the wrong type still throws).
  std::string get_string(const std::string& key, const std::string& def) const;
  uint64_t get_uint(const std::string& key, uint64_t def) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;
  // Like find_tensor, but throws GgufError naming the tensor when it is missing.
  const GgufTensor& tensor(const std::string& name) const;

  // Raw bytes [offset, offset + size) of the file; throws GgufError when outside it.
  std::string read_bytes(uint64_t offset, uint64_t size) const;

  // A short fingerprint of the file (its size and a hash of everything before the tensor data):
  // two processes compare it to agree they hold the same model without reading the weights.
  std::string digest() const;

  // Faults in a tensor's pages now (so resident memory reflects what a stage holds), or gives
  // them back to the kernel (resident memory drops; the data is re-read from the file if touched).
  void prefetch(const GgufTensor& t) const;
  void release(const GgufTensor& t) const;

 private:
  void parse();

  std::string path_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace lb
