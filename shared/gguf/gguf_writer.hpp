#pragma once
// Writes GGUF files (version 3 by default, 2 on request) that llama.cpp and GgufFile read: metadata
// of every value type (arrays may nest), tensor infos, alignment padding and tensor data.
//
// Tensors are declared first (name, shape, type) and their bytes are produced only while write()
// runs, tensor by tensor in declaration order, so a multi-gigabyte model never has to sit in
// memory: a tensor's data is either a byte buffer handed over up front or a callback that streams
// the bytes into a GgufDataSink.
//
//   GgufWriter w;
//   w.set_string("general.architecture", "llama");
//   w.set_u32("llama.block_count", 22);
//   w.add_tensor("output_norm.weight", {2048}, GgmlType::F32, bytes);
//   w.add_tensor("output.weight", {2048, 32000}, GgmlType::Q6_K,
//                [&](GgufDataSink& out) { /* out.write(row, n) for every row */ });
//   w.write("model.gguf");
//
// Everything a writer is told is checked when it is told (value types, ranges, shapes, names,
// duplicates); write() also checks that every callback delivered exactly the tensor's size.
// Errors are lb::Error naming the key or tensor.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf_file.hpp"

namespace lb {

// GgufValue builders. Each checks that the value fits its type (gguf_uint(UINT8, 300) throws).
GgufValue gguf_uint(GgufValueType type, uint64_t v);  // UINT8, UINT16, UINT32, UINT64
GgufValue gguf_int(GgufValueType type, int64_t v);    // INT8, INT16, INT32, INT64
GgufValue gguf_float(GgufValueType type, double v);   // FLOAT32, FLOAT64
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
// An array of elem_type; every element must be of that type (nested arrays are elements of type
// ARRAY, each with its own element type).
GgufValue gguf_array(GgufValueType elem_type, std::vector<GgufValue> elems);

// Where a streaming tensor callback puts its bytes, in order.
class GgufDataSink {
 public:
  virtual ~GgufDataSink() = default;
  virtual void write(const void* data, size_t n) = 0;
};
using GgufTensorFill = std::function<void(GgufDataSink& out)>;

class GgufWriter {
 public:
  static constexpr uint32_t kDefaultAlignment = 32;

  explicit GgufWriter(uint32_t version = 3);  // 2 or 3

  // Metadata, kept in the order first set; setting a key again replaces its value in place.
  void set(const std::string& key, GgufValue value);
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_u64(const std::string& key, uint64_t v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Sets general.alignment (a UINT32, as llama.cpp requires): a power of two, 1 to 65536.
  // Tensor data offsets are padded to it. Without it the GGUF default of 32 applies.
  void set_alignment(uint32_t alignment);
  bool has(const std::string& key) const { return index_.count(key) != 0; }

  // Tensors, written in the order added. ne[0] is the row length and must be a multiple of the
  // type's block size; 1 to 4 dimensions, each >= 1; names unique and shorter than 64 bytes.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                  std::vector<uint8_t> data);
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                  const void* data, size_t n_bytes);  // copies the bytes
  // Streams the data: fill is called once, during write(), and must write exactly
  // tensor_bytes(ne, type) bytes to the sink.
  void add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                  GgufTensorFill fill);
  size_t tensor_count() const { return tensors_.size(); }

  // Bytes a tensor of this shape and type occupies; throws lb::Error for an invalid shape/type.
  static uint64_t tensor_bytes(const std::vector<int64_t>& ne, GgmlType type);

  // Writes the file: to a temporary file beside path, renamed over path only when complete (a
  // failed write leaves no partial file behind). May be called more than once; streamed tensors'
  // callbacks then run again.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t n_bytes;
    std::vector<uint8_t> data;
    GgufTensorFill fill;
  };
  Tensor& declare(const std::string& name, const std::vector<int64_t>& ne, GgmlType type);
  uint64_t alignment() const;

  uint32_t version_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> index_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace lb
