#include "gguf/gguf_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

namespace lb {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
// Sanity limits beyond "fits in the file": they keep a hostile file from making us build huge
// structures out of numbers that merely fit in the remaining bytes.
constexpr uint64_t kMaxStringBytes = 64ull << 20;
constexpr uint64_t kMaxArrayDepth = 4;
// Each parsed element costs ~100 bytes of GgufValue, so a count that merely fits the file (1 byte
// per uint8) could still ask for 100x the file size in memory. Real arrays (vocabularies, merges,
// charsmaps) stay far below this.
constexpr uint64_t kMaxArrayElements = 1u << 24;
constexpr uint64_t kMaxTensors = 1u << 20;
constexpr uint64_t kMaxKeys = 1u << 20;
constexpr int64_t kMaxDim = int64_t(1) << 40;
constexpr uint64_t kMaxAlignment = 1u << 16;

// Sequential reader over the mapping; every read is bounds-checked and errors name the field.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw GgufError(path_ + ": " + field + " " + what + " (at byte " + std::to_string(pos_) + ")");
  }

  void need(uint64_t n, const std::string& field) const {
    if (n > remaining()) {
      fail(field, "is truncated: needs " + std::to_string(n) + " bytes, file has " +
                      std::to_string(remaining()) + " left");
    }
  }

  template <typename T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& field) {
    uint64_t len = read<uint64_t>(field + " length");
    if (len > kMaxStringBytes) {
      fail(field, "has length " + std::to_string(len) + ", over the limit of " +
                      std::to_string(kMaxStringBytes));
    }
    need(len, field);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

// Smallest encoded size of one value of type t: bounds array counts before reserving memory.
uint64_t min_encoded_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
      return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32:
      return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64:
    case GgufValueType::STRING:
      return 8;
    case GgufValueType::ARRAY:
      return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) {
  return t <= uint32_t(GgufValueType::FLOAT64);
}

void set_signed(GgufValue& v, int64_t x) {
  v.i64 = x;
  v.u64 = x < 0 ? 0 : uint64_t(x);
}

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& field, uint64_t depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::UINT8:
      v.u64 = c.read<uint8_t>(field);
      v.i64 = int64_t(v.u64);
      break;
    case GgufValueType::UINT16:
      v.u64 = c.read<uint16_t>(field);
      v.i64 = int64_t(v.u64);
      break;
    case GgufValueType::UINT32:
      v.u64 = c.read<uint32_t>(field);
      v.i64 = int64_t(v.u64);
      break;
    case GgufValueType::UINT64:
      v.u64 = c.read<uint64_t>(field);
      v.i64 = v.u64 > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v.u64);
      break;
    case GgufValueType::INT8:
      set_signed(v, c.read<int8_t>(field));
      break;
    case GgufValueType::INT16:
      set_signed(v, c.read<int16_t>(field));
      break;
    case GgufValueType::INT32:
      set_signed(v, c.read<int32_t>(field));
      break;
    case GgufValueType::INT64:
      set_signed(v, c.read<int64_t>(field));
      break;
    case GgufValueType::FLOAT32:
      v.f64 = c.read<float>(field);
      break;
    case GgufValueType::FLOAT64:
      v.f64 = c.read<double>(field);
      break;
    case GgufValueType::BOOL: {
      uint8_t b = c.read<uint8_t>(field);
      if (b > 1) c.fail(field, "is a bool with value " + std::to_string(b));
      v.u64 = b;
      v.i64 = b;
      break;
    }
    case GgufValueType::STRING:
      v.str = c.read_string(field);
      break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        c.fail(field, "nests arrays deeper than " + std::to_string(kMaxArrayDepth));
      uint32_t et = c.read<uint32_t>(field + " element type");
      if (!valid_value_type(et))
        c.fail(field, "has unknown array element type " + std::to_string(et));
      v.elem_type = GgufValueType(et);
      uint64_t n = c.read<uint64_t>(field + " array length");
      uint64_t min_size = min_encoded_size(v.elem_type);
      if (n > kMaxArrayElements) {
        c.fail(field, "has " + std::to_string(n) + " array elements, over the limit of " +
                          std::to_string(kMaxArrayElements));
      }
      if (n > c.remaining() / min_size) {
        c.fail(field, "claims " + std::to_string(n) + " array elements but only " +
                          std::to_string(c.remaining()) + " bytes remain");
      }
      v.elems.reserve(n);
      for (uint64_t i = 0; i < n; ++i) {
        v.elems.push_back(
            read_value(c, v.elem_type, field + "[" + std::to_string(i) + "]", depth + 1));
      }
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* names[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                "int32",  "float32", "bool",   "string", "array",
                                "uint64", "int64",   "float64"};
  uint32_t i = uint32_t(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufValueType::FLOAT32 || type == GgufValueType::FLOAT64;
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw GgufError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw GgufError(path + ": not a regular file");
  }
  size_ = uint64_t(st.st_size);
  if (size_ > 0) {
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd_);
      throw GgufError(path + ": cannot map: " + std::strerror(err));
    }
    map_ = static_cast<const uint8_t*>(m);
  }
  try {
    try {
      parse();
    } catch (const std::bad_alloc&) {
      throw GgufError(path + ": metadata too large to hold in memory");
    }
  } catch (...) {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    ::close(fd_);
    throw;
  }
}

GgufFile::~GgufFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void GgufFile::parse() {
  Cursor c(map_, size_, path_);
  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) c.fail("magic", "is not GGUF");
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && version_ != 0) {
      c.fail("version", "looks big-endian (" + std::to_string(version_) +
                            "); only little-endian GGUF is supported");
    }
    c.fail("version", std::to_string(version_) + " is not supported (only 2 and 3)");
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_tensors > kMaxTensors || n_tensors > c.remaining() / 24) {
    c.fail("tensor count", std::to_string(n_tensors) + " is impossible for this file");
  }
  if (n_kv > kMaxKeys || n_kv > c.remaining() / 12) {
    c.fail("metadata count", std::to_string(n_kv) + " is impossible for this file");
  }

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string field = "metadata key #" + std::to_string(i);
    std::string key = c.read_string(field);
    field = "metadata '" + key + "'";
    uint32_t t = c.read<uint32_t>(field + " type");
    if (!valid_value_type(t)) c.fail(field, "has unknown type " + std::to_string(t));
    GgufValue v = read_value(c, GgufValueType(t), field, 0);
    if (!kv_.emplace(key, std::move(v)).second) c.fail(field, "appears twice");
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->u64 == 0 || a->u64 > kMaxAlignment || (a->u64 & (a->u64 - 1)) != 0) {
      throw GgufError(path_ + ": metadata 'general.alignment' must be a power of two up to " +
                      std::to_string(kMaxAlignment));
    }
    alignment_ = a->u64;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    std::string field = "tensor #" + std::to_string(i);
    t.name = c.read_string(field + " name");
    field = "tensor '" + t.name + "'";
    t.n_dims = c.read<uint32_t>(field + " dimension count");
    if (t.n_dims == 0 || t.n_dims > 4)
      c.fail(field, "has " + std::to_string(t.n_dims) + " dimensions (1 to 4 allowed)");
    int64_t n_el = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      uint64_t ne = c.read<uint64_t>(field + " dimension " + std::to_string(d));
      if (ne == 0 || ne > uint64_t(kMaxDim))
        c.fail(field, "has dimension " + std::to_string(d) + " = " + std::to_string(ne));
      if (int64_t(ne) > kMaxDim / n_el) c.fail(field, "has too many elements");
      t.ne[d] = int64_t(ne);
      n_el *= int64_t(ne);
    }
    uint32_t type = c.read<uint32_t>(field + " type");
    const TypeInfo* info = type_info(type);
    if (!info) c.fail(field, "has unknown type " + std::to_string(type));
    t.type = GgmlType(type);
    if (t.ne[0] % info->block_size != 0) {
      c.fail(field, "row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                        info->name + " block size " + std::to_string(info->block_size));
    }
    t.offset = c.read<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0)
      c.fail(field, "offset " + std::to_string(t.offset) + " is not aligned to " +
                        std::to_string(alignment_));
    t.n_bytes = uint64_t(t.ne[0] / info->block_size) * info->block_bytes * uint64_t(t.n_rows());
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) c.fail(field, "appears twice");
    tensors_.push_back(std::move(t));
  }

  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_offset_ > size_) {
    if (n_tensors > 0) throw GgufError(path_ + ": data section starts past the end of the file");
    data_offset_ = size_;
  }
  uint64_t data_size = size_ - data_offset_;

  std::vector<const GgufTensor*> by_offset;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      throw GgufError(path_ + ": tensor '" + t.name + "' data (offset " + std::to_string(t.offset) +
                      ", " + std::to_string(t.n_bytes) +
                      " bytes) runs past the end of the file (data section holds " +
                      std::to_string(data_size) + " bytes)");
    }
    t.data = map_ + data_offset_ + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor* prev = by_offset[i - 1];
    if (prev->offset + prev->n_bytes > by_offset[i]->offset) {
      throw GgufError(path_ + ": tensor '" + by_offset[i]->name + "' data overlaps tensor '" +
                      prev->name + "'");
    }
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const GgufValue& v,
                             const char* wanted) {
  throw GgufError(path + ": metadata '" + key + "' is " + gguf_value_type_name(v.type) +
                  ", expected " + wanted);
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufValueType::STRING) wrong_type(path_, key, *v, "string");
  return v->str;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
  if (v->i64 < 0) throw GgufError(path_ + ": metadata '" + key + "' is negative");
  return v->u64;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (v->is_float()) return v->f64;
  if (v->is_integer()) return double(v->i64);
  wrong_type(path_, key, *v, "a number");
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufValueType::BOOL) wrong_type(path_, key, *v, "bool");
  return v->u64 != 0;
}

std::string GgufFile::get_string(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}
uint64_t GgufFile::get_uint(const std::string& key, uint64_t def) const {
  return has(key) ? get_uint(key) : def;
}
double GgufFile::get_float(const std::string& key, double def) const {
  return has(key) ? get_float(key) : def;
}
bool GgufFile::get_bool(const std::string& key, bool def) const {
  return has(key) ? get_bool(key) : def;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING) {
    wrong_type(path_, key, *v, "array of strings");
  }
  std::vector<std::string> out;
  out.reserve(v->elems.size());
  for (const GgufValue& e : v->elems) out.push_back(e.str);
  return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufValueType::ARRAY) wrong_type(path_, key, *v, "array of numbers");
  std::vector<double> out;
  out.reserve(v->elems.size());
  for (const GgufValue& e : v->elems) {
    if (e.is_float())
      out.push_back(e.f64);
    else if (e.is_integer())
      out.push_back(double(e.i64));
    else
      wrong_type(path_, key, *v, "array of numbers");
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
  if (v->type != GgufValueType::ARRAY) wrong_type(path_, key, *v, "array of integers");
  std::vector<int64_t> out;
  out.reserve(v->elems.size());
  for (const GgufValue& e : v->elems) {
    if (!e.is_integer()) wrong_type(path_, key, *v, "array of integers");
    out.push_back(e.i64);
  }
  return out;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) throw GgufError(path_ + ": tensor '" + name + "' is missing");
  return *t;
}

std::string GgufFile::read_bytes(uint64_t offset, uint64_t size) const {
  if (offset > size_ || size > size_ - offset) {
    throw GgufError(path_ + ": bytes " + std::to_string(offset) + "+" + std::to_string(size) +
                    " are outside the file of " + std::to_string(size_) + " bytes");
  }
  return std::string(reinterpret_cast<const char*>(map_) + offset, size);
}

std::string GgufFile::digest() const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (uint64_t i = 0; i < data_offset_; ++i) h = (h ^ map_[i]) * 1099511628211ull;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llx-%016llx", (unsigned long long)size_, (unsigned long long)h);
  return buf;
}

namespace {
// Page-aligned [begin, end) covering a tensor's bytes. Releasing may drop a page shared with a
// neighbour too; file-backed pages are simply read again from the file when next touched.
void page_range(const uint8_t* data, uint64_t n, uintptr_t& begin, uintptr_t& end) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  end = (reinterpret_cast<uintptr_t>(data) + n + page - 1) & ~(page - 1);
}
}  // namespace

void GgufFile::prefetch(const GgufTensor& t) const {
  if (t.n_bytes == 0) return;
  uintptr_t b, e;
  page_range(t.data, t.n_bytes, b, e);
  ::madvise(reinterpret_cast<void*>(b), e - b, MADV_WILLNEED);
  // Touch one byte per page so the pages are resident now, not on the first token.
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  volatile uint8_t sink = 0;
  for (uintptr_t p = reinterpret_cast<uintptr_t>(t.data);
       p < reinterpret_cast<uintptr_t>(t.data) + t.n_bytes; p += page) {
    sink = sink + *reinterpret_cast<const uint8_t*>(p);
  }
  (void)sink;
}

void GgufFile::release(const GgufTensor& t) const {
  if (t.n_bytes == 0) return;
  uintptr_t b, e;
  page_range(t.data, t.n_bytes, b, e);
  ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

}  // namespace lb
