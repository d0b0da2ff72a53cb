// GGUF writer -> reader round trips, the reader's typed getters, a corrupt-file corpus generated
// from a valid file (every malformed file must raise lb::GgufError naming the field, never crash
// or raise anything else), and the real models in ../shared.
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "gguf/gguf_file.hpp"
#include "gguf/gguf_writer.hpp"
#include "test_support.hpp"

using namespace lb;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  ASSERT_TRUE(f.good()) << path;
}

// Offset of the only occurrence of needle in b (fails the test if absent or repeated).
size_t find_unique(const Bytes& b, const std::string& needle) {
  size_t found = std::string::npos;
  for (size_t i = 0; i + needle.size() <= b.size(); ++i) {
    if (std::memcmp(b.data() + i, needle.data(), needle.size()) == 0) {
      EXPECT_EQ(found, std::string::npos) << "'" << needle << "' occurs twice";
      found = i;
    }
  }
  EXPECT_NE(found, std::string::npos) << "'" << needle << "' not found";
  return found;
}

template <typename T>
void patch(Bytes& b, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), b.size());
  std::memcpy(b.data() + at, &v, sizeof(T));
}

template <typename T>
T peek(const Bytes& b, size_t at) {
  T v{};
  std::memcpy(&v, b.data() + at, sizeof(T));
  return v;
}

// Parses path: returns "" when it is accepted, the GgufError message when rejected; any other
// exception fails the test.
std::string parse_error(const std::string& path) {
  try {
    GgufFile f(path);
    return "";
  } catch (const GgufError& e) {
    std::string msg = e.what();
    EXPECT_FALSE(msg.empty());
    return msg.empty() ? "(empty GgufError message)" : msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a GgufError: " << e.what();
    return std::string("wrong exception: ") + e.what();
  } catch (...) {
    ADD_FAILURE() << "non-standard exception";
    return "wrong exception";
  }
}

// Writes b to path and expects the reader to reject it with a message containing want.
void expect_rejected(const std::string& path, const Bytes& b, const std::string& want,
                     const std::string& what) {
  write_bytes(path, b);
  const std::string msg = parse_error(path);
  EXPECT_NE(msg, "") << what << ": accepted";
  EXPECT_NE(msg.find(want), std::string::npos)
      << what << ": message '" << msg << "' lacks '" << want << "'";
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = uint8_t(seed + i * 37);
  return b;
}

// The base of the corrupt corpus: a bit of every kind of field, three tensors, the last one
// ending exactly at the end of the file (so every truncation loses needed bytes).
GgufWriter base_writer() {
  GgufWriter w;
  w.set_u32("test.u32", 7);
  w.set_string_array("test.list", {"ab", "cd"});
  w.set_f32_array("test.f32s", {1, 2, 3});
  w.set("test.nested",
        gguf_array(GgufValueType::ARRAY,
                   {gguf_array(GgufValueType::INT32, {gguf_int(GgufValueType::INT32, 1),
                                                      gguf_int(GgufValueType::INT32, 2)}),
                    gguf_array(GgufValueType::INT32, {gguf_int(GgufValueType::INT32, 3)})}));
  w.set_bool("test.bool", true);
  w.set_alignment(32);
  w.set_string("test.str", "hello");  // last, so a cut inside it leaves room for the counts
  w.add_tensor("w.f32", {8, 2}, GgmlType::F32, pattern(64, 1));
  w.add_tensor("w.q8", {32, 2}, GgmlType::Q8_0, pattern(68, 2));
  w.add_tensor("w.f16", {16}, GgmlType::F16, pattern(32, 3));
  return w;
}

struct TensorField {
  size_t n_dims, dim0, type, offset;
};
// Byte offsets of a tensor info's fields, found by its (unique) name.
TensorField tensor_field(const Bytes& b, const std::string& name) {
  const size_t p = find_unique(b, name) + name.size();
  const uint32_t n_dims = peek<uint32_t>(b, p);
  return {p, p + 4, p + 4 + 8 * n_dims, p + 4 + 8 * n_dims + 4};
}

// Byte offset of a metadata value (after the key and its type).
size_t value_at(const Bytes& b, const std::string& key) {
  return find_unique(b, key) + key.size() + 4;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Round trips

TEST(GgufWriter, EveryValueTypeRoundTrips) {
  lbtest::TempDir dir("gguf");
  using T = GgufValueType;
  GgufWriter w;
  w.set("v.u8", gguf_uint(T::UINT8, 255));
  w.set("v.i8", gguf_int(T::INT8, -128));
  w.set("v.u16", gguf_uint(T::UINT16, 65535));
  w.set("v.i16", gguf_int(T::INT16, -32768));
  w.set_u32("v.u32", 0xffffffffu);
  w.set_i32("v.i32", std::numeric_limits<int32_t>::min());
  w.set_f32("v.f32", 0.1f);
  w.set_bool("v.bool_t", true);
  w.set_bool("v.bool_f", false);
  w.set_string("v.str", std::string("h\xc3\xa9llo\0world", 12));
  w.set_string("v.empty", "");
  w.set_u64("v.u64", std::numeric_limits<uint64_t>::max());
  w.set("v.i64", gguf_int(T::INT64, std::numeric_limits<int64_t>::min()));
  w.set("v.f64", gguf_float(T::FLOAT64, 0.1));
  w.set_f32("v.inf", std::numeric_limits<float>::infinity());
  w.set_string_array("a.str", {"a", "", "\xe2\x96\x81the"});
  w.set_f32_array("a.f32", {1.5f, -2.25f});
  w.set_i32_array("a.i32", {-1, 0, 2147483647});
  w.set_i32_array("a.empty", {});
  w.set("a.u8", gguf_array(T::UINT8, {gguf_uint(T::UINT8, 0), gguf_uint(T::UINT8, 200)}));
  w.set("a.i64", gguf_array(T::INT64, {gguf_int(T::INT64, -5)}));
  w.set("a.f64", gguf_array(T::FLOAT64, {gguf_float(T::FLOAT64, 1e300)}));
  w.set("a.bool", gguf_array(T::BOOL, {gguf_bool(true), gguf_bool(false)}));
  w.set("a.u16", gguf_array(T::UINT16, {gguf_uint(T::UINT16, 7)}));
  w.set("a.i16", gguf_array(T::INT16, {gguf_int(T::INT16, -7)}));
  w.set("a.i8", gguf_array(T::INT8, {gguf_int(T::INT8, -1)}));
  w.set("a.u32", gguf_array(T::UINT32, {gguf_uint(T::UINT32, 9)}));
  w.set("a.u64", gguf_array(T::UINT64, {gguf_uint(T::UINT64, 1ull << 63)}));
  // Nested: array of arrays of strings, and three levels of arrays.
  w.set("n.strs",
        gguf_array(T::ARRAY, {gguf_array(T::STRING, {gguf_string("x")}), gguf_array(T::STRING, {}),
                              gguf_array(T::STRING, {gguf_string("y"), gguf_string("z")})}));
  w.set(
      "n.deep",
      gguf_array(T::ARRAY,
                 {gguf_array(T::ARRAY, {gguf_array(T::FLOAT32, {gguf_float(T::FLOAT32, 3.0)})})}));
  w.set_u32("v.replaced", 1);
  w.set_u32("v.replaced", 2);  // replaces, does not duplicate
  const std::string path = dir.file("values.gguf");
  w.write(path);

  GgufFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 31u);
  EXPECT_EQ(f.find("v.u8")->type, T::UINT8);
  EXPECT_EQ(f.get_uint("v.u8"), 255u);
  EXPECT_EQ(f.find("v.i8")->type, T::INT8);
  EXPECT_EQ(f.find("v.i8")->i64, -128);
  EXPECT_EQ(f.get_uint("v.u16"), 65535u);
  EXPECT_EQ(f.find("v.i16")->i64, -32768);
  EXPECT_EQ(f.find("v.u32")->type, T::UINT32);
  EXPECT_EQ(f.get_uint("v.u32"), 0xffffffffu);
  EXPECT_EQ(f.find("v.i32")->type, T::INT32);
  EXPECT_EQ(f.find("v.i32")->i64, std::numeric_limits<int32_t>::min());
  EXPECT_EQ(f.find("v.f32")->type, T::FLOAT32);
  EXPECT_EQ(f.get_float("v.f32"), double(0.1f));
  EXPECT_TRUE(f.get_bool("v.bool_t"));
  EXPECT_FALSE(f.get_bool("v.bool_f"));
  EXPECT_EQ(f.get_string("v.str"), std::string("h\xc3\xa9llo\0world", 12));
  EXPECT_EQ(f.get_string("v.empty"), "");
  EXPECT_EQ(f.find("v.u64")->type, T::UINT64);
  EXPECT_EQ(f.get_uint("v.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f.find("v.i64")->i64, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.find("v.f64")->type, T::FLOAT64);
  EXPECT_EQ(f.get_float("v.f64"), 0.1);
  EXPECT_TRUE(std::isinf(f.get_float("v.inf")));
  EXPECT_EQ(f.get_uint("v.replaced"), 2u);

  EXPECT_EQ(f.get_string_array("a.str"), (std::vector<std::string>{"a", "", "\xe2\x96\x81the"}));
  EXPECT_EQ(f.find("a.f32")->elem_type, T::FLOAT32);
  EXPECT_EQ(f.get_float_array("a.f32"), (std::vector<double>{1.5, -2.25}));
  EXPECT_EQ(f.find("a.i32")->elem_type, T::INT32);
  EXPECT_EQ(f.get_int_array("a.i32"), (std::vector<int64_t>{-1, 0, 2147483647}));
  EXPECT_TRUE(f.get_int_array("a.empty").empty());
  EXPECT_EQ(f.find("a.empty")->elem_type, T::INT32);
  EXPECT_EQ(f.get_int_array("a.u8"), (std::vector<int64_t>{0, 200}));
  EXPECT_EQ(f.get_int_array("a.i64"), (std::vector<int64_t>{-5}));
  EXPECT_EQ(f.get_float_array("a.f64"), (std::vector<double>{1e300}));
  ASSERT_EQ(f.find("a.bool")->elems.size(), 2u);
  EXPECT_EQ(f.find("a.bool")->elem_type, T::BOOL);
  EXPECT_EQ(f.find("a.bool")->elems[0].u64, 1u);
  EXPECT_EQ(f.find("a.bool")->elems[1].u64, 0u);
  EXPECT_EQ(f.get_int_array("a.u16"), (std::vector<int64_t>{7}));
  EXPECT_EQ(f.get_int_array("a.i16"), (std::vector<int64_t>{-7}));
  EXPECT_EQ(f.get_int_array("a.i8"), (std::vector<int64_t>{-1}));
  EXPECT_EQ(f.get_int_array("a.u32"), (std::vector<int64_t>{9}));
  EXPECT_EQ(f.find("a.u64")->elems.at(0).u64, 1ull << 63);

  const GgufValue* n = f.find("n.strs");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->elem_type, T::ARRAY);
  ASSERT_EQ(n->elems.size(), 3u);
  EXPECT_EQ(n->elems[0].elem_type, T::STRING);
  EXPECT_EQ(n->elems[0].elems.at(0).str, "x");
  EXPECT_TRUE(n->elems[1].elems.empty());
  EXPECT_EQ(n->elems[2].elems.at(1).str, "z");
  const GgufValue* d = f.find("n.deep");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->elems.at(0).elems.at(0).elems.at(0).f64, 3.0);
  EXPECT_EQ(d->elems.at(0).elems.at(0).elem_type, T::FLOAT32);
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufWriter, RewritingWhatWasReadGivesTheSameValues) {
  // Values as the reader returns them (u64 and i64 both filled) go back through the writer.
  lbtest::TempDir dir("gguf");
  base_writer().write(dir.file("a.gguf"));
  GgufFile a(dir.file("a.gguf"));
  GgufWriter w;
  for (const auto& [key, value] : a.metadata()) w.set(key, value);
  for (const GgufTensor& t : a.tensors()) {
    w.add_tensor(t.name, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), t.type,
                 t.data, t.n_bytes);
  }
  w.write(dir.file("b.gguf"));
  GgufFile b(dir.file("b.gguf"));
  ASSERT_EQ(a.metadata().size(), b.metadata().size());
  for (const auto& [key, value] : a.metadata()) {
    const GgufValue* v = b.find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, value.type) << key;
    EXPECT_EQ(v->u64, value.u64) << key;
    EXPECT_EQ(v->i64, value.i64) << key;
    EXPECT_EQ(v->str, value.str) << key;
    EXPECT_EQ(v->elems.size(), value.elems.size()) << key;
  }
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    EXPECT_EQ(a.tensors()[i].offset, b.tensors()[i].offset);
    EXPECT_EQ(0, std::memcmp(a.tensors()[i].data, b.tensors()[i].data, a.tensors()[i].n_bytes));
  }
  // The same writer content gives the same bytes.
  base_writer().write(dir.file("c.gguf"));
  EXPECT_EQ(read_bytes(dir.file("a.gguf")), read_bytes(dir.file("c.gguf")));
}

TEST(GgufWriter, VersionsTwoAndThree) {
  lbtest::TempDir dir("gguf");
  for (uint32_t version : {2u, 3u}) {
    GgufWriter w(version);
    w.set_string("general.architecture", "llama");
    w.add_tensor("x", {4}, GgmlType::F32, pattern(16, 9));
    const std::string path = dir.file("v" + std::to_string(version) + ".gguf");
    w.write(path);
    Bytes b = read_bytes(path);
    EXPECT_EQ(peek<uint32_t>(b, 0), 0x46554747u);
    EXPECT_EQ(peek<uint32_t>(b, 4), version);
    GgufFile f(path);
    EXPECT_EQ(f.version(), version);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(0, std::memcmp(f.tensor("x").data, pattern(16, 9).data(), 16));
  }
  EXPECT_THROW(GgufWriter(1), Error);
  EXPECT_THROW(GgufWriter(4), Error);
}

TEST(GgufWriter, AlignmentAndTensorData) {
  lbtest::TempDir dir("gguf");
  struct Spec {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t bytes;
  };
  const std::vector<Spec> specs = {
      {"a.f32", {3}, GgmlType::F32, 12},
      {"b.f16", {5, 3}, GgmlType::F16, 30},
      {"c.q8_0", {64, 3, 2}, GgmlType::Q8_0, 2 * 34 * 6},
      {"d.q4_0", {32, 1, 1, 2}, GgmlType::Q4_0, 18 * 2},
      {"e.q4_k", {512, 3}, GgmlType::Q4_K, 144 * 2 * 3},
      {"f.q6_k", {256, 2}, GgmlType::Q6_K, 210 * 2},
      {"g.f32", {1, 1, 1, 1}, GgmlType::F32, 4},
  };
  for (uint32_t align : {0u, 1u, 8u, 32u, 64u, 4096u}) {
    GgufWriter w;
    if (align) w.set_alignment(align);
    for (size_t i = 0; i < specs.size(); ++i) {
      const Spec& s = specs[i];
      EXPECT_EQ(GgufWriter::tensor_bytes(s.ne, s.type), s.bytes) << s.name;
      if (i % 2 == 0) {
        w.add_tensor(s.name, s.ne, s.type, pattern(s.bytes, uint8_t(i)));
      } else {  // streamed in uneven pieces
        w.add_tensor(s.name, s.ne, s.type, [s, i](GgufDataSink& out) {
          const Bytes b = pattern(s.bytes, uint8_t(i));
          size_t at = 0;
          for (size_t step = 1; at < b.size(); step = step * 2 + 1) {
            const size_t n = std::min(step, b.size() - at);
            out.write(b.data() + at, n);
            at += n;
          }
        });
      }
    }
    EXPECT_EQ(w.tensor_count(), specs.size());
    const std::string path = dir.file("align" + std::to_string(align) + ".gguf");
    w.write(path);
    GgufFile f(path);
    const uint64_t a = align ? align : 32;
    EXPECT_EQ(f.alignment(), a);
    EXPECT_EQ(f.data_offset() % a, 0u);
    ASSERT_EQ(f.tensors().size(), specs.size());
    uint64_t expect_offset = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      const Spec& s = specs[i];
      const GgufTensor& t = f.tensors()[i];
      EXPECT_EQ(t.name, s.name);
      EXPECT_EQ(t.n_dims, s.ne.size());
      for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t.ne[d], d < s.ne.size() ? s.ne[d] : 1);
      EXPECT_EQ(t.type, s.type);
      EXPECT_EQ(t.n_bytes, s.bytes);
      EXPECT_EQ(t.offset, expect_offset);
      EXPECT_EQ(t.offset % a, 0u);
      EXPECT_EQ(t.data, f.tensor(s.name).data);
      const Bytes file = read_bytes(path);
      EXPECT_EQ(0, std::memcmp(t.data, pattern(s.bytes, uint8_t(i)).data(), s.bytes)) << s.name;
      EXPECT_EQ(0, std::memcmp(file.data() + f.data_offset() + t.offset, t.data, s.bytes));
      expect_offset += (s.bytes + a - 1) / a * a;
    }
    EXPECT_EQ(f.file_size(), f.data_offset() + expect_offset);
  }
}

TEST(GgufWriter, RejectsBadInput) {
  lbtest::TempDir dir("gguf");
  using T = GgufValueType;
  EXPECT_THROW(gguf_uint(T::UINT8, 256), Error);
  EXPECT_THROW(gguf_uint(T::UINT32, 1ull << 32), Error);
  EXPECT_THROW(gguf_uint(T::INT32, 1), Error);
  EXPECT_THROW(gguf_int(T::INT8, 128), Error);
  EXPECT_THROW(gguf_int(T::INT16, -40000), Error);
  EXPECT_THROW(gguf_int(T::UINT64, 1), Error);
  EXPECT_THROW(gguf_float(T::INT32, 1), Error);
  EXPECT_THROW(gguf_array(T::INT32, {gguf_string("x")}), Error);
  EXPECT_THROW(gguf_array(GgufValueType(13), {}), Error);

  GgufWriter w;
  EXPECT_THROW(w.set("", gguf_bool(true)), Error);
  GgufValue bad;
  bad.type = GgufValueType(99);
  EXPECT_THROW(w.set("k", bad), Error);
  GgufValue wide = gguf_uint(T::UINT8, 1);
  wide.u64 = 1000;  // hand-made value out of its type's range
  EXPECT_THROW(w.set("k", wide), Error);
  for (uint32_t a : {0u, 3u, 48u, 1u << 17}) EXPECT_THROW(w.set_alignment(a), Error) << a;
  EXPECT_THROW(w.set_string("general.alignment", "32"), Error);

  EXPECT_THROW(w.add_tensor("x", {}, GgmlType::F32, Bytes()), Error);
  EXPECT_THROW(w.add_tensor("x", {1, 1, 1, 1, 1}, GgmlType::F32, Bytes(4)), Error);
  EXPECT_THROW(w.add_tensor("x", {0}, GgmlType::F32, Bytes()), Error);
  EXPECT_THROW(w.add_tensor("x", {-4}, GgmlType::F32, Bytes()), Error);
  EXPECT_THROW(w.add_tensor("x", {int64_t(1) << 40, 2}, GgmlType::F32, Bytes()), Error);
  EXPECT_THROW(w.add_tensor("x", {4}, GgmlType::F32, Bytes(15)), Error);
  EXPECT_THROW(w.add_tensor("x", {4}, GgmlType(4), Bytes(16)), Error);
  try {
    w.add_tensor("k.x", {100}, GgmlType::Q4_K, Bytes());
    ADD_FAILURE() << "accepted a q4_K row of 100";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block size 256"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'k.x'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), {4}, GgmlType::F32, Bytes(16)), Error);
  w.add_tensor(std::string(63, 'n'), {4}, GgmlType::F32, Bytes(16));
  EXPECT_THROW(w.add_tensor(std::string(63, 'n'), {4}, GgmlType::F32, Bytes(16)), Error);
  EXPECT_THROW(w.add_tensor("y", {4}, GgmlType::F32, GgufTensorFill()), Error);

  // Callbacks that write too little or too much fail the write and leave no file behind.
  for (size_t n : {15u, 17u}) {
    GgufWriter s;
    s.add_tensor("z", {4}, GgmlType::F32, [n](GgufDataSink& out) {
      const Bytes b(n);
      out.write(b.data(), b.size());
    });
    const std::string path = dir.file("short.gguf");
    try {
      s.write(path);
      ADD_FAILURE() << "wrote a tensor with " << n << " of 16 bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'z'"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_TRUE(std::filesystem::is_empty(dir.path)) << "a temporary file was left behind";
  }
  EXPECT_THROW(GgufWriter().write(dir.file("no/such/dir/x.gguf")), Error);
}

// ------------------------------------------------------------------------------------------------
// Typed getters

TEST(GgufFile, TypedGettersNameTheKey) {
  lbtest::TempDir dir("gguf");
  GgufWriter w;
  w.set_string("s", "text");
  w.set_u32("u", 5);
  w.set_i32("neg", -3);
  w.set_f32("f", 2.5f);
  w.set_bool("b", true);
  w.set_i32_array("ints", {1, 2});
  w.set_f32_array("floats", {0.5f});
  w.set_string_array("strs", {"x"});
  w.write(dir.file("g.gguf"));
  GgufFile f(dir.file("g.gguf"));

  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const GgufError& e) {
      return e.what();
    }
    return "(no GgufError)";
  };
  auto contains = [](const std::string& s, const std::string& sub) {
    return s.find(sub) != std::string::npos;
  };
  EXPECT_TRUE(contains(message([&] { f.get_string("missing.key"); }), "'missing.key' is missing"));
  EXPECT_TRUE(contains(message([&] { f.get_string("u"); }), "'u' is uint32, expected string"));
  EXPECT_TRUE(contains(message([&] { f.get_uint("s"); }), "'s' is string, expected an integer"));
  EXPECT_TRUE(contains(message([&] { f.get_uint("neg"); }), "'neg' is negative"));
  EXPECT_TRUE(contains(message([&] { f.get_float("b"); }), "'b' is bool, expected a number"));
  EXPECT_TRUE(contains(message([&] { f.get_bool("u"); }), "'u' is uint32, expected bool"));
  EXPECT_TRUE(contains(message([&] { f.get_string_array("ints"); }), "'ints'"));
  EXPECT_TRUE(contains(message([&] { f.get_int_array("floats"); }), "'floats'"));
  EXPECT_TRUE(contains(message([&] { f.get_float_array("strs"); }), "'strs'"));
  EXPECT_TRUE(contains(message([&] { f.get_int_array("s"); }), "'s'"));
  EXPECT_TRUE(contains(message([&] { f.tensor("w.missing"); }), "tensor 'w.missing' is missing"));
  EXPECT_TRUE(contains(message([&] { f.get_string("u", "def"); }), "'u'"));

  EXPECT_EQ(f.get_string("s"), "text");
  EXPECT_EQ(f.get_uint("u"), 5u);
  EXPECT_EQ(f.get_float("u"), 5.0);  // integers are numbers too
  EXPECT_EQ(f.get_float("f"), 2.5);
  EXPECT_EQ(f.get_string("nope", "def"), "def");
  EXPECT_EQ(f.get_uint("nope", 9), 9u);
  EXPECT_EQ(f.get_float("nope", 1.5), 1.5);
  EXPECT_EQ(f.get_bool("nope", true), true);
  EXPECT_EQ(f.get_uint("u", 9), 5u);
  EXPECT_EQ(f.get_float_array("ints"), (std::vector<double>{1, 2}));
  EXPECT_EQ(f.find_tensor("w.missing"), nullptr);
  EXPECT_FALSE(f.has("nope"));
  EXPECT_TRUE(f.has("s"));
}

// ------------------------------------------------------------------------------------------------
// Corrupt-file corpus

class GgufCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    base_path_ = dir_.file("base.gguf");
    base_writer().write(base_path_);
    base_ = read_bytes(base_path_);
    GgufFile f(base_path_);  // the base itself is valid
    data_offset_ = f.data_offset();
    ASSERT_EQ(f.tensors().back().offset + f.tensors().back().n_bytes + data_offset_, base_.size());
    bad_path_ = dir_.file("bad.gguf");
  }
  void rejected(const Bytes& b, const std::string& want, const std::string& what) {
    expect_rejected(bad_path_, b, want, what);
  }

  lbtest::TempDir dir_{"gguf-corrupt"};
  std::string base_path_, bad_path_;
  Bytes base_;
  uint64_t data_offset_ = 0;
};

TEST_F(GgufCorrupt, EveryTruncationIsRejected) {
  std::vector<size_t> cuts;
  for (size_t n = 0; n <= data_offset_; ++n) cuts.push_back(n);
  for (size_t n = data_offset_ + 1; n < base_.size(); n += 5) cuts.push_back(n);
  cuts.push_back(base_.size() - 1);
  for (size_t n : cuts) {
    Bytes b(base_.begin(), base_.begin() + n);
    write_bytes(bad_path_, b);
    const std::string msg = parse_error(bad_path_);
    EXPECT_NE(msg, "") << "truncated to " << n << " bytes: accepted";
    EXPECT_NE(msg.find(bad_path_), std::string::npos) << msg;
  }
  // Representative messages.
  rejected(Bytes(base_.begin(), base_.begin() + 2), "magic is truncated", "2 bytes");
  rejected(Bytes(base_.begin(), base_.begin() + 6), "version is truncated", "6 bytes");
  rejected(Bytes(base_.begin(), base_.begin() + 12), "tensor count is truncated", "12 bytes");
  rejected(Bytes(base_.begin(), base_.begin() + 20), "metadata count is truncated", "20 bytes");
  const size_t str_value = value_at(base_, "test.str");
  rejected(Bytes(base_.begin(), base_.begin() + str_value + 10), "metadata 'test.str'",
           "cut in a string");
  const TensorField tf = tensor_field(base_, "w.q8");
  rejected(Bytes(base_.begin(), base_.begin() + tf.dim0 + 3), "tensor 'w.q8' dimension 0",
           "cut in a dimension");
  rejected(Bytes(base_.begin(), base_.end() - 1), "runs past the end of the file",
           "cut in the data");
}

TEST_F(GgufCorrupt, HugeCountsAndLengths) {
  const uint64_t huge[] = {1ull << 63, ~0ull, 1ull << 40, 1ull << 32};
  for (uint64_t h : huge) {
    Bytes b = base_;
    patch<uint64_t>(b, 8, h);
    rejected(b, "tensor count", "tensor count " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, 16, h);
    rejected(b, "metadata count", "kv count " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, 24, h);  // length of the first key
    rejected(b, "metadata key #0", "key length " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, value_at(base_, "test.str"), h);
    rejected(b, "metadata 'test.str'", "string length " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, value_at(base_, "test.list") + 4, h);
    rejected(b, "metadata 'test.list'", "string array length " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, value_at(base_, "test.f32s") + 4, h);
    rejected(b, "metadata 'test.f32s'", "f32 array length " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, value_at(base_, "test.nested") + 4 + 8 + 4, h);  // inner array length
    rejected(b, "metadata 'test.nested'[0]", "nested array length " + std::to_string(h));
    b = base_;
    patch<uint64_t>(b, value_at(base_, "test.list") + 12, h);  // first element's length
    rejected(b, "metadata 'test.list'[0]", "array string length " + std::to_string(h));
    if (h > (1ull << 40)) {
      b = base_;
      patch<uint64_t>(b, tensor_field(base_, "w.f32").dim0, h);
      rejected(b, "tensor 'w.f32' has dimension 0", "dimension " + std::to_string(h));
    }
    b = base_;
    patch<uint64_t>(b, find_unique(base_, "w.f16") - 8, h);  // a tensor name's length
    rejected(b, "tensor #2 name", "tensor name length " + std::to_string(h));
  }
  // Array lengths over the reader's element limit are refused before anything is allocated.
  Bytes c = base_;
  patch<uint64_t>(c, value_at(base_, "test.f32s") + 4, (1ull << 24) + 1);
  rejected(c, "metadata 'test.f32s' has 16777217 array elements, over the limit", "array cap");
  // Counts just one too many run into the next field or the end.
  Bytes b = base_;
  patch<uint64_t>(b, 8, 4);
  EXPECT_NE(parse_error((write_bytes(bad_path_, b), bad_path_)), "");
  b = base_;
  patch<uint64_t>(b, 16, peek<uint64_t>(base_, 16) + 1);
  EXPECT_NE(parse_error((write_bytes(bad_path_, b), bad_path_)), "");
  // Dimensions: zero, past the limit, a product that overflows, dimension counts 0 and 5.
  const TensorField tf = tensor_field(base_, "w.f32");
  b = base_;
  patch<uint64_t>(b, tf.dim0, 0);
  rejected(b, "tensor 'w.f32' has dimension 0 = 0", "dimension 0");
  b = base_;
  patch<uint64_t>(b, tf.dim0 + 8, (1ull << 40) + 1);
  rejected(b, "tensor 'w.f32' has dimension 1", "dimension 2^40+1");
  b = base_;
  patch<uint64_t>(b, tf.dim0, 1ull << 31);
  patch<uint64_t>(b, tf.dim0 + 8, 1ull << 31);
  rejected(b, "tensor 'w.f32' has too many elements", "2^31 x 2^31");
  for (uint32_t nd : {0u, 5u, 0xffffffffu}) {
    b = base_;
    patch<uint32_t>(b, tf.n_dims, nd);
    rejected(b, "tensor 'w.f32' has " + std::to_string(nd) + " dimensions", "n_dims");
  }
  // A tensor whose data needs more bytes than there are (shape grown, offsets kept).
  b = base_;
  patch<uint64_t>(b, tensor_field(base_, "w.f16").dim0, 1024);
  rejected(b, "tensor 'w.f16' data", "grown tensor");
  b = base_;
  patch<uint64_t>(b, tf.dim0 + 8, 3);  // t.f32 now overlaps t.q8
  rejected(b, "overlaps", "grown into the next tensor");
}

TEST_F(GgufCorrupt, BadTypes) {
  for (uint32_t t : {13u, 100u, 0xffffffffu}) {
    Bytes b = base_;
    patch<uint32_t>(b, value_at(base_, "test.u32") - 4, t);
    rejected(b, "metadata 'test.u32' has unknown type " + std::to_string(t), "kv type");
    b = base_;
    patch<uint32_t>(b, value_at(base_, "test.f32s"), t);
    rejected(b, "metadata 'test.f32s' has unknown array element type", "elem type");
    b = base_;
    patch<uint32_t>(b, value_at(base_, "test.nested") + 12, t);
    rejected(b, "metadata 'test.nested'[0] has unknown array element type", "nested elem type");
  }
  Bytes b = base_;
  patch<uint8_t>(b, value_at(base_, "test.bool"), 2);
  rejected(b, "metadata 'test.bool' is a bool with value 2", "bool 2");
  // Value type changed to one of another size: the parse goes astray but must fail cleanly.
  for (uint32_t t = 0; t <= 12; ++t) {
    b = base_;
    patch<uint32_t>(b, value_at(base_, "test.str") - 4, t);
    write_bytes(bad_path_, b);
    parse_error(bad_path_);
  }
  // Tensor types: removed (4, 5), unknown, and a block type whose block the row does not fill.
  const TensorField tf = tensor_field(base_, "w.f32");
  for (uint32_t t : {4u, 5u, 31u, 99u, 0xffffffffu}) {
    b = base_;
    patch<uint32_t>(b, tf.type, t);
    rejected(b, "tensor 'w.f32' has unknown type " + std::to_string(t), "tensor type");
  }
  b = base_;
  patch<uint32_t>(b, tf.type, uint32_t(GgmlType::Q4_K));
  rejected(b, "tensor 'w.f32' row length 8 is not a multiple of the q4_K block size 256", "q4_K");
}

TEST_F(GgufCorrupt, BadOffsets) {
  const TensorField q8 = tensor_field(base_, "w.q8");
  const TensorField f16 = tensor_field(base_, "w.f16");
  const uint64_t q8_off = peek<uint64_t>(base_, q8.offset);
  Bytes b = base_;
  patch<uint64_t>(b, q8.offset, q8_off + 1);
  rejected(b, "tensor 'w.q8' offset " + std::to_string(q8_off + 1) + " is not aligned to 32",
           "misaligned");
  b = base_;
  patch<uint64_t>(b, f16.offset, q8_off);
  rejected(b, "overlaps", "overlapping");
  b = base_;
  patch<uint64_t>(b, q8.offset, 0);  // same offset as t.f32
  rejected(b, "overlaps", "same offset");
  b = base_;
  patch<uint64_t>(b, f16.offset, base_.size() - data_offset_ + 32);
  rejected(b, "tensor 'w.f16' data", "offset past EOF");
  for (uint64_t off : {~0ull - 31, 1ull << 63}) {
    b = base_;
    patch<uint64_t>(b, f16.offset, off);
    rejected(b, "runs past the end of the file", "huge offset " + std::to_string(off));
  }
}

TEST_F(GgufCorrupt, BadHeaderAndAlignment) {
  Bytes b = base_;
  b[3] = 'X';
  rejected(b, "magic is not GGUF", "magic");
  for (uint32_t v : {0u, 1u, 4u, 0xffffffffu}) {
    b = base_;
    patch<uint32_t>(b, 4, v);
    rejected(b, "version " + std::to_string(v) + " is not supported", "version");
  }
  b = base_;
  patch<uint32_t>(b, 4, 0x03000000u);
  rejected(b, "big-endian", "big-endian version");
  rejected(Bytes(), "magic", "empty file");

  const size_t align_at = value_at(base_, "general.alignment");
  for (uint32_t a : {0u, 3u, 48u, 1u << 17, 0xffffffffu}) {
    b = base_;
    patch<uint32_t>(b, align_at, a);
    rejected(b, "'general.alignment' must be a power of two", "alignment " + std::to_string(a));
  }
  // general.alignment of the wrong type (a float with the same size).
  b = base_;
  patch<uint32_t>(b, align_at - 4, uint32_t(GgufValueType::FLOAT32));
  rejected(b, "'general.alignment'", "float alignment");
  // A smaller valid alignment moves the data section: the old offsets then point elsewhere,
  // which may or may not be valid, but must never crash.
  for (uint32_t a : {1u, 2u, 16u, 64u, 65536u}) {
    b = base_;
    patch<uint32_t>(b, align_at, a);
    write_bytes(bad_path_, b);
    parse_error(bad_path_);
  }
}

TEST_F(GgufCorrupt, DuplicatesAndDeepNesting) {
  {
    GgufWriter w;
    w.set_u32("dup.aaa", 1);
    w.set_u32("dup.bbb", 2);
    w.add_tensor("t.a", {4}, GgmlType::F32, pattern(16, 1));
    w.add_tensor("t.b", {4}, GgmlType::F32, pattern(16, 2));
    w.write(bad_path_);
  }
  const Bytes base = read_bytes(bad_path_);
  Bytes b = base;
  std::memcpy(b.data() + find_unique(base, "dup.bbb"), "dup.aaa", 7);
  rejected(b, "metadata 'dup.aaa' appears twice", "duplicate key");
  b = base;
  std::memcpy(b.data() + find_unique(base, "t.b"), "t.a", 3);
  rejected(b, "tensor 't.a' appears twice", "duplicate tensor");

  // Arrays nested 4 deep are read; 5 and 40 deep are refused.
  using T = GgufValueType;
  auto nest = [](int depth) {
    GgufValue v = gguf_array(T::INT32, {gguf_int(T::INT32, 1)});
    for (int i = 1; i < depth; ++i) v = gguf_array(T::ARRAY, {v});
    return v;
  };
  for (int depth : {4, 5, 40}) {
    GgufWriter w;
    w.set("deep", nest(depth));
    w.write(bad_path_);
    const std::string msg = parse_error(bad_path_);
    if (depth <= 4) {
      EXPECT_EQ(msg, "") << depth;
    } else {
      EXPECT_NE(msg.find("metadata 'deep'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("nests arrays deeper than"), std::string::npos) << msg;
    }
  }
  // An array claiming 2^20 nested arrays in a small file.
  {
    GgufWriter w;
    w.set("arr", gguf_array(T::ARRAY, {gguf_array(T::UINT8, {})}));
    w.write(bad_path_);
    Bytes c = read_bytes(bad_path_);
    patch<uint64_t>(c, value_at(c, "arr") + 4, 1u << 20);
    rejected(c, "metadata 'arr' claims 1048576 array elements", "nested count");
  }
}

TEST_F(GgufCorrupt, ByteFlipsNeverCrash) {
  // Every byte of the header, metadata and tensor infos set to a few values: each variant is
  // either still valid or a GgufError; nothing else (no crash, no other exception, no hang).
  size_t rejected_count = 0, total = 0;
  for (size_t i = 0; i < data_offset_; ++i) {
    for (uint8_t v : {uint8_t(0x00), uint8_t(0x01), uint8_t(0x7f), uint8_t(0x80), uint8_t(0xff)}) {
      if (base_[i] == v) continue;
      Bytes b = base_;
      b[i] = v;
      write_bytes(bad_path_, b);
      rejected_count += parse_error(bad_path_).empty() ? 0 : 1;
      ++total;
    }
  }
  EXPECT_GT(rejected_count, total / 4);
  // Random multi-byte garbage with a valid magic and version.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) {
    Bytes b = base_;
    for (int k = 0; k < 4; ++k) b[8 + rng() % (data_offset_ - 8)] = uint8_t(rng());
    write_bytes(bad_path_, b);
    parse_error(bad_path_);
  }
}

TEST(GgufFile, NotAFile) {
  lbtest::TempDir dir("gguf");
  EXPECT_THROW(GgufFile(dir.file("missing.gguf")), GgufError);
  EXPECT_THROW(GgufFile(dir.path.string()), GgufError);
}

// ------------------------------------------------------------------------------------------------
// Real files from ../shared

TEST(GgufShared, ModelsAndVocabsParse) {
  LB_REQUIRE_SHARED(shared);
  {
    GgufFile f(shared + "/models/stories260K.gguf");
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_uint("llama.embedding_length"), 64u);
    EXPECT_EQ(f.get_uint("llama.block_count"), 5u);
    EXPECT_EQ(f.get_uint("llama.feed_forward_length"), 172u);
    EXPECT_EQ(f.get_uint("llama.attention.head_count"), 8u);
    EXPECT_EQ(f.get_uint("llama.attention.head_count_kv"), 4u);
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 512u);
    const GgufTensor& e = f.tensor("token_embd.weight");
    EXPECT_EQ(e.type, GgmlType::F32);
    EXPECT_EQ(e.ne[0], 64);
    EXPECT_EQ(e.ne[1], 512);
    EXPECT_NE(f.find_tensor("output.weight"), nullptr);
    EXPECT_EQ(f.tensor("blk.4.ffn_down.weight").ne[0], 172);
    for (const GgufTensor& t : f.tensors()) EXPECT_EQ(t.type, GgmlType::F32) << t.name;
  }
  {
    GgufFile f(shared + "/models/TinyStories-656K-Q8_0.gguf");
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_uint("llama.embedding_length"), 128u);
    EXPECT_EQ(f.get_uint("llama.block_count"), 2u);
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 2048u);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied embeddings
    EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, GgmlType::Q8_0);
    EXPECT_EQ(f.tensor("blk.0.attn_norm.weight").type, GgmlType::F32);
  }
  {
    GgufFile f(shared + "/vocab/ggml-vocab-llama-spm.gguf");
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 32000u);
    EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").size(), 32000u);
    EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 32000u);
  }
  {
    GgufFile f(shared + "/vocab/ggml-vocab-gpt-2.gguf");
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_FALSE(f.get_string_array("tokenizer.ggml.merges").empty());
  }
  // Every tensor of every model lies inside its file, in bounds.
  for (const char* name : {"stories260K.gguf", "TinyStories-656K-Q8_0.gguf"}) {
    GgufFile f(shared + "/models/" + name);
    for (const GgufTensor& t : f.tensors()) {
      EXPECT_LE(t.offset + t.n_bytes + f.data_offset(), f.file_size()) << t.name;
    }
  }
}

TEST(GgufShared, RealModelRewritesIdentically) {
  // The writer reproduces a real llama.cpp file's content: metadata and tensors read, written,
  // read again compare equal.
  LB_REQUIRE_SHARED(shared);
  lbtest::TempDir dir("gguf");
  GgufFile a(shared + "/models/stories260K.gguf");
  GgufWriter w(a.version());
  for (const auto& [key, value] : a.metadata()) w.set(key, value);
  for (const GgufTensor& t : a.tensors()) {
    w.add_tensor(t.name, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), t.type,
                 [&t](GgufDataSink& out) { out.write(t.data, t.n_bytes); });
  }
  w.write(dir.file("copy.gguf"));
  GgufFile b(dir.file("copy.gguf"));
  EXPECT_EQ(b.metadata().size(), a.metadata().size());
  EXPECT_EQ(b.get_string_array("tokenizer.ggml.tokens"),
            a.get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(b.get_float_array("tokenizer.ggml.scores"), a.get_float_array("tokenizer.ggml.scores"));
  ASSERT_EQ(b.tensors().size(), a.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const GgufTensor& ta = a.tensors()[i];
    const GgufTensor& tb = b.tensors()[i];
    EXPECT_EQ(ta.name, tb.name);
    EXPECT_EQ(ta.ne, tb.ne);
    EXPECT_EQ(ta.n_bytes, tb.n_bytes);
    EXPECT_EQ(0, std::memcmp(ta.data, tb.data, ta.n_bytes)) << ta.name;
  }
}
