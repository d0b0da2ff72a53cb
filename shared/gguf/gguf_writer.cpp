#include "gguf/gguf_writer.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

namespace lb {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr size_t kMaxTensorName = 63;    // ggml's GGML_MAX_NAME (64) less the terminating NUL
constexpr size_t kMaxKeyBytes = 65535;
constexpr uint32_t kMaxAlignment = 1u << 16;

bool valid_type(GgufValueType t) {
  return uint32_t(t) <= uint32_t(GgufValueType::FLOAT64);
}

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}

uint64_t unsigned_max(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
      return 0xff;
    case GgufValueType::UINT16:
      return 0xffff;
    case GgufValueType::UINT32:
      return 0xffffffffull;
    default:
      return std::numeric_limits<uint64_t>::max();
  }
}
int64_t signed_min(GgufValueType t) {
  switch (t) {
    case GgufValueType::INT8:
      return INT8_MIN;
    case GgufValueType::INT16:
      return INT16_MIN;
    case GgufValueType::INT32:
      return INT32_MIN;
    default:
      return INT64_MIN;
  }
}
int64_t signed_max(GgufValueType t) {
  switch (t) {
    case GgufValueType::INT8:
      return INT8_MAX;
    case GgufValueType::INT16:
      return INT16_MAX;
    case GgufValueType::INT32:
      return INT32_MAX;
    default:
      return INT64_MAX;
  }
}

// Checks a value (recursively) so that write() can encode it without surprises.
void validate(const GgufValue& v, const std::string& what) {
  if (!valid_type(v.type)) {
    throw Error(what + " has invalid value type " + std::to_string(uint32_t(v.type)));
  }
  if (is_unsigned(v.type) && v.u64 > unsigned_max(v.type)) {
    throw Error(what + " value " + std::to_string(v.u64) + " does not fit " +
                gguf_value_type_name(v.type));
  }
  if (is_signed(v.type) && (v.i64 < signed_min(v.type) || v.i64 > signed_max(v.type))) {
    throw Error(what + " value " + std::to_string(v.i64) + " does not fit " +
                gguf_value_type_name(v.type));
  }
  if (v.type == GgufValueType::ARRAY) {
    if (!valid_type(v.elem_type)) {
      throw Error(what + " has invalid array element type " +
                  std::to_string(uint32_t(v.elem_type)));
    }
    for (size_t i = 0; i < v.elems.size(); ++i) {
      const std::string ew = what + "[" + std::to_string(i) + "]";
      if (v.elems[i].type != v.elem_type) {
        throw Error(ew + " is " + gguf_value_type_name(v.elems[i].type) + " in an array of " +
                    gguf_value_type_name(v.elem_type));
      }
      validate(v.elems[i], ew);
    }
  }
}

// Buffered output to a FILE*, every failure reported with the path.
class Out {
 public:
  explicit Out(const std::string& path) : path_(path) {
    f_ = std::fopen(path.c_str(), "wb");
    if (!f_) throw Error(path + ": cannot create: " + std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  }
  ~Out() {
    if (f_) std::fclose(f_);
  }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;

  void bytes(const void* p, size_t n) {
    if (n == 0) return;
    if (std::fwrite(p, 1, n, f_) != n)
      throw Error(path_ + ": write failed: " + std::strerror(errno));
    pos_ += n;
  }
  template <typename T>
  void pod(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t zeros[kMaxAlignment] = {};
    const uint64_t rem = pos_ % alignment;
    if (rem) bytes(zeros, size_t(alignment - rem));
  }
  uint64_t pos() const { return pos_; }
  void close() {
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) throw Error(path_ + ": write failed: " + std::strerror(errno));
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
};

void write_value(Out& out, const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::UINT8:
      out.pod<uint8_t>(uint8_t(v.u64));
      break;
    case GgufValueType::INT8:
      out.pod<int8_t>(int8_t(v.i64));
      break;
    case GgufValueType::UINT16:
      out.pod<uint16_t>(uint16_t(v.u64));
      break;
    case GgufValueType::INT16:
      out.pod<int16_t>(int16_t(v.i64));
      break;
    case GgufValueType::UINT32:
      out.pod<uint32_t>(uint32_t(v.u64));
      break;
    case GgufValueType::INT32:
      out.pod<int32_t>(int32_t(v.i64));
      break;
    case GgufValueType::FLOAT32:
      out.pod<float>(float(v.f64));
      break;
    case GgufValueType::BOOL:
      out.pod<uint8_t>(v.u64 != 0 ? 1 : 0);
      break;
    case GgufValueType::STRING:
      out.str(v.str);
      break;
    case GgufValueType::ARRAY:
      out.pod<uint32_t>(uint32_t(v.elem_type));
      out.pod<uint64_t>(v.elems.size());
      for (const GgufValue& e : v.elems) write_value(out, e);
      break;
    case GgufValueType::UINT64:
      out.pod<uint64_t>(v.u64);
      break;
    case GgufValueType::INT64:
      out.pod<int64_t>(v.i64);
      break;
    case GgufValueType::FLOAT64:
      out.pod<double>(v.f64);
      break;
  }
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

// Counts what a fill callback writes and refuses anything past the tensor's size.
class CountingSink : public GgufDataSink {
 public:
  CountingSink(Out& out, const std::string& name, uint64_t expected)
      : out_(out), name_(name), expected_(expected) {}
  void write(const void* data, size_t n) override {
    if (n > expected_ - written_) {
      throw Error("gguf writer: tensor '" + name_ + "' data callback wrote more than its " +
                  std::to_string(expected_) + " bytes");
    }
    out_.bytes(data, n);
    written_ += n;
  }
  uint64_t written() const { return written_; }

 private:
  Out& out_;
  const std::string& name_;
  uint64_t expected_;
  uint64_t written_ = 0;
};

}  // namespace

GgufValue gguf_uint(GgufValueType type, uint64_t v) {
  if (!is_unsigned(type)) {
    throw Error(std::string("gguf_uint: ") + gguf_value_type_name(type) + " is not unsigned");
  }
  if (v > unsigned_max(type)) {
    throw Error("gguf_uint: " + std::to_string(v) + " does not fit " + gguf_value_type_name(type));
  }
  GgufValue r;
  r.type = type;
  r.u64 = v;
  r.i64 = v > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v);
  return r;
}

GgufValue gguf_int(GgufValueType type, int64_t v) {
  if (!is_signed(type)) {
    throw Error(std::string("gguf_int: ") + gguf_value_type_name(type) + " is not signed");
  }
  if (v < signed_min(type) || v > signed_max(type)) {
    throw Error("gguf_int: " + std::to_string(v) + " does not fit " + gguf_value_type_name(type));
  }
  GgufValue r;
  r.type = type;
  r.i64 = v;
  r.u64 = v < 0 ? 0 : uint64_t(v);
  return r;
}

GgufValue gguf_float(GgufValueType type, double v) {
  if (type != GgufValueType::FLOAT32 && type != GgufValueType::FLOAT64) {
    throw Error(std::string("gguf_float: ") + gguf_value_type_name(type) + " is not a float type");
  }
  GgufValue r;
  r.type = type;
  r.f64 = type == GgufValueType::FLOAT32 ? double(float(v)) : v;
  return r;
}

GgufValue gguf_bool(bool v) {
  GgufValue r;
  r.type = GgufValueType::BOOL;
  r.u64 = v ? 1 : 0;
  r.i64 = v ? 1 : 0;
  return r;
}

GgufValue gguf_string(std::string v) {
  GgufValue r;
  r.type = GgufValueType::STRING;
  r.str = std::move(v);
  return r;
}

GgufValue gguf_array(GgufValueType elem_type, std::vector<GgufValue> elems) {
  GgufValue r;
  r.type = GgufValueType::ARRAY;
  r.elem_type = elem_type;
  r.elems = std::move(elems);
  validate(r, "gguf_array");
  return r;
}

GgufWriter::GgufWriter(uint32_t version) : version_(version) {
  if (version != 2 && version != 3) {
    throw Error("gguf writer: version " + std::to_string(version) + " is not supported (2 or 3)");
  }
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key.empty()) throw Error("gguf writer: metadata key is empty");
  if (key.size() > kMaxKeyBytes) {
    throw Error("gguf writer: metadata key '" + key.substr(0, 64) + "...' is longer than " +
                std::to_string(kMaxKeyBytes) + " bytes");
  }
  validate(value, "gguf writer: metadata '" + key + "'");
  if (key == "general.alignment") {
    const uint64_t a = value.u64;
    if (value.type != GgufValueType::UINT32 || a == 0 || a > kMaxAlignment || (a & (a - 1))) {
      throw Error("gguf writer: metadata 'general.alignment' must be a uint32 power of two up to " +
                  std::to_string(kMaxAlignment));
    }
  }
  auto it = index_.find(key);
  if (it != index_.end()) {
    kv_[it->second].second = std::move(value);
  } else {
    index_.emplace(key, kv_.size());
    kv_.emplace_back(key, std::move(value));
  }
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
  set(key, gguf_string(v));
}
void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  set(key, gguf_uint(GgufValueType::UINT32, v));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  set(key, gguf_int(GgufValueType::INT32, v));
}
void GgufWriter::set_f32(const std::string& key, float v) {
  set(key, gguf_float(GgufValueType::FLOAT32, v));
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  set(key, gguf_bool(v));
}
void GgufWriter::set_u64(const std::string& key, uint64_t v) {
  set(key, gguf_uint(GgufValueType::UINT64, v));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::vector<GgufValue> elems;
  elems.reserve(v.size());
  for (const std::string& s : v) elems.push_back(gguf_string(s));
  set(key, gguf_array(GgufValueType::STRING, std::move(elems)));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  std::vector<GgufValue> elems;
  elems.reserve(v.size());
  for (float x : v) elems.push_back(gguf_float(GgufValueType::FLOAT32, x));
  set(key, gguf_array(GgufValueType::FLOAT32, std::move(elems)));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<GgufValue> elems;
  elems.reserve(v.size());
  for (int32_t x : v) elems.push_back(gguf_int(GgufValueType::INT32, x));
  set(key, gguf_array(GgufValueType::INT32, std::move(elems)));
}

void GgufWriter::set_alignment(uint32_t alignment) {
  set_u32("general.alignment", alignment);
}

uint64_t GgufWriter::alignment() const {
  auto it = index_.find("general.alignment");
  return it == index_.end() ? kDefaultAlignment : kv_[it->second].second.u64;
}

namespace {
uint64_t checked_tensor_bytes(const std::vector<int64_t>& ne, GgmlType type,
                              const std::string& who) {
  const TypeInfo* info = type_info(uint32_t(type));
  if (!info) throw Error(who + "unknown tensor type " + std::to_string(uint32_t(type)));
  if (ne.empty() || ne.size() > 4) {
    throw Error(who + "tensors have 1 to 4 dimensions, not " + std::to_string(ne.size()));
  }
  constexpr int64_t kMaxElements = int64_t(1) << 40;
  int64_t n = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 1 || ne[d] > kMaxElements / n) {
      throw Error(who + "dimension " + std::to_string(d) + " = " + std::to_string(ne[d]) +
                  " is out of range");
    }
    n *= ne[d];
  }
  if (ne[0] % info->block_size != 0) {
    throw Error(who + "row length " + std::to_string(ne[0]) + " is not a multiple of the " +
                info->name + " block size " + std::to_string(info->block_size));
  }
  return uint64_t(n / ne[0]) * uint64_t(ne[0] / info->block_size) * info->block_bytes;
}
}  // namespace

uint64_t GgufWriter::tensor_bytes(const std::vector<int64_t>& ne, GgmlType type) {
  return checked_tensor_bytes(ne, type, "gguf writer: ");
}

GgufWriter::Tensor& GgufWriter::declare(const std::string& name, const std::vector<int64_t>& ne,
                                        GgmlType type) {
  if (name.empty()) throw Error("gguf writer: tensor name is empty");
  if (name.size() > kMaxTensorName) {
    throw Error("gguf writer: tensor name '" + name + "' is longer than " +
                std::to_string(kMaxTensorName) + " bytes");
  }
  if (tensor_index_.count(name)) throw Error("gguf writer: tensor '" + name + "' added twice");
  const uint64_t n_bytes = checked_tensor_bytes(ne, type, "gguf writer: tensor '" + name + "': ");
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back(Tensor{name, ne, type, n_bytes, {}, {}});
  return tensors_.back();
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                            std::vector<uint8_t> data) {
  const uint64_t expected = checked_tensor_bytes(ne, type, "gguf writer: tensor '" + name + "': ");
  if (data.size() != expected) {
    throw Error("gguf writer: tensor '" + name + "' has " + std::to_string(data.size()) +
                " bytes of data, its shape and type need " + std::to_string(expected));
  }
  declare(name, ne, type).data = std::move(data);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                            const void* data, size_t n_bytes) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  add_tensor(name, ne, type, std::vector<uint8_t>(p, p + n_bytes));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& ne, GgmlType type,
                            GgufTensorFill fill) {
  if (!fill) throw Error("gguf writer: tensor '" + name + "' has no data callback");
  declare(name, ne, type).fill = std::move(fill);
}

void GgufWriter::write(const std::string& path) const {
  const uint64_t align = alignment();
  // A name of its own per process and call, so concurrent writers of one path never collide.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  try {
    Out out(tmp);
    out.pod<uint32_t>(kMagic);
    out.pod<uint32_t>(version_);
    out.pod<uint64_t>(tensors_.size());
    out.pod<uint64_t>(kv_.size());
    for (const auto& [key, value] : kv_) {
      out.str(key);
      out.pod<uint32_t>(uint32_t(value.type));
      write_value(out, value);
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      out.str(t.name);
      out.pod<uint32_t>(uint32_t(t.ne.size()));
      for (int64_t d : t.ne) out.pod<uint64_t>(uint64_t(d));
      out.pod<uint32_t>(uint32_t(t.type));
      out.pod<uint64_t>(offset);
      offset += align_up(t.n_bytes, align);
    }
    out.pad_to(align);
    for (const Tensor& t : tensors_) {
      if (t.fill) {
        CountingSink sink(out, t.name, t.n_bytes);
        t.fill(sink);
        if (sink.written() != t.n_bytes) {
          throw Error("gguf writer: tensor '" + t.name + "' data callback wrote " +
                      std::to_string(sink.written()) + " of its " + std::to_string(t.n_bytes) +
                      " bytes");
        }
      } else {
        out.bytes(t.data.data(), t.data.size());
      }
      out.pad_to(align);
    }
    out.close();
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      throw Error(path + ": cannot rename " + tmp + " over it: " + std::strerror(errno));
    }
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace lb
