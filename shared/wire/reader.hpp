#pragma once
// Internal to shared/wire: a structural pre-check of raw msgpack bytes (so no declared length can
// make the unpacker allocate more than the message justifies) and typed, range-checked accessors
// over unpacked msgpack objects whose WireError names the message type and field, e.g.
// "wire: step.seqs[2].n: must be at least 1".
#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "wire/messages.hpp"

namespace lb::wire {

struct Envelope::Body {
  msgpack::object_handle handle;
};

namespace detail {

// Walks [data, data + size) without allocating per declared length and throws WireError unless
// it holds exactly one msgpack value within limits: every str/bin/ext fits in the bytes left and
// its limit, every array/map declares no more elements than bytes remain (each element takes at
// least one byte) nor than max_array, nesting stays within max_depth, the value count within
// max_objects, and no reserved byte (0xc1) or trailing byte appears.
void check_structure(const unsigned char* data, size_t size, const Limits& limits);

// Where a value sits in a message, built on the stack and rendered only for an error: the root
// holds the message type, children a map key or an array index.
struct Path {
  const Path* parent = nullptr;
  const char* key = nullptr;  // nullptr: an array element
  size_t index = 0;
  Path field(const char* k) const { return Path{this, k, 0}; }
  Path at(size_t i) const { return Path{this, nullptr, i}; }
  std::string str() const;
};

[[noreturn]] void fail(const Path& p, const std::string& what);
const char* type_name(const msgpack::object& o);

uint64_t as_u64(const msgpack::object& o, const Path& p,
                uint64_t max = std::numeric_limits<uint64_t>::max());
int64_t as_i64(const msgpack::object& o, const Path& p,
               int64_t min = std::numeric_limits<int64_t>::min(),
               int64_t max = std::numeric_limits<int64_t>::max());
// Integers are accepted as floats too. NaN and +inf are always rejected, -inf only allowed when
// asked (log-probabilities); as_f32 also rejects finite values beyond the float range.
double as_f64(const msgpack::object& o, const Path& p, bool allow_neg_inf = false);
float as_f32(const msgpack::object& o, const Path& p, bool allow_neg_inf = false);
bool as_bool(const msgpack::object& o, const Path& p);
std::string as_str(const msgpack::object& o, const Path& p);
std::string as_bin(const msgpack::object& o, const Path& p);
const msgpack::object_array& as_array(const msgpack::object& o, const Path& p);
int32_t as_token(const msgpack::object& o, const Path& p);  // 0 .. INT32_MAX
DType as_dtype(const msgpack::object& o, const Path& p);

// A msgpack map read by key. Keys that are not strings, and keys nobody asks for, are ignored
// (forward compatibility); a key that occurs twice is rejected when asked for.
class Map {
 public:
  // p must outlive the Map (it is copied, but its parent chain is referenced).
  Map(const msgpack::object& o, const Path& p);

  const Path& path() const { return path_; }
  const msgpack::object* find(const char* key) const;  // nullptr when absent
  const msgpack::object& get(const char* key) const;   // throws when absent

  uint64_t u64(const char* k, uint64_t max = std::numeric_limits<uint64_t>::max()) const {
    return as_u64(get(k), path_.field(k), max);
  }
  uint32_t u32(const char* k) const {
    return static_cast<uint32_t>(u64(k, std::numeric_limits<uint32_t>::max()));
  }
  int64_t i64(const char* k, int64_t min = std::numeric_limits<int64_t>::min(),
              int64_t max = std::numeric_limits<int64_t>::max()) const {
    return as_i64(get(k), path_.field(k), min, max);
  }
  int32_t i32(const char* k, int32_t min = std::numeric_limits<int32_t>::min(),
              int32_t max = std::numeric_limits<int32_t>::max()) const {
    return static_cast<int32_t>(i64(k, min, max));
  }
  double f64(const char* k, bool allow_neg_inf = false) const {
    return as_f64(get(k), path_.field(k), allow_neg_inf);
  }
  float f32(const char* k, bool allow_neg_inf = false) const {
    return as_f32(get(k), path_.field(k), allow_neg_inf);
  }
  bool boolean(const char* k) const { return as_bool(get(k), path_.field(k)); }
  std::string str(const char* k) const { return as_str(get(k), path_.field(k)); }
  std::string bin(const char* k) const { return as_bin(get(k), path_.field(k)); }
  DType dtype(const char* k) const { return as_dtype(get(k), path_.field(k)); }
  std::vector<int32_t> tokens(const char* k) const;    // array of token ids
  std::vector<uint64_t> u64s(const char* k) const;     // array of unsigned integers
  std::vector<std::string> strs(const char* k) const;  // array of strings

 private:
  const msgpack::object_map* map_;
  Path path_;
};

}  // namespace detail
}  // namespace lb::wire
