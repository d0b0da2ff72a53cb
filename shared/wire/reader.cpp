#include "wire/reader.hpp"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace lb::wire::detail {

namespace {

[[noreturn]] void malformed(const std::string& what) {
  throw WireError("wire: malformed message: " + what);
}

}  // namespace

void check_structure(const unsigned char* p, size_t size, const Limits& lim) {
  size_t pos = 0;
  // Values still expected, across all open containers; each takes at least one byte, so this may
  // never exceed the bytes left. Keeps the unpacker's allocations proportional to the input.
  uint64_t outstanding = 1;
  uint64_t objects = 0;
  std::vector<uint64_t> open;  // values left in each open container, innermost last
  open.reserve(lim.max_depth < 64 ? lim.max_depth + 1 : 65);
  open.push_back(1);  // the top level holds one value

  const auto left = [&]() -> size_t { return size - pos; };
  const auto need = [&](uint64_t n, const char* what) {
    if (n > left()) {
      malformed(std::string(what) + " at byte " + std::to_string(pos) + " needs " +
                std::to_string(n) + " bytes but only " + std::to_string(left()) + " remain");
    }
  };
  const auto read_be = [&](size_t n) -> uint64_t {
    need(n, "a length or value");
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | p[pos + i];
    pos += n;
    return v;
  };
  const auto skip_payload = [&](uint64_t n, size_t limit, const char* what) {
    if (n > limit) {
      malformed(std::string(what) + " of " + std::to_string(n) + " bytes exceeds the limit of " +
                std::to_string(limit));
    }
    need(n, what);
    pos += static_cast<size_t>(n);
  };
  const auto open_container = [&](uint64_t n, bool is_map) {
    const char* what = is_map ? "map" : "array";
    if (n > lim.max_array) {
      malformed(std::string(what) + " of " + std::to_string(n) + " entries exceeds the limit of " +
                std::to_string(lim.max_array));
    }
    if (open.size() > lim.max_depth) {
      malformed("nesting deeper than " + std::to_string(lim.max_depth) + " levels");
    }
    const uint64_t elems = is_map ? 2 * n : n;
    outstanding += elems;
    if (outstanding > left()) {
      malformed(std::string(what) + " at byte " + std::to_string(pos) + " declares " +
                std::to_string(n) + " entries but only " + std::to_string(left()) +
                " bytes remain");
    }
    open.push_back(elems);
  };

  while (!open.empty()) {
    if (open.back() == 0) {
      open.pop_back();
      continue;
    }
    --open.back();
    --outstanding;
    if (pos >= size) malformed("truncated after " + std::to_string(size) + " bytes");
    if (++objects > lim.max_objects) {
      malformed("more than " + std::to_string(lim.max_objects) + " values");
    }
    const unsigned b = p[pos++];
    if (b <= 0x7f || b >= 0xe0) continue;  // positive / negative fixint
    if (b <= 0x8f) {
      open_container(b & 0x0fu, true);
      continue;
    }
    if (b <= 0x9f) {
      open_container(b & 0x0fu, false);
      continue;
    }
    if (b <= 0xbf) {
      skip_payload(b & 0x1fu, lim.max_string, "str");
      continue;
    }
    switch (b) {
      case 0xc0:  // nil
      case 0xc2:  // false
      case 0xc3:  // true
        break;
      case 0xc1:
        malformed("reserved byte 0xc1 at byte " + std::to_string(pos - 1));
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const uint64_t n = read_be(size_t{1} << (b - 0xc4));
        skip_payload(n, lim.max_message_bytes, "bin");
        break;
      }
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const uint64_t n = read_be(size_t{1} << (b - 0xc7));
        need(1, "ext type");
        ++pos;
        skip_payload(n, lim.max_string, "ext");
        break;
      }
      case 0xca:
        skip_payload(4, 4, "float32");
        break;
      case 0xcb:
        skip_payload(8, 8, "float64");
        break;
      case 0xcc:
      case 0xcd:
      case 0xce:
      case 0xcf:
        skip_payload(size_t{1} << (b - 0xcc), 8, "uint");
        break;
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3:
        skip_payload(size_t{1} << (b - 0xd0), 8, "int");
        break;
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        skip_payload(1 + (size_t{1} << (b - 0xd4)), 17, "fixext");
        break;
      case 0xd9:
      case 0xda:
      case 0xdb: {
        const uint64_t n = read_be(size_t{1} << (b - 0xd9));
        skip_payload(n, lim.max_string, "str");
        break;
      }
      case 0xdc:
      case 0xdd:
        open_container(read_be(b == 0xdc ? 2 : 4), false);
        break;
      case 0xde:
      case 0xdf:
        open_container(read_be(b == 0xde ? 2 : 4), true);
        break;
      default:
        malformed("unexpected byte");  // unreachable: every byte value is covered
    }
  }
  if (pos != size) {
    malformed(std::to_string(size - pos) + " trailing bytes after the message");
  }
}

std::string Path::str() const {
  if (!parent) return key ? key : "";
  std::string s = parent->str();
  if (key) {
    s += '.';
    s += key;
  } else {
    s += '[' + std::to_string(index) + ']';
  }
  return s;
}

void fail(const Path& p, const std::string& what) {
  throw WireError("wire: " + p.str() + ": " + what);
}

const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
      return "unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER:
      return "negative integer";
    case msgpack::type::FLOAT32:
      return "float32";
    case msgpack::type::FLOAT64:
      return "float64";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

namespace {

[[noreturn]] void wrong_type(const msgpack::object& o, const Path& p, const char* expected) {
  fail(p, std::string("expected ") + expected + ", got " + type_name(o));
}

}  // namespace

uint64_t as_u64(const msgpack::object& o, const Path& p, uint64_t max) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    fail(p,
         "negative value " + std::to_string(o.via.i64) + " where an unsigned integer is expected");
  }
  if (o.type != msgpack::type::POSITIVE_INTEGER) wrong_type(o, p, "an unsigned integer");
  if (o.via.u64 > max) {
    fail(p, "value " + std::to_string(o.via.u64) + " out of range (maximum " + std::to_string(max) +
                ")");
  }
  return o.via.u64;
}

int64_t as_i64(const msgpack::object& o, const Path& p, int64_t min, int64_t max) {
  int64_t v;
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(max)) {
      fail(p, "value " + std::to_string(o.via.u64) + " out of range (" + std::to_string(min) +
                  " .. " + std::to_string(max) + ")");
    }
    v = static_cast<int64_t>(o.via.u64);
  } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    v = o.via.i64;
  } else {
    wrong_type(o, p, "an integer");
  }
  if (v < min || v > max) {
    fail(p, "value " + std::to_string(v) + " out of range (" + std::to_string(min) + " .. " +
                std::to_string(max) + ")");
  }
  return v;
}

double as_f64(const msgpack::object& o, const Path& p, bool allow_neg_inf) {
  double v;
  switch (o.type) {
    case msgpack::type::POSITIVE_INTEGER:
      v = static_cast<double>(o.via.u64);
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      v = static_cast<double>(o.via.i64);
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      v = o.via.f64;
      break;
    default:
      wrong_type(o, p, "a number");
  }
  if (std::isnan(v)) fail(p, "NaN is not allowed");
  if (std::isinf(v) && (v > 0 || !allow_neg_inf)) fail(p, "infinity is not allowed");
  return v;
}

float as_f32(const msgpack::object& o, const Path& p, bool allow_neg_inf) {
  const double v = as_f64(o, p, allow_neg_inf);
  if (std::isfinite(v) && std::fabs(v) > static_cast<double>(FLT_MAX)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "value %g out of the float range", v);
    fail(p, buf);
  }
  return static_cast<float>(v);
}

bool as_bool(const msgpack::object& o, const Path& p) {
  if (o.type != msgpack::type::BOOLEAN) wrong_type(o, p, "a bool");
  return o.via.boolean;
}

std::string as_str(const msgpack::object& o, const Path& p) {
  if (o.type != msgpack::type::STR) wrong_type(o, p, "a str");
  return o.via.str.size ? std::string(o.via.str.ptr, o.via.str.size) : std::string();
}

std::string as_bin(const msgpack::object& o, const Path& p) {
  if (o.type != msgpack::type::BIN) wrong_type(o, p, "a bin");
  return o.via.bin.size ? std::string(o.via.bin.ptr, o.via.bin.size) : std::string();
}

const msgpack::object_array& as_array(const msgpack::object& o, const Path& p) {
  if (o.type != msgpack::type::ARRAY) wrong_type(o, p, "an array");
  return o.via.array;
}

int32_t as_token(const msgpack::object& o, const Path& p) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    fail(p, "negative token id " + std::to_string(o.via.i64));
  }
  return static_cast<int32_t>(as_u64(o, p, static_cast<uint64_t>(INT32_MAX)));
}

DType as_dtype(const msgpack::object& o, const Path& p) {
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 > 1) {
    fail(p, "unknown dtype " + std::to_string(o.via.u64) + " (0 = f32, 1 = f16)");
  }
  return static_cast<DType>(as_u64(o, p, 1));
}

Map::Map(const msgpack::object& o, const Path& p) : path_(p) {
  if (o.type != msgpack::type::MAP) wrong_type(o, p, "a map");
  map_ = &o.via.map;
}

const msgpack::object* Map::find(const char* key) const {
  const size_t len = std::strlen(key);
  const msgpack::object* found = nullptr;
  for (uint32_t i = 0; i < map_->size; ++i) {
    const msgpack::object& k = map_->ptr[i].key;
    if (k.type != msgpack::type::STR || k.via.str.size != len) continue;
    if (len && std::memcmp(k.via.str.ptr, key, len) != 0) continue;
    if (found) fail(path_.field(key), "duplicate key");
    found = &map_->ptr[i].val;
  }
  return found;
}

const msgpack::object& Map::get(const char* key) const {
  const msgpack::object* o = find(key);
  if (!o) fail(path_.field(key), "missing");
  return *o;
}

namespace {

// An array's elements, each read by `read` with its own path (so errors name the element).
template <typename T, typename Read>
std::vector<T> elements(const msgpack::object& o, const Path& p, Read read) {
  const msgpack::object_array& a = as_array(o, p);
  std::vector<T> out;
  out.reserve(a.size);
  for (uint32_t i = 0; i < a.size; ++i) out.push_back(read(a.ptr[i], p.at(i)));
  return out;
}

}  // namespace

std::vector<int32_t> Map::tokens(const char* k) const {
  return elements<int32_t>(get(k), path_.field(k), as_token);
}

std::vector<uint64_t> Map::u64s(const char* k) const {
  return elements<uint64_t>(get(k), path_.field(k),
                            [](const msgpack::object& o, const Path& p) { return as_u64(o, p); });
}

std::vector<std::string> Map::strs(const char* k) const {
  return elements<std::string>(get(k), path_.field(k), as_str);
}

}  // namespace lb::wire::detail
