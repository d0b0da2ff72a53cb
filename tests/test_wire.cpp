// The wire protocol (docs/protocol.md): every message round-trips, and hostile bytes (random,
// mutated, truncated, wrong versions and types, lying length headers, oversized, deeply nested)
// are rejected with lb::wire::WireError, never a crash, another exception or a large allocation.
#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "quant/f16.hpp"
#include "wire/messages.hpp"

// --- largest single allocation while tracking is on ----------------------------------------------
// Sanitizer builds get ASan's allocation hook; other builds interpose malloc/calloc/realloc (the
// executable's definitions win over glibc's, and operator new goes through malloc).

namespace {

std::atomic<bool> g_tracking{false};
std::atomic<size_t> g_peak{0};

void note_alloc(size_t n) {
  if (!g_tracking.load(std::memory_order_relaxed)) return;
  size_t cur = g_peak.load(std::memory_order_relaxed);
  while (n > cur && !g_peak.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
  }
}

// Largest single allocation made while fn runs.
size_t peak_allocation(const std::function<void()>& fn) {
  g_peak = 0;
  g_tracking = true;
  try {
    fn();
  } catch (...) {
    g_tracking = false;
    throw;
  }
  g_tracking = false;
  return g_peak.load();
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define LB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LB_ASAN 1
#endif
#endif

#ifdef LB_ASAN
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*)(const volatile void*, size_t),
                                                         void (*)(const volatile void*));
namespace {
void on_malloc(const volatile void*, size_t n) {
  note_alloc(n);
}
void on_free(const volatile void*) {}
[[maybe_unused]] const int g_hooks_installed =
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}  // namespace
#else
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* malloc(size_t n) noexcept {
  note_alloc(n);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) noexcept {
  note_alloc(b && a > std::numeric_limits<size_t>::max() / b ? std::numeric_limits<size_t>::max()
                                                             : a * b);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) noexcept {
  note_alloc(n);
  return __libc_realloc(p, n);
}
}
#endif

namespace {

using namespace lb::wire;

// --- helpers ---------------------------------------------------------------------------------

Envelope parse(const std::string& b, const Limits& l = Limits{}) {
  return Envelope::parse(b.data(), b.size(), l);
}

// encode -> parse -> decode, checking the type string and that re-encoding gives the same bytes.
template <typename T>
T round_trip(const T& m, const Limits& l = Limits{}) {
  const std::string bytes = encode(m);
  const Envelope e = parse(bytes, l);
  EXPECT_EQ(e.type(), type_of<T>());
  T out;
  decode(e, out);
  EXPECT_EQ(encode(out), bytes) << "re-encoding a decoded " << type_of<T>() << " differs";
  return out;
}

// The WireError message of fn, or a test failure when fn does not throw exactly that.
std::string wire_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const WireError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected WireError, got another exception: " << e.what();
    return "";
  } catch (...) {
    ADD_FAILURE() << "expected WireError, got a non-std exception";
    return "";
  }
  ADD_FAILURE() << "expected WireError, nothing was thrown";
  return "";
}

template <typename T>
std::string decode_error(const std::string& bytes, const Limits& l = Limits{}) {
  return wire_error([&] {
    T m;
    decode(parse(bytes, l), m);
  });
}

#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "message '" << (haystack) << "' does not contain '" << (needle) << "'"

// A float64 as msgpack bytes, also for integral values (msgpack-c's packer writes those as
// integers).
std::string f64_bytes(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  std::string s(9, '\xcb');
  for (int i = 0; i < 8; ++i) s[1 + i] = char((bits >> (56 - 8 * i)) & 0xff);
  return s;
}

// A decoded copy of a message that tests edit and re-pack, to forge field values.
struct Seg {
  const char* key = nullptr;
  int index = -1;
  Seg(const char* k) : key(k) {}  // NOLINT: implicit on purpose
  Seg(int i) : index(i) {}        // NOLINT
};

struct Doc {
  msgpack::zone z;
  msgpack::object root;
  explicit Doc(const std::string& bytes) : root(msgpack::unpack(z, bytes.data(), bytes.size())) {}

  template <typename T>
  msgpack::object make(const T& v) {
    return msgpack::object(v, z);
  }
  msgpack::object raw(const std::string& packed) {
    return msgpack::unpack(z, packed.data(), packed.size());
  }

  static msgpack::object* child(msgpack::object& o, const Seg& s) {
    if (s.key) {
      if (o.type != msgpack::type::MAP) throw std::logic_error("not a map");
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        msgpack::object_kv& kv = o.via.map.ptr[i];
        if (kv.key.type == msgpack::type::STR &&
            std::string(kv.key.via.str.ptr, kv.key.via.str.size) == s.key) {
          return &kv.val;
        }
      }
      return nullptr;
    }
    if (o.type != msgpack::type::ARRAY || uint32_t(s.index) >= o.via.array.size) {
      throw std::logic_error("bad index");
    }
    return &o.via.array.ptr[s.index];
  }
  msgpack::object& parent_of(const std::vector<Seg>& path) {
    msgpack::object* o = &root;
    for (size_t i = 0; i + 1 < path.size(); ++i) {
      o = child(*o, path[i]);
      if (!o) throw std::logic_error("missing path element");
    }
    return *o;
  }
  void append(msgpack::object& map, const char* key, const msgpack::object& v) {
    auto* kv = static_cast<msgpack::object_kv*>(
        z.allocate_align(sizeof(msgpack::object_kv) * (map.via.map.size + 1)));
    for (uint32_t i = 0; i < map.via.map.size; ++i) kv[i] = map.via.map.ptr[i];
    kv[map.via.map.size].key = msgpack::object(std::string(key), z);
    kv[map.via.map.size].val = v;
    map.via.map.ptr = kv;
    ++map.via.map.size;
  }
  // Sets (or adds) the value at path.
  Doc& set(const std::vector<Seg>& path, const msgpack::object& v) {
    msgpack::object& p = parent_of(path);
    if (msgpack::object* o = child(p, path.back())) {
      *o = v;
    } else {
      append(p, path.back().key, v);
    }
    return *this;
  }
  template <typename T>
  Doc& set_v(const std::vector<Seg>& path, const T& v) {
    return set(path, make(v));
  }
  Doc& erase(const std::vector<Seg>& path) {
    msgpack::object& p = parent_of(path);
    msgpack::object* o = child(p, path.back());
    if (!o) throw std::logic_error("erase: no such key");
    auto* kv = reinterpret_cast<msgpack::object_kv*>(reinterpret_cast<char*>(o) -
                                                     offsetof(msgpack::object_kv, val));
    msgpack::object_kv* end = p.via.map.ptr + p.via.map.size;
    for (msgpack::object_kv* k = kv; k + 1 < end; ++k) *k = *(k + 1);
    --p.via.map.size;
    return *this;
  }
  // Packs verbatim: floats stay floats (msgpack-c would write integral ones as integers).
  static void pack_into(msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer& sb,
                        const msgpack::object& o) {
    switch (o.type) {
      case msgpack::type::ARRAY:
        pk.pack_array(o.via.array.size);
        for (uint32_t i = 0; i < o.via.array.size; ++i) pack_into(pk, sb, o.via.array.ptr[i]);
        break;
      case msgpack::type::MAP:
        pk.pack_map(o.via.map.size);
        for (uint32_t i = 0; i < o.via.map.size; ++i) {
          pack_into(pk, sb, o.via.map.ptr[i].key);
          pack_into(pk, sb, o.via.map.ptr[i].val);
        }
        break;
      case msgpack::type::FLOAT32: {
        const float f = float(o.via.f64);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        char b[5] = {char(0xca), char(bits >> 24), char(bits >> 16), char(bits >> 8), char(bits)};
        sb.write(b, 5);
        break;
      }
      case msgpack::type::FLOAT64: {
        const std::string b = f64_bytes(o.via.f64);
        sb.write(b.data(), b.size());
        break;
      }
      default:
        pk.pack(o);
    }
  }
  std::string pack() const {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pack_into(pk, sb, root);
    return std::string(sb.data(), sb.size());
  }
};

std::string packed(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fn) {
  msgpack::sbuffer sb;
  msgpack::packer<msgpack::sbuffer> pk(sb);
  fn(pk);
  return std::string(sb.data(), sb.size());
}

// The start of a message map with `fields` entries after v and t.
std::string header(const char* type, uint32_t fields, uint64_t version = kVersion) {
  return packed([&](auto& pk) {
    pk.pack_map(fields + 2);
    pk.pack(std::string("v"));
    pk.pack(version);
    pk.pack(std::string("t"));
    pk.pack(std::string(type));
  });
}

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = char((v >> (24 - 8 * i)) & 0xff);
  return s;
}

// --- sample messages -------------------------------------------------------------------------

SampleSpec sample_spec() {
  SampleSpec s;
  s.temp = 0.7f;
  s.top_p = 0.9f;
  s.min_p = 0.05f;
  s.rep = 1.1f;
  s.top_k = 40;
  s.seed = 0xfedcba9876543210ull;
  s.draw = 17;
  s.recent = {1, 2, 3, 2147483647, 0};
  s.top = 5;
  s.logits = true;
  return s;
}

// An activation step: chunks of 2 and 3 rows, dim 4.
Step activation_step(DType d) {
  Step m;
  m.epoch = 3;
  m.id = 0xffffffffffffffffull;
  Chunk a;
  a.req = 7;
  a.pos = 12;
  a.n = 2;
  Chunk b;
  b.req = 9;
  b.pos = 0;
  b.n = 3;
  b.sample = sample_spec();
  b.more = 6;
  m.seqs = {a, b};
  m.dtype = d;
  m.rows = 5;
  m.dim = 4;
  std::vector<float> x(20);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * float(i) - 2.0f;
  m.data = pack_activations(x.data(), x.size(), d);
  return m;
}

Step head_step() {
  Step m;
  m.epoch = 1;
  m.id = 2;
  Chunk a;
  a.req = 1;
  a.pos = 0;
  a.n = 4;
  a.sample = sample_spec();
  m.seqs = {a};
  m.tokens = {10, 20, 30, 40};
  return m;
}

Result result_msg() {
  Result r;
  r.epoch = 4;
  r.id = 99;
  Sampled s;
  s.req = 7;
  s.pos = 13;
  s.token = 123;
  s.lp = -0.5f;
  s.top = {{123, -0.5f}, {7, -1.25f}, {0, -std::numeric_limits<float>::infinity()}};
  std::vector<float> logits = {1.0f, -2.0f, 3.5f};
  s.logits = pack_activations(logits.data(), logits.size(), DType::F32);
  Sampled t;
  t.req = 9;
  t.pos = 2;
  t.token = 0;
  t.lp = 0;
  t.looped = true;
  r.out = {s, t};
  return r;
}

Register register_msg() {
  Register m;
  m.node = "node-a";
  m.order = -3;
  m.host = "10.0.0.5";
  m.budget = 8ull << 30;
  m.high_water = 0.75;
  m.compute = 123.456;
  m.threads = 16;
  m.cores = 24;
  m.data = "tcp://10.0.0.5:5601";
  m.model = "";
  return m;
}

Assign assign_msg() {
  Assign m;
  m.epoch = 5;
  m.begin = 8;
  m.end = 16;
  m.n_layers = 32;
  m.model = {"tiny", "/models/tiny.gguf", 123456789, "sha256:abc"};
  m.upstream = "broker";
  m.downstream = "tcp://10.0.0.6:5601";
  m.ctx = 4096;
  m.seqs = 8;
  m.dtype = DType::F16;
  m.kv = {{11, 40}, {12, 4096}};
  m.head = "tcp://10.0.0.4:5601";
  m.eog = {2, 32000};
  return m;
}

Ready ready_msg() {
  return Ready{5, 8, 16, 1ull << 33, 1ull << 34, {12, 14}};
}

KvPart kv_part_msg() {
  KvPart m;
  m.epoch = 6;
  m.req = 12;
  m.layer = 9;
  m.pos = 16;
  m.n = 2;
  m.total = 40;
  const uint16_t k[4] = {0x3c00, 0xbc00, 0x0001, 0x7bff}, v[4] = {1, 2, 3, 4};
  m.k = pack_halves(k, 4);
  m.v = pack_halves(v, 4);
  return m;
}

ModelChunk chunk_msg() {
  ModelChunk m;
  m.digest = "abc";
  m.offset = 4096;
  m.data = std::string("\x00\x01\xff", 3);
  m.hash = chunk_hash(m.data);
  return m;
}
Heartbeat heartbeat_msg() {
  return Heartbeat{"node-a", 1, 2, 3, 4, 5, 6.5};
}
ErrorMsg error_msg(bool with_req) {
  ErrorMsg m;
  m.msg = "bad thing";
  m.ref = "generate";
  if (with_req) {
    m.req = 42;
    m.epoch = 7;
  }
  return m;
}

Generate generate_msg() {
  Generate m;
  m.prompt = "Hello, wörld \xe2\x9c\x93";
  m.n = 64;
  m.temp = 0.8f;
  m.top_p = 0.95f;
  m.min_p = 0.1f;
  m.rep = 1.2f;
  m.top_k = 50;
  m.seed = 1234;
  m.stop = {"\n\n", "END", ""};
  m.top = 3;
  return m;
}

Done done_msg() {
  Done m;
  m.req = 3;
  m.reason = "stop";
  m.tokens = {5, 6, 7};
  m.text = "five six";
  m.prompt_s = 0.125;
  m.decode_s = 2.5;
  m.decode_steps = 3;
  return m;
}

// One valid encoding of every message type (both forms where a field is optional).
std::vector<std::string> samples() {
  std::vector<std::string> v;
  v.push_back(encode(activation_step(DType::F32)));
  v.push_back(encode(activation_step(DType::F16)));
  v.push_back(encode(head_step()));
  v.push_back(encode(result_msg()));
  v.push_back(encode(register_msg()));
  v.push_back(encode(assign_msg()));
  v.push_back(encode(ready_msg()));
  v.push_back(encode(Release{77}));
  v.push_back(encode(Unloop{{3, 5}}));
  v.push_back(encode(heartbeat_msg()));
  v.push_back(encode(error_msg(true)));
  v.push_back(encode(error_msg(false)));
  v.push_back(encode(Bye{}));
  v.push_back(encode(generate_msg()));
  v.push_back(encode(Accepted{5, {1, 2, 3}}));
  v.push_back(encode(TokenMsg{5, 42, -0.25f, "hi"}));
  v.push_back(encode(done_msg()));
  v.push_back(encode(Cancel{5}));
  v.push_back(encode(StatusQuery{}));
  v.push_back(encode(StatusReply{"{\"nodes\":[]}"}));
  v.push_back(encode(PlanQuery{"even", {1, 2, 3}}));
  v.push_back(encode(PlanReply{"{}"}));
  v.push_back(encode(Fetch{"abc", 4096, 1024}));
  v.push_back(encode(chunk_msg()));
  v.push_back(encode(Control{"set_budget", "node-a", 1ull << 30, ""}));
  v.push_back(encode(PlanChange{"{}", "{}"}));
  v.push_back(encode(Budget{1ull << 30}));
  v.push_back(encode(Pressure{"node-a", 1, 2, 3, 4}));
  v.push_back(encode(kv_part_msg()));
  return v;
}

// Decodes e by its type and checks the decoded value re-encodes to something that decodes again
// to the same bytes; also checks decoding it as another type is refused.
template <typename T>
bool decode_if(const Envelope& e) {
  if (e.type() != type_of<T>()) return false;
  T m;
  decode(e, m);
  const std::string again = encode(m);
  EXPECT_NO_THROW({
    T m2;
    decode(parse(again), m2);
    EXPECT_EQ(encode(m2), again) << type_of<T>();
  }) << "a decoded "
     << type_of<T>() << " does not survive re-encoding";
  return true;
}

template <typename... Ts>
void decode_by_type(const Envelope& e) {
  const bool matched = (decode_if<Ts>(e) || ...);
  EXPECT_TRUE(matched) << "parse accepted type '" << e.type() << "' but nothing decodes it";
  if (e.type() == "step") {
    Result r;
    decode(e, r);  // must throw WireError
  } else {
    Step s;
    decode(e, s);  // must throw WireError
  }
}

void decode_any(const Envelope& e) {
  decode_by_type<Step, Result, Register, Assign, Ready, Release, Unloop, Heartbeat, ErrorMsg, Bye,
                 Generate, Accepted, TokenMsg, Done, Cancel, StatusQuery, StatusReply, PlanQuery,
                 PlanReply, Fetch, ModelChunk, Control, PlanChange, Budget, Pressure, KvPart>(e);
}

bool accepts(const std::string& bytes, size_t case_no);

// --- round trips -----------------------------------------------------------------------------

void expect_sample_eq(const SampleSpec& a, const SampleSpec& b) {
  EXPECT_EQ(a.temp, b.temp);
  EXPECT_EQ(a.top_p, b.top_p);
  EXPECT_EQ(a.min_p, b.min_p);
  EXPECT_EQ(a.rep, b.rep);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.draw, b.draw);
  EXPECT_EQ(a.recent, b.recent);
  EXPECT_EQ(a.top, b.top);
  EXPECT_EQ(a.logits, b.logits);
}

void expect_step_eq(const Step& a, const Step& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.id, b.id);
  ASSERT_EQ(a.seqs.size(), b.seqs.size());
  for (size_t i = 0; i < a.seqs.size(); ++i) {
    EXPECT_EQ(a.seqs[i].req, b.seqs[i].req);
    EXPECT_EQ(a.seqs[i].pos, b.seqs[i].pos);
    EXPECT_EQ(a.seqs[i].n, b.seqs[i].n);
    EXPECT_EQ(a.seqs[i].more, b.seqs[i].more);
    ASSERT_EQ(a.seqs[i].sample.has_value(), b.seqs[i].sample.has_value());
    if (a.seqs[i].sample) expect_sample_eq(*a.seqs[i].sample, *b.seqs[i].sample);
  }
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.data, b.data);
}

TEST(WireRoundTrip, StepF32AndF16) {
  for (DType d : {DType::F32, DType::F16}) {
    const Step m = activation_step(d);
    const Step out = round_trip(m);
    expect_step_eq(m, out);
    EXPECT_FALSE(out.seqs[0].sample.has_value());
    ASSERT_TRUE(out.seqs[1].sample.has_value());
    std::vector<float> x(20);
    unpack_activations(out.data, d, x.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i], 0.25f * float(i) - 2.0f);
  }
}

TEST(WireRoundTrip, HeadStepAndEmptyStep) {
  const Step h = head_step();
  expect_step_eq(h, round_trip(h));
  const Step empty;  // no chunks, no rows
  expect_step_eq(empty, round_trip(empty));
}

TEST(WireRoundTrip, LargeStep) {
  Step m;
  m.epoch = 1;
  m.id = 1;
  const uint32_t per = 128;
  for (uint32_t r = 0; r < 4; ++r) {
    Chunk c;
    c.req = r;
    c.pos = int64_t(r) * 1000;
    c.n = per;
    SampleSpec s = sample_spec();
    s.recent.assign(4096, int32_t(r));
    c.sample = s;
    m.seqs.push_back(c);
  }
  m.rows = 4 * per;
  m.dim = 2048;
  m.dtype = DType::F32;
  std::vector<float> x(size_t(m.rows) * m.dim);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 1000) * 0.001f;
  m.data = pack_activations(x.data(), x.size(), m.dtype);
  expect_step_eq(m, round_trip(m));

  Step h;  // a long prompt into the head
  Chunk c;
  c.req = 1;
  c.n = 100000;
  h.seqs = {c};
  for (int32_t i = 0; i < 100000; ++i) h.tokens.push_back(i * 7);
  expect_step_eq(h, round_trip(h));
}

TEST(WireRoundTrip, Result) {
  const Result m = result_msg();
  const Result out = round_trip(m);
  EXPECT_EQ(out.epoch, m.epoch);
  EXPECT_EQ(out.id, m.id);
  ASSERT_EQ(out.out.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(out.out[i].req, m.out[i].req);
    EXPECT_EQ(out.out[i].pos, m.out[i].pos);
    EXPECT_EQ(out.out[i].token, m.out[i].token);
    EXPECT_EQ(out.out[i].lp, m.out[i].lp);
    EXPECT_EQ(out.out[i].top, m.out[i].top);
    EXPECT_EQ(out.out[i].logits, m.out[i].logits);
    EXPECT_EQ(out.out[i].looped, m.out[i].looped);
  }
  EXPECT_TRUE(out.out[1].logits.empty());
  EXPECT_TRUE(out.out[1].top.empty());
  EXPECT_TRUE(round_trip(Result{}).out.empty());
}

TEST(WireRoundTrip, StageControl) {
  const Register r = round_trip(register_msg());
  EXPECT_EQ(r.node, "node-a");
  EXPECT_EQ(r.order, -3);
  EXPECT_EQ(r.host, "10.0.0.5");
  EXPECT_EQ(r.budget, 8ull << 30);
  EXPECT_EQ(r.high_water, 0.75);
  EXPECT_EQ(r.compute, 123.456);
  EXPECT_EQ(r.threads, 16u);
  EXPECT_EQ(r.cores, 24u);
  EXPECT_EQ(r.data, "tcp://10.0.0.5:5601");
  EXPECT_EQ(r.model, "");

  const Assign a = round_trip(assign_msg());
  EXPECT_EQ(a.epoch, 5u);
  EXPECT_EQ(a.begin, 8);
  EXPECT_EQ(a.end, 16);
  EXPECT_EQ(a.n_layers, 32);
  EXPECT_EQ(a.model.name, "tiny");
  EXPECT_EQ(a.model.path, "/models/tiny.gguf");
  EXPECT_EQ(a.model.size, 123456789u);
  EXPECT_EQ(a.model.digest, "sha256:abc");
  EXPECT_EQ(a.upstream, "broker");
  EXPECT_EQ(a.downstream, "tcp://10.0.0.6:5601");
  EXPECT_EQ(a.ctx, 4096);
  EXPECT_EQ(a.seqs, 8u);
  EXPECT_EQ(a.dtype, DType::F16);
  ASSERT_EQ(a.kv.size(), 2u);
  EXPECT_EQ(a.kv[0].req, 11u);
  EXPECT_EQ(a.kv[0].n_pos, 40);
  EXPECT_EQ(a.kv[1].req, 12u);
  EXPECT_EQ(a.kv[1].n_pos, 4096);
  EXPECT_EQ(a.head, "tcp://10.0.0.4:5601");
  EXPECT_EQ(a.eog, (std::vector<int32_t>{2, 32000}));

  const Ready rd = round_trip(ready_msg());
  EXPECT_EQ(rd.epoch, 5u);
  EXPECT_EQ(rd.begin, 8);
  EXPECT_EQ(rd.end, 16);
  EXPECT_EQ(rd.weights, 1ull << 33);
  EXPECT_EQ(rd.rss, 1ull << 34);
  EXPECT_EQ(rd.missing, (std::vector<uint64_t>{12, 14}));

  const KvPart kv = round_trip(kv_part_msg());
  EXPECT_EQ(kv.epoch, 6u);
  EXPECT_EQ(kv.req, 12u);
  EXPECT_EQ(kv.layer, 9);
  EXPECT_EQ(kv.pos, 16);
  EXPECT_EQ(kv.n, 2);
  EXPECT_EQ(kv.total, 40);
  EXPECT_EQ(kv.k, kv_part_msg().k);
  EXPECT_EQ(kv.v, kv_part_msg().v);
  // F16 bit patterns travel little-endian.
  EXPECT_EQ(kv.k.substr(0, 4), std::string("\x00\x3c\x00\xbc", 4));

  const Fetch f = round_trip(Fetch{"abc", 4096, 1024});
  EXPECT_EQ(f.digest, "abc");
  EXPECT_EQ(f.offset, 4096u);
  EXPECT_EQ(f.size, 1024u);
  const ModelChunk mc = round_trip(chunk_msg());
  EXPECT_EQ(mc.data, chunk_msg().data);
  EXPECT_EQ(mc.hash, chunk_hash(mc.data));
  EXPECT_EQ(round_trip(Budget{1ull << 30}).budget, 1ull << 30);
  const Pressure pr = round_trip(Pressure{"node-a", 1, 2, 3, 4});
  EXPECT_EQ(pr.node, "node-a");
  EXPECT_EQ(pr.kv, 3u);
  EXPECT_EQ(pr.budget, 4u);

  EXPECT_EQ(round_trip(Release{77}).req, 77u);
  EXPECT_EQ(round_trip(Unloop{{3, 5}}).reqs, (std::vector<uint64_t>{3, 5}));

  const Heartbeat h = round_trip(heartbeat_msg());
  EXPECT_EQ(h.node, "node-a");
  EXPECT_EQ(h.batches, 5u);
  EXPECT_EQ(h.overhead_us, 6.5);
  EXPECT_EQ(h.rss, 1u);
  EXPECT_EQ(h.weights, 2u);
  EXPECT_EQ(h.kv, 3u);
  EXPECT_EQ(h.budget, 4u);

  const ErrorMsg e1 = round_trip(error_msg(true));
  EXPECT_EQ(e1.msg, "bad thing");
  EXPECT_EQ(e1.ref, "generate");
  ASSERT_TRUE(e1.req.has_value());
  EXPECT_EQ(*e1.req, 42u);
  ASSERT_TRUE(e1.epoch.has_value());
  EXPECT_EQ(*e1.epoch, 7u);
  const ErrorMsg e2 = round_trip(error_msg(false));
  EXPECT_FALSE(e2.req.has_value());
  EXPECT_FALSE(e2.epoch.has_value());

  round_trip(Bye{});
}

TEST(WireRoundTrip, ClientControl) {
  const Generate g = round_trip(generate_msg());
  const Generate w = generate_msg();
  EXPECT_EQ(g.prompt, w.prompt);
  EXPECT_EQ(g.n, w.n);
  EXPECT_EQ(g.temp, w.temp);
  EXPECT_EQ(g.top_p, w.top_p);
  EXPECT_EQ(g.min_p, w.min_p);
  EXPECT_EQ(g.rep, w.rep);
  EXPECT_EQ(g.top_k, w.top_k);
  EXPECT_EQ(g.seed, w.seed);
  EXPECT_EQ(g.stop, w.stop);
  EXPECT_EQ(g.top, w.top);
  Generate empty_stop = generate_msg();
  empty_stop.stop.clear();
  EXPECT_TRUE(round_trip(empty_stop).stop.empty());

  const Accepted a = round_trip(Accepted{5, {1, 2, 3}});
  EXPECT_EQ(a.req, 5u);
  EXPECT_EQ(a.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(round_trip(Accepted{6, {}}).prompt_tokens.empty());

  const TokenMsg t = round_trip(TokenMsg{5, 42, -0.25f, "hi"});
  EXPECT_EQ(t.req, 5u);
  EXPECT_EQ(t.id, 42);
  EXPECT_EQ(t.lp, -0.25f);
  EXPECT_EQ(t.text, "hi");
  const TokenMsg tinf =
      round_trip(TokenMsg{5, 0, -std::numeric_limits<float>::infinity(), std::string()});
  EXPECT_TRUE(std::isinf(tinf.lp) && tinf.lp < 0);

  const Done d = round_trip(done_msg());
  EXPECT_EQ(d.req, 3u);
  EXPECT_EQ(d.reason, "stop");
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(d.text, "five six");
  EXPECT_EQ(d.prompt_s, 0.125);
  EXPECT_EQ(d.decode_s, 2.5);
  EXPECT_EQ(d.decode_steps, 3u);

  EXPECT_EQ(round_trip(Cancel{12}).req, 12u);
  round_trip(StatusQuery{});
  EXPECT_EQ(round_trip(StatusReply{"{\"a\":1}"}).json, "{\"a\":1}");
  const PlanQuery p = round_trip(PlanQuery{"even", {1, 2, 0xffffffffffffffffull}});
  EXPECT_EQ(p.strategy, "even");
  EXPECT_EQ(p.nodes, (std::vector<uint64_t>{1, 2, 0xffffffffffffffffull}));
  EXPECT_TRUE(round_trip(PlanQuery{}).nodes.empty());
  EXPECT_EQ(round_trip(PlanReply{"{}"}).json, "{}");
}

TEST(WireRoundTrip, TypeStringsMatchTheProtocol) {
  EXPECT_STREQ(type_of<Step>(), "step");
  EXPECT_STREQ(type_of<Result>(), "result");
  EXPECT_STREQ(type_of<Register>(), "register");
  EXPECT_STREQ(type_of<Assign>(), "assign");
  EXPECT_STREQ(type_of<Ready>(), "ready");
  EXPECT_STREQ(type_of<Release>(), "release");
  EXPECT_STREQ(type_of<Unloop>(), "unloop");
  EXPECT_STREQ(type_of<Heartbeat>(), "heartbeat");
  EXPECT_STREQ(type_of<ErrorMsg>(), "error");
  EXPECT_STREQ(type_of<Bye>(), "bye");
  EXPECT_STREQ(type_of<Generate>(), "generate");
  EXPECT_STREQ(type_of<Accepted>(), "accepted");
  EXPECT_STREQ(type_of<TokenMsg>(), "token");
  EXPECT_STREQ(type_of<Done>(), "done");
  EXPECT_STREQ(type_of<Cancel>(), "cancel");
  EXPECT_STREQ(type_of<StatusQuery>(), "status");
  EXPECT_STREQ(type_of<StatusReply>(), "status_reply");
  EXPECT_STREQ(type_of<PlanQuery>(), "plan");
  EXPECT_STREQ(type_of<PlanReply>(), "plan_reply");
  EXPECT_STREQ(type_of<Fetch>(), "fetch");
  EXPECT_STREQ(type_of<ModelChunk>(), "chunk");
  EXPECT_STREQ(type_of<Control>(), "control");
  EXPECT_STREQ(type_of<PlanChange>(), "plan_change");
  EXPECT_STREQ(type_of<Budget>(), "budget");
  EXPECT_STREQ(type_of<Pressure>(), "pressure");
  EXPECT_STREQ(type_of<KvPart>(), "kv");
}

TEST(WireRoundTrip, EncodingIsAMsgpackMapWithProtocolKeys) {
  const std::string b = encode(activation_step(DType::F16));
  const msgpack::object_handle h = msgpack::unpack(b.data(), b.size());
  const msgpack::object& o = h.get();
  ASSERT_EQ(o.type, msgpack::type::MAP);
  std::map<std::string, msgpack::object> kv;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    ASSERT_EQ(o.via.map.ptr[i].key.type, msgpack::type::STR);
    kv[o.via.map.ptr[i].key.as<std::string>()] = o.via.map.ptr[i].val;
  }
  const std::vector<std::string> keys = {"v",      "t",     "epoch", "id",  "seqs",
                                         "tokens", "dtype", "rows",  "dim", "data"};
  EXPECT_EQ(kv.size(), keys.size());
  for (const auto& k : keys) EXPECT_TRUE(kv.count(k)) << k;
  EXPECT_EQ(kv["v"].as<uint32_t>(), kVersion);
  EXPECT_EQ(kv["t"].as<std::string>(), "step");
  EXPECT_EQ(kv["data"].type, msgpack::type::BIN);
  EXPECT_EQ(kv["data"].via.bin.size, 5u * 4u * 2u);
  EXPECT_EQ(kv["dtype"].as<int>(), 1);
  EXPECT_EQ(kv["seqs"].via.array.ptr[0].via.map.size, 5u);  // req pos n sample(nil) more

  // Float fields stay floats on the wire, integral values and -0.0 included.
  Generate g = generate_msg();
  g.temp = 1.0f;
  g.min_p = -0.0f;
  const std::string gb = encode(g);
  const msgpack::object_handle gh = msgpack::unpack(gb.data(), gb.size());
  for (uint32_t i = 0; i < gh.get().via.map.size; ++i) {
    const auto& e = gh.get().via.map.ptr[i];
    const std::string k = e.key.as<std::string>();
    if (k == "temp" || k == "min_p" || k == "top_p" || k == "rep") {
      EXPECT_EQ(e.val.type, msgpack::type::FLOAT32) << k;
    }
  }
  const Done d = round_trip(done_msg());
  EXPECT_EQ(d.prompt_s, 0.125);
  Done whole = done_msg();
  whole.decode_s = 3.0;
  const std::string db = encode(whole);
  const msgpack::object_handle dh = msgpack::unpack(db.data(), db.size());
  for (uint32_t i = 0; i < dh.get().via.map.size; ++i) {
    const auto& e = dh.get().via.map.ptr[i];
    if (e.key.as<std::string>() == "decode_s") {
      EXPECT_EQ(e.val.type, msgpack::type::FLOAT64);
    }
  }
  EXPECT_TRUE(std::signbit(round_trip(TokenMsg{1, 2, -0.0f, ""}).lp));

  const std::string r = encode(result_msg());
  const msgpack::object_handle rh = msgpack::unpack(r.data(), r.size());
  const msgpack::object& out = rh.get().via.map.ptr[4].val;  // v t epoch id out
  ASSERT_EQ(out.type, msgpack::type::ARRAY);
  const msgpack::object& first = out.via.array.ptr[0];
  bool saw_logits = false;
  for (uint32_t i = 0; i < first.via.map.size; ++i) {
    if (first.via.map.ptr[i].key.as<std::string>() == "logits") {
      saw_logits = true;
      EXPECT_EQ(first.via.map.ptr[i].val.type, msgpack::type::BIN);
    }
  }
  EXPECT_TRUE(saw_logits);
}

TEST(WireRoundTrip, UnknownKeysAreIgnored) {
  Doc d(encode(activation_step(DType::F32)));
  d.set({"future"}, d.raw(packed([](auto& pk) {
    pk.pack_map(1);
    pk.pack(std::string("x"));
    pk.pack_array(2);
    pk.pack(1);
    pk.pack(std::string("y"));
  })));
  d.set_v({"seqs", 0, "extra"}, 5);
  d.set_v({"seqs", 1, "sample", "mirostat"}, 2.5);
  Doc nest(d.pack());
  // Nesting within the depth limit under an unknown key is fine.
  std::string deep;
  for (int i = 0; i < 8; ++i) deep += '\x91';
  deep += '\x01';
  nest.set({"deep"}, nest.raw(deep));
  Step s;
  decode(parse(nest.pack()), s);
  expect_step_eq(activation_step(DType::F32), s);

  Doc a(encode(assign_msg()));
  a.set_v({"model", "quant"}, std::string("q4_0"));
  Assign out;
  decode(parse(a.pack()), out);
  EXPECT_EQ(out.model.digest, "sha256:abc");

  Doc c(encode(Cancel{3}));
  c.set({"sample"}, msgpack::object());  // nil where nothing is expected
  Cancel cc;
  decode(parse(c.pack()), cc);
  EXPECT_EQ(cc.req, 3u);
}

TEST(WireRoundTrip, SampleMayBeNilOrAbsent) {
  Doc d(encode(activation_step(DType::F32)));
  d.erase({"seqs", 0, "sample"});
  Step s;
  decode(parse(d.pack()), s);
  EXPECT_FALSE(s.seqs[0].sample.has_value());
  EXPECT_TRUE(s.seqs[1].sample.has_value());
}

TEST(WireRoundTrip, LoopFieldsMayBeAbsent) {
  // A broker or stage that never loops need not send them: absent means no loop.
  Doc d(encode(activation_step(DType::F32)));
  d.erase({"seqs", 1, "more"});
  Step s;
  decode(parse(d.pack()), s);
  EXPECT_EQ(s.seqs[1].more, 0u);
  Doc r(encode(result_msg()));
  r.erase({"out", 1, "looped"});
  Result res;
  decode(parse(r.pack()), res);
  EXPECT_FALSE(res.out[1].looped);
  Doc a(encode(assign_msg()));
  a.erase({"head"});
  a.erase({"eog"});
  Assign as;
  decode(parse(a.pack()), as);
  EXPECT_EQ(as.head, "");
  EXPECT_TRUE(as.eog.empty());
}

TEST(WireNextChunk, TakesTheSampledTokenOneStepOn) {
  Chunk c;
  c.req = 4;
  c.pos = 10;
  c.n = 3;
  c.more = 2;
  SampleSpec sp = sample_spec();
  sp.rep = 1.1f;
  sp.draw = 5;
  sp.recent.assign(kRecentTokens, 1);
  sp.recent.back() = 9;
  c.sample = sp;
  const Chunk n = next_chunk(c, 77);
  EXPECT_EQ(n.req, 4u);
  EXPECT_EQ(n.pos, 13);  // the sampled token's own position
  EXPECT_EQ(n.n, 1u);
  EXPECT_EQ(n.more, 1u);
  ASSERT_TRUE(n.sample.has_value());
  EXPECT_EQ(n.sample->draw, 6u);
  // The window keeps its length: the oldest token goes, the new one comes last.
  ASSERT_EQ(n.sample->recent.size(), kRecentTokens);
  EXPECT_EQ(n.sample->recent[kRecentTokens - 2], 9);
  EXPECT_EQ(n.sample->recent.back(), 77);
  EXPECT_EQ(n.sample->temp, sp.temp);
  EXPECT_EQ(n.sample->seed, sp.seed);

  // Without a penalty there is no window to keep.
  c.sample->rep = 1.0f;
  c.sample->recent.clear();
  EXPECT_TRUE(next_chunk(c, 77).sample->recent.empty());
  c.more = 0;
  EXPECT_EQ(next_chunk(c, 77).more, 0u);
}

TEST(WireRoundTrip, EnvelopeCopiesShareTheBody) {
  std::optional<Envelope> copy;
  {
    std::string bytes = encode(head_step());
    const Envelope e = parse(bytes);
    copy = e;
    bytes.assign(bytes.size(), '\0');  // the envelope does not refer to the input
  }
  Step s;
  decode(*copy, s);
  EXPECT_EQ(s.tokens, head_step().tokens);
  Step none;
  EXPECT_CONTAINS(wire_error([&] { decode(Envelope{}, none); }), "empty envelope");
}

// --- dtype and activations -------------------------------------------------------------------

TEST(WireDtype, Helpers) {
  EXPECT_EQ(dtype_bytes(DType::F32), 4u);
  EXPECT_EQ(dtype_bytes(DType::F16), 2u);
  EXPECT_STREQ(dtype_name(DType::F32), "f32");
  EXPECT_STREQ(dtype_name(DType::F16), "f16");
  EXPECT_EQ(parse_dtype("f32"), DType::F32);
  EXPECT_EQ(parse_dtype("f16"), DType::F16);
  EXPECT_THROW(parse_dtype("bf16"), lb::Error);
  EXPECT_THROW(parse_dtype(""), lb::Error);
}

TEST(WireDtype, ActivationBytesAreLittleEndian) {
  const float x[2] = {1.0f, -2.0f};
  EXPECT_EQ(pack_activations(x, 2, DType::F32), std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
  EXPECT_EQ(pack_activations(x, 2, DType::F16), std::string("\x00\x3c\x00\xc0", 4));
  EXPECT_EQ(pack_activations(x, 0, DType::F16), "");
}

TEST(WireDtype, F16RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -10);  // half ulp spacing at 1.0
  const float in[] = {1.0f + ulp / 2,       // tie: rounds down to the even 1.0
                      1.0f + 3 * ulp / 2,   // tie: rounds up to the even 1 + 2 ulp
                      1.0f + ulp * 0.51f,   // above the tie: up
                      65520.0f,             // rounds to infinity
                      std::ldexp(1.0f, -24)};
  float out[5];
  const std::string b = pack_activations(in, 5, DType::F16);
  ASSERT_EQ(b.size(), 10u);
  unpack_activations(b, DType::F16, out, 5);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 1.0f + 2 * ulp);
  EXPECT_EQ(out[2], 1.0f + ulp);
  EXPECT_TRUE(std::isinf(out[3]));
  EXPECT_EQ(out[4], std::ldexp(1.0f, -24));
  // The same bits as the shared converter, for a spread of values.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-70000.0f, 70000.0f);
  std::vector<float> v(1000);
  for (float& f : v) f = dist(rng) * (rng() % 2 ? 1.0f : 1e-6f);
  const std::string pv = pack_activations(v.data(), v.size(), DType::F16);
  for (size_t i = 0; i < v.size(); ++i) {
    const lb::Half h = lb::fp32_to_fp16(v[i]);
    ASSERT_EQ(uint8_t(pv[2 * i]), h & 0xff);
    ASSERT_EQ(uint8_t(pv[2 * i + 1]), h >> 8);
  }
}

TEST(WireDtype, UnpackChecksTheSize) {
  float out[4];
  const float x[4] = {1, 2, 3, 4};
  const std::string b = pack_activations(x, 4, DType::F32);
  unpack_activations(b, DType::F32, out, 4);
  EXPECT_EQ(out[3], 4.0f);
  EXPECT_CONTAINS(wire_error([&] { unpack_activations(b, DType::F32, out, 3); }), "16 bytes");
  EXPECT_CONTAINS(wire_error([&] { unpack_activations(b, DType::F16, out, 4); }), "f16");
  wire_error([&] { unpack_activations(b.substr(1), DType::F32, out, 4); });
  wire_error([&] { unpack_activations(b, DType::F32, out, std::numeric_limits<size_t>::max()); });
}

// --- envelope checks -------------------------------------------------------------------------

TEST(WireHostile, VersionIsChecked) {
  Doc d(encode(Cancel{1}));
  d.set_v({"v"}, 2);
  const std::string msg = wire_error([&] { parse(d.pack()); });
  EXPECT_CONTAINS(msg, "version 2");
  EXPECT_CONTAINS(msg, "version 1");
  d.set_v({"v"}, 0);
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "version 0");
  d.set_v({"v"}, -1);
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "version -1");
  d.set_v({"v"}, std::string("1"));
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "version");
  d.set({"v"}, d.raw(f64_bytes(1.0)));
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "version");
  d.erase({"v"});
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "version");
}

TEST(WireHostile, TypeIsChecked) {
  Doc d(encode(Cancel{1}));
  d.set_v({"t"}, std::string("launch_missiles"));
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "unknown message type 'launch_missiles'");
  d.set_v({"t"}, std::string(""));
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "unknown message type");
  d.set_v({"t"}, std::string("step\n\x01\xff"));
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "'step\?\?\?'");
  d.set_v({"t"}, 5);
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "type");
  d.set_v({"t"}, std::vector<char>{'s', 't', 'e', 'p'});  // bin, not str
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "type must be a str");
  d.erase({"t"});
  EXPECT_CONTAINS(wire_error([&] { parse(d.pack()); }), "no type");
}

TEST(WireHostile, NotAMap) {
  EXPECT_CONTAINS(wire_error([&] { parse(std::string()); }), "empty");
  EXPECT_CONTAINS(wire_error([&] { Envelope::parse(nullptr, 0, Limits{}); }), "empty");
  EXPECT_CONTAINS(wire_error([&] { parse(std::string("\x92\x01\x02", 3)); }), "map");
  EXPECT_CONTAINS(wire_error([&] { parse(std::string("\x2a", 1)); }), "map");
  EXPECT_CONTAINS(wire_error([&] { parse(std::string("\xc0", 1)); }), "map");
  EXPECT_CONTAINS(wire_error([&] {
                    parse(
                        std::string("\xa3"
                                    "abc",
                                    4));
                  }),
                  "map");
  EXPECT_CONTAINS(wire_error([&] { parse(std::string("\xc1", 1)); }), "0xc1");
}

TEST(WireHostile, TrailingBytesAndTwoMessages) {
  const std::string b = encode(Cancel{1});
  EXPECT_CONTAINS(wire_error([&] { parse(b + std::string(1, '\0')); }), "trailing");
  EXPECT_CONTAINS(wire_error([&] { parse(b + b); }), "trailing");
}

TEST(WireHostile, DecodeAsTheWrongType) {
  const Envelope e = parse(encode(Cancel{1}));
  Step s;
  EXPECT_CONTAINS(wire_error([&] { decode(e, s); }), "expected a 'step' message, got 'cancel'");
  Release r;
  EXPECT_CONTAINS(wire_error([&] { decode(e, r); }), "expected a 'release' message");
  Bye b;
  wire_error([&] { decode(e, b); });
}

TEST(WireHostile, DuplicateKeys) {
  Doc d(encode(Cancel{1}));
  d.append(d.root, "req", d.make(2));
  EXPECT_CONTAINS(decode_error<Cancel>(d.pack()), "cancel.req: duplicate key");
  Doc v(encode(Cancel{1}));
  v.append(v.root, "v", v.make(1));
  EXPECT_CONTAINS(wire_error([&] { parse(v.pack()); }), "duplicate");
}

TEST(WireHostile, TruncatedAtEveryLength) {
  for (const std::string& b : samples()) {
    for (size_t len = 0; len < b.size(); ++len) {
      const std::string msg = wire_error([&] { parse(b.substr(0, len)); });
      if (msg.empty()) {
        ADD_FAILURE() << "truncation to " << len << " of " << b.size() << " bytes";
        return;
      }
    }
    EXPECT_TRUE(accepts(b, 0));
  }
}

// --- field checks ----------------------------------------------------------------------------

struct FieldCase {
  std::string base;  // a valid encoding
  std::function<void(Doc&)> edit;
  std::string expect;  // substring of the WireError message
  std::function<void(const Envelope&)> decode;
};

template <typename T>
std::function<void(const Envelope&)> decoder() {
  return [](const Envelope& e) {
    T m;
    decode(e, m);
  };
}

template <typename T>
FieldCase set_case(const T& base, std::vector<Seg> path, msgpack::object (*make)(Doc&),
                   std::string expect) {
  return {encode(base), [path, make](Doc& d) { d.set(path, make(d)); }, std::move(expect),
          decoder<T>()};
}

#define V(...) [](Doc& d) -> msgpack::object { return d.make(__VA_ARGS__); }
#define NIL [](Doc&) -> msgpack::object { return msgpack::object(); }
#define F64(x) [](Doc& d) -> msgpack::object { return d.raw(f64_bytes(x)); }

template <typename T>
FieldCase erase_case(const T& base, std::vector<Seg> path, std::string expect) {
  return {encode(base), [path](Doc& d) { d.erase(path); }, std::move(expect), decoder<T>()};
}

TEST(WireHostile, FieldChecksNameTypeAndField) {
  const Step act = activation_step(DType::F32);
  const Step head = head_step();
  std::vector<FieldCase> cases = {
      // step
      set_case(act, {"epoch"}, V(std::string("x")),
               "step.epoch: expected an unsigned integer, got str"),
      set_case(act, {"epoch"}, V(-1), "step.epoch: negative value -1"),
      set_case(act, {"id"}, V(1.5), "step.id: expected an unsigned integer, got float64"),
      set_case(act, {"seqs"}, V(std::string("[]")), "step.seqs: expected an array, got str"),
      set_case(act, {"seqs", 0}, V(5), "step.seqs[0]: expected a map"),
      set_case(act, {"seqs", 0, "n"}, V(0), "step.seqs[0].n: must be at least 1"),
      set_case(act, {"seqs", 0, "n"}, V(uint64_t(1) << 32),
               "step.seqs[0].n: value 4294967296 out of range"),
      set_case(act, {"seqs", 0, "pos"}, V(-1), "step.seqs[0].pos: value -1 out of range"),
      set_case(act, {"seqs", 0, "pos"}, V(std::numeric_limits<int64_t>::max()),
               "step.seqs[0].pos: pos + n overflows"),
      set_case(act, {"seqs", 0, "pos"}, V(std::numeric_limits<uint64_t>::max()),
               "step.seqs[0].pos: value 18446744073709551615 out of range"),
      set_case(act, {"seqs", 0, "req"}, V(true),
               "step.seqs[0].req: expected an unsigned integer, got bool"),
      set_case(act, {"seqs", 0, "sample"}, V(3), "step.seqs[0].sample: expected a map"),
      set_case(act, {"seqs", 0, "more"}, V(2), "step.seqs[0].more: needs a sample to go on from"),
      set_case(act, {"seqs", 1, "more"}, V(-2), "step.seqs[1].more: negative value -2"),
      set_case(act, {"seqs", 1, "sample", "temp"}, V(std::numeric_limits<double>::quiet_NaN()),
               "step.seqs[1].sample.temp: NaN"),
      set_case(act, {"seqs", 1, "sample", "temp"}, V(std::numeric_limits<float>::quiet_NaN()),
               "step.seqs[1].sample.temp: NaN"),
      set_case(act, {"seqs", 1, "sample", "temp"}, V(std::numeric_limits<double>::infinity()),
               "step.seqs[1].sample.temp: infinity"),
      set_case(act, {"seqs", 1, "sample", "temp"}, V(-0.5),
               "step.seqs[1].sample.temp: must be >= 0"),
      set_case(act, {"seqs", 1, "sample", "temp"}, V(1e300), "step.seqs[1].sample.temp: value"),
      set_case(act, {"seqs", 1, "sample", "top_p"}, V(1.5),
               "step.seqs[1].sample.top_p: must be in (0, 1]"),
      set_case(act, {"seqs", 1, "sample", "top_p"}, V(0), "step.seqs[1].sample.top_p"),
      set_case(act, {"seqs", 1, "sample", "min_p"}, V(-0.1), "step.seqs[1].sample.min_p"),
      set_case(act, {"seqs", 1, "sample", "rep"}, V(0), "step.seqs[1].sample.rep: must be > 0"),
      set_case(act, {"seqs", 1, "sample", "top_k"}, V(-1),
               "step.seqs[1].sample.top_k: must be >= 0"),
      set_case(act, {"seqs", 1, "sample", "top_k"}, V(int64_t(1) << 31),
               "step.seqs[1].sample.top_k: value 2147483648 out of range"),
      set_case(act, {"seqs", 1, "sample", "seed"}, V(-5), "step.seqs[1].sample.seed: negative"),
      set_case(act, {"seqs", 1, "sample", "recent", 1}, V(-5),
               "step.seqs[1].sample.recent[1]: negative token id -5"),
      set_case(act, {"seqs", 1, "sample", "recent", 0}, V(int64_t(1) << 31),
               "step.seqs[1].sample.recent[0]: value 2147483648 out of range"),
      set_case(act, {"seqs", 1, "sample", "recent", 2}, F64(1.0),
               "step.seqs[1].sample.recent[2]: expected an unsigned integer"),
      set_case(act, {"seqs", 1, "sample", "top"}, V(uint64_t(1) << 32),
               "step.seqs[1].sample.top: value 4294967296 out of range"),
      set_case(act, {"seqs", 1, "sample", "logits"}, V(1),
               "step.seqs[1].sample.logits: expected a bool"),
      set_case(act, {"tokens"}, V(std::vector<int>{1, 2, 3, 4, 5}),
               "step.rows: must be 0 when tokens are present"),
      set_case(act, {"tokens"}, V(std::map<std::string, int>{}),
               "step.tokens: expected an array, got map"),
      set_case(act, {"dtype"}, V(2), "step.dtype: unknown dtype 2"),
      set_case(act, {"dtype"}, V(std::string("f16")),
               "step.dtype: expected an unsigned integer, got str"),
      set_case(act, {"dtype"}, V(1), "step.data: 80 bytes but rows x dim = 5 x 4 f16 values"),
      set_case(act, {"rows"}, V(6), "step.rows: 6 rows but the chunks hold 5"),
      set_case(act, {"rows"}, V(uint64_t(1) << 32), "step.rows: value 4294967296 out of range"),
      set_case(act, {"dim"}, V(5), "step.data: 80 bytes but rows x dim = 5 x 5"),
      set_case(act, {"dim"}, V(0), "step.dim: must be > 0 when rows > 0"),
      set_case(act, {"dim"}, V(-4), "step.dim: negative"),
      set_case(act, {"data"}, V(std::string(80, 'x')), "step.data: expected a bin, got str"),
      set_case(act, {"data"}, V(std::vector<char>(79, 'x')), "step.data: 79 bytes"),
      set_case(act, {"data"}, V(std::vector<char>()), "step.data: 0 bytes"),
      erase_case(act, {"data"}, "step.data: missing"),
      erase_case(act, {"rows"}, "step.rows: missing"),
      erase_case(act, {"seqs", 0, "n"}, "step.seqs[0].n: missing"),
      erase_case(act, {"seqs", 1, "sample", "recent"}, "step.seqs[1].sample.recent: missing"),
      erase_case(act, {"tokens"}, "step.tokens: missing"),
      set_case(head, {"rows"}, V(4), "step.rows: must be 0 when tokens are present"),
      set_case(head, {"dim"}, V(8), "step.dim: must be 0 when tokens are present"),
      set_case(head, {"data"}, V(std::vector<char>(4, 'x')),
               "step.data: must be empty when tokens are present"),
      set_case(head, {"tokens"}, V(std::vector<int>{1, 2, 3}),
               "step.tokens: 3 token ids but the chunks hold 4 rows"),
      set_case(head, {"tokens", 2}, V(-7), "step.tokens[2]: negative token id -7"),
      set_case(head, {"tokens", 2}, V(std::string("a")),
               "step.tokens[2]: expected an unsigned integer, got str"),
      set_case(head, {"tokens"}, V(std::vector<int>{}), "step.rows: 0 rows but the chunks hold 4"),
      // result
      set_case(result_msg(), {"out"}, NIL, "result.out: expected an array, got nil"),
      set_case(result_msg(), {"out", 0, "token"}, V(-1), "result.out[0].token: negative token id"),
      set_case(result_msg(), {"out", 0, "lp"}, V(std::numeric_limits<double>::quiet_NaN()),
               "result.out[0].lp: NaN"),
      set_case(result_msg(), {"out", 0, "lp"}, V(std::numeric_limits<double>::infinity()),
               "result.out[0].lp: infinity"),
      set_case(result_msg(), {"out", 1, "pos"}, V(-3), "result.out[1].pos"),
      set_case(result_msg(), {"out", 0, "top", 1}, V(std::vector<int>{1}),
               "result.out[0].top[1]: expected [id, logprob], got 1 values"),
      set_case(result_msg(), {"out", 0, "top", 1, 1}, V(std::string("x")),
               "result.out[0].top[1][1]: expected a number, got str"),
      set_case(result_msg(), {"out", 0, "top", 1, 0}, V(int64_t(-2)),
               "result.out[0].top[1][0]: negative token id"),
      set_case(result_msg(), {"out", 0, "logits"}, V(std::vector<char>(7, 'x')),
               "result.out[0].logits: 7 bytes is not a whole number of f32"),
      set_case(result_msg(), {"out", 0, "logits"}, V(std::string("abcd")),
               "result.out[0].logits: expected a bin"),
      erase_case(result_msg(), {"out", 1, "top"}, "result.out[1].top: missing"),
      erase_case(result_msg(), {"epoch"}, "result.epoch: missing"),
      // stage control
      set_case(register_msg(), {"compute"}, V(-1.0), "register.compute: must be >= 0"),
      set_case(register_msg(), {"compute"}, V(std::numeric_limits<double>::quiet_NaN()),
               "register.compute: NaN"),
      set_case(register_msg(), {"threads"}, V(uint64_t(1) << 32),
               "register.threads: value 4294967296 out of range"),
      set_case(register_msg(), {"node"}, V(5),
               "register.node: expected a str, got unsigned integer"),
      set_case(register_msg(), {"host"}, V(std::vector<char>{'h'}),
               "register.host: expected a str, got bin"),
      erase_case(register_msg(), {"model"}, "register.model: missing"),
      set_case(register_msg(), {"cores"}, V(0), "register.cores: must be > 0"),
      set_case(register_msg(), {"cores"}, V(uint64_t(1) << 32),
               "register.cores: value 4294967296 out of range"),
      erase_case(register_msg(), {"cores"}, "register.cores: missing"),
      set_case(assign_msg(), {"end"}, V(33), "assign.end: must be <= n_layers"),
      set_case(assign_msg(), {"begin"}, V(17), "assign.end: must be >= begin"),
      set_case(assign_msg(), {"begin"}, V(-1), "assign.begin: value -1 out of range"),
      set_case(assign_msg(), {"model"}, V(std::string("tiny")),
               "assign.model: expected a map, got str"),
      set_case(assign_msg(), {"model", "size"}, V(-1), "assign.model.size: negative"),
      erase_case(assign_msg(), {"model", "digest"}, "assign.model.digest: missing"),
      set_case(assign_msg(), {"dtype"}, V(7), "assign.dtype: unknown dtype 7"),
      set_case(assign_msg(), {"ctx"}, V(-1), "assign.ctx"),
      set_case(assign_msg(), {"seqs"}, V(uint64_t(1) << 32),
               "assign.seqs: value 4294967296 out of range"),
      set_case(ready_msg(), {"begin"}, V(20), "ready.end: must be >= begin"),
      set_case(ready_msg(), {"rss"}, V(std::string("1")), "ready.rss"),
      set_case(Release{1}, {"req"}, V(std::string("1")),
               "release.req: expected an unsigned integer, got str"),
      set_case(Unloop{{1}}, {"reqs", 0}, V(-1), "unloop.reqs[0]: negative value -1"),
      erase_case(Unloop{{1}}, {"reqs"}, "unloop.reqs: missing"),
      set_case(assign_msg(), {"eog", 1}, V(std::string("x")), "assign.eog[1]"),
      set_case(result_msg(), {"out", 1, "looped"}, V(1), "result.out[1].looped: expected a bool"),
      set_case(heartbeat_msg(), {"kv"}, V(-1), "heartbeat.kv: negative value -1"),
      set_case(error_msg(true), {"req"}, V(std::string("x")),
               "error.req: expected an unsigned integer"),
      erase_case(error_msg(true), {"msg"}, "error.msg: missing"),
      set_case(error_msg(false), {"ref"}, V(1), "error.ref: expected a str"),
      // client control
      set_case(generate_msg(), {"prompt"}, V(std::vector<char>{'h', 'i'}),
               "generate.prompt: expected a str, got bin"),
      set_case(generate_msg(), {"n"}, V(-1), "generate.n: negative value -1"),
      set_case(generate_msg(), {"n"}, V(uint64_t(1) << 32),
               "generate.n: value 4294967296 out of range"),
      set_case(generate_msg(), {"stop", 1}, V(5), "generate.stop[1]: expected a str"),
      set_case(generate_msg(), {"stop"}, V(std::string("x")), "generate.stop: expected an array"),
      set_case(generate_msg(), {"top_p"}, V(0.0), "generate.top_p: must be in (0, 1]"),
      set_case(generate_msg(), {"temp"}, V(-1), "generate.temp: must be >= 0"),
      set_case(generate_msg(), {"rep"}, V(-std::numeric_limits<double>::infinity()),
               "generate.rep: infinity"),
      set_case(generate_msg(), {"seed"}, V(0.5),
               "generate.seed: expected an unsigned integer, got float64"),
      erase_case(generate_msg(), {"top"}, "generate.top: missing"),
      set_case(Accepted{5, {1, 2, 3}}, {"prompt_tokens", 1}, V(int64_t(1) << 31),
               "accepted.prompt_tokens[1]: value 2147483648 out of range"),
      set_case(TokenMsg{5, 42, -0.25f, "hi"}, {"id"}, V(-1), "token.id: negative token id -1"),
      set_case(TokenMsg{5, 42, -0.25f, "hi"}, {"lp"}, V(std::numeric_limits<double>::infinity()),
               "token.lp: infinity"),
      set_case(TokenMsg{5, 42, -0.25f, "hi"}, {"lp"}, V(std::numeric_limits<double>::quiet_NaN()),
               "token.lp: NaN"),
      set_case(TokenMsg{5, 42, -0.25f, "hi"}, {"text"}, V(5), "token.text: expected a str"),
      set_case(done_msg(), {"reason"}, V(std::string("bored")),
               "done.reason: unknown reason 'bored'"),
      set_case(done_msg(), {"prompt_s"}, V(std::numeric_limits<double>::quiet_NaN()),
               "done.prompt_s: NaN"),
      set_case(done_msg(), {"decode_s"}, V(-1.0), "done.decode_s: must be >= 0"),
      set_case(done_msg(), {"tokens", 0}, V(-1), "done.tokens[0]: negative token id"),
      erase_case(Cancel{5}, {"req"}, "cancel.req: missing"),
      set_case(StatusReply{"{}"}, {"json"}, V(1), "status_reply.json: expected a str"),
      set_case(PlanQuery{"even", {1, 2}}, {"nodes", 0}, V(-1), "plan.nodes[0]: negative value -1"),
      set_case(PlanQuery{"even", {1, 2}}, {"strategy"}, NIL,
               "plan.strategy: expected a str, got nil"),
      erase_case(PlanReply{"{}"}, {"json"}, "plan_reply.json: missing"),
      // moves
      set_case(assign_msg(), {"kv", 0}, V(std::vector<int>{11}),
               "assign.kv[0]: expected [req, n_pos], got 1 values"),
      set_case(assign_msg(), {"kv", 1, 1}, V(4097), "assign.kv[1][1]: value 4097 out of range"),
      set_case(assign_msg(), {"kv", 0, 1}, V(0), "assign.kv[0][1]: value 0 out of range"),
      set_case(ready_msg(), {"missing", 1}, V(-2), "ready.missing[1]: negative value -2"),
      set_case(kv_part_msg(), {"n"}, V(25), "kv.n: value 25 out of range"),
      set_case(kv_part_msg(), {"pos"}, V(41), "kv.pos: value 41 out of range"),
      set_case(kv_part_msg(), {"layer"}, V(-1), "kv.layer: value -1 out of range"),
      set_case(kv_part_msg(), {"values"}, V(std::vector<char>{'a', 'b'}),
               "kv.values: 2 bytes of values for 8 bytes of keys"),
      set_case(kv_part_msg(), {"keys"}, V(std::string("abcdefgh")),
               "kv.keys: expected a bin, got str"),
      set_case(Control{"set_budget", "n", 1, ""}, {"op"}, V(std::string("explode")),
               "control.op: unknown operation 'explode'"),
      erase_case(Fetch{"abc", 1, 2}, {"size"}, "fetch.size: missing"),
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const FieldCase& c = cases[i];
    Doc d(c.base);
    c.edit(d);
    const std::string bytes = d.pack();
    const std::string msg = wire_error([&] { c.decode(parse(bytes)); });
    EXPECT_CONTAINS(msg, c.expect) << " (case " << i << ")";
    EXPECT_EQ(msg.rfind("wire: ", 0), 0u) << msg;
  }
}

TEST(WireHostile, NumbersMayBeIntegersWhereFloatsAreExpected) {
  Doc d(encode(generate_msg()));
  d.set_v({"temp"}, 1);
  d.set_v({"top_p"}, 1);
  d.set_v({"rep"}, 2);
  Generate g;
  decode(parse(d.pack()), g);
  EXPECT_EQ(g.temp, 1.0f);
  EXPECT_EQ(g.top_p, 1.0f);
  EXPECT_EQ(g.rep, 2.0f);
  Doc t(encode(TokenMsg{1, 2, 0, ""}));
  t.set_v({"lp"}, -std::numeric_limits<double>::infinity());  // log(0) is a valid log-probability
  TokenMsg tm;
  decode(parse(t.pack()), tm);
  EXPECT_TRUE(std::isinf(tm.lp));
}

// --- sizes and allocations -------------------------------------------------------------------

TEST(WireHostile, AllocationTrackerWorks) {
  // Guards the allocation checks below against a tracker that silently sees nothing.
  const size_t peak = peak_allocation([] {
    std::vector<char> v(32u << 20, 'x');
    volatile char c = v[12345];
    (void)c;
  });
  EXPECT_GE(peak, size_t{32} << 20);
}

TEST(WireHostile, HugeDeclaredLengths) {
  const std::string tiny = "abc";
  std::vector<std::pair<std::string, std::string>> cases = {
      {"top-level bin32", "\xc6" + be32(0xffffffffu) + tiny},
      {"top-level str32", "\xdb" + be32(0xffffffffu) + tiny},
      {"top-level array32", "\xdd" + be32(0xffffffffu) + tiny},
      {"top-level map32", "\xdf" + be32(0xffffffffu) + tiny},
      {"top-level ext32", "\xc9" + be32(0xffffffffu) + "\x01" + tiny},
      {"step.data bin32", header("step", 1) +
                              "\xa4"
                              "data" +
                              "\xc6" + be32(0xffffffffu) + tiny},
      {"step.seqs array32", header("step", 1) +
                                "\xa4"
                                "seqs" +
                                "\xdd" + be32(0xffffffffu) + tiny},
      {"step.tokens array16", header("step", 1) +
                                  "\xa6"
                                  "tokens" +
                                  "\xdc\xff\xff" + tiny},
      {"key str32", header("step", 1) + "\xdb" + be32(0xfffffff0u) + tiny},
      {"map32 value", header("plan", 1) + "\xa1x" + "\xdf" + be32(0xffffffffu) + tiny},
      {"message map32", "\xdf" + be32(0xffffffffu) + header("step", 0).substr(1)},
      {"ext8 past the end", header("bye", 1) + "\xa1x" + "\xc7\xff\x01" + tiny},
      {"float64 cut short", header("bye", 1) + "\xa1x" + "\xcb\x01\x02"},
  };
  // Arrays within max_array each, nested: each header claims a million elements in 5 bytes.
  std::string nested = header("plan", 1) + "\xa1x";
  for (int i = 0; i < 12; ++i) nested += "\xdd" + be32(1000000);
  cases.push_back({"nested million-element arrays", nested});

  Limits permissive;  // even when the configured limits allow everything
  permissive.max_array = std::numeric_limits<size_t>::max();
  permissive.max_string = std::numeric_limits<size_t>::max();
  permissive.max_objects = std::numeric_limits<size_t>::max();
  for (const auto& [name, bytes] : cases) {
    for (const Limits& l : {Limits{}, permissive}) {
      std::string msg;
      const size_t peak = peak_allocation([&] { msg = wire_error([&] { parse(bytes, l); }); });
      EXPECT_FALSE(msg.empty()) << name;
      EXPECT_LT(peak, size_t{64} << 10) << name << ": allocated " << peak << " bytes";
    }
  }
}

TEST(WireHostile, OversizedInput) {
  Step s = activation_step(DType::F32);
  const std::string b = encode(s);
  Limits l;
  l.max_message_bytes = b.size() - 1;
  EXPECT_CONTAINS(wire_error([&] { parse(b, l); }), "exceeds the limit");
  l.max_message_bytes = b.size();
  EXPECT_NO_THROW(parse(b, l));

  // The default limit: a step just over 64 MiB is refused before any parsing.
  Step big;
  Chunk c;
  c.n = 1;
  big.seqs = {c};
  big.rows = 1;
  big.dim = (64u << 20) / 4;
  big.data.assign(size_t(big.dim) * 4, '\0');
  const std::string bb = encode(big);
  EXPECT_GT(bb.size(), Limits{}.max_message_bytes);
  EXPECT_CONTAINS(wire_error([&] { parse(bb); }), "exceeds the limit");
}

TEST(WireHostile, StringArrayAndObjectLimits) {
  Limits l;
  l.max_string = 16;
  Generate g = generate_msg();
  g.prompt = std::string(16, 'p');
  round_trip(g, l);
  g.prompt = std::string(17, 'p');
  EXPECT_CONTAINS(wire_error([&] { parse(encode(g), l); }),
                  "str of 17 bytes exceeds the limit of 16");

  Limits a;
  a.max_array = 8;
  round_trip(Accepted{1, {1, 2, 3, 4, 5, 6, 7, 8}}, a);
  EXPECT_CONTAINS(wire_error([&] {
                    parse(encode(Accepted{1, {1, 2, 3, 4, 5, 6, 7, 8, 9}}), a);
                  }),
                  "array of 9 entries exceeds the limit of 8");
  Doc d(encode(Cancel{1}));
  std::string m = "\x8f";  // a map of 15 entries in an unknown key
  for (int i = 0; i < 15; ++i) m += std::string("\xa1") + char('a' + i) + "\x01";
  d.set({"x"}, d.raw(m));
  wire_error([&] { parse(d.pack(), a); });

  Limits o;
  o.max_objects = 100;
  std::vector<int32_t> many(200, 1);
  EXPECT_CONTAINS(wire_error([&] { parse(encode(Accepted{1, many}), o); }), "more than 100 values");
}

TEST(WireHostile, DeepNesting) {
  for (size_t depth : {16u, 17u, 100u, 100000u}) {
    std::string b = header("bye", 1) + "\xa1x";
    b += std::string(depth, '\x91') + "\x01";
    std::string msg;
    const size_t peak = peak_allocation([&] { msg = wire_error([&] { parse(b); }); });
    EXPECT_CONTAINS(msg, "nesting deeper than 16");
    EXPECT_LT(peak, size_t{64} << 10);
  }
  std::string ok = header("bye", 1) + "\xa1x" + std::string(15, '\x91') + "\x01";  // depth 16
  Bye bye;
  decode(parse(ok), bye);
  // Maps nest too.
  std::string maps = header("bye", 1) + "\xa1x";
  for (int i = 0; i < 50; ++i) maps += "\x81\xa1k";
  maps += "\x01";
  wire_error([&] { parse(maps); });
}

// --- fuzzing ---------------------------------------------------------------------------------

// Parses and decodes bytes; true when accepted, false when rejected with WireError. Anything
// else (another exception type) fails the test; a crash fails it too.
bool accepts(const std::string& bytes, size_t case_no) {
  try {
    const Envelope e = parse(bytes);
    decode_any(e);  // throws WireError only from the deliberate wrong-type decode
    ADD_FAILURE() << "case " << case_no << ": decoding as the wrong type did not throw";
    return true;
  } catch (const WireError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("wire: ", 0), 0u) << what;
    return what.find("' message, got '") != std::string::npos;  // the wrong-type decode: accepted
  } catch (const std::exception& e) {
    ADD_FAILURE() << "case " << case_no << ": non-WireError exception: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "case " << case_no << ": non-std exception";
  }
  return false;
}

TEST(WireFuzz, MutatedEncodings) {
  const std::vector<std::string> base = samples();
  std::mt19937_64 rng(20240611);
  const auto pick = [&](size_t n) { return n ? size_t(rng() % n) : size_t{0}; };
  const unsigned char interesting[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                       0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6,
                                       0xc7, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd8, 0xd9,
                                       0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
  size_t accepted = 0, rejected = 0, peak = 0;
  const int kCases = 20000;
  for (int i = 0; i < kCases; ++i) {
    std::string b = base[pick(base.size())];
    const int mutations = 1 + int(pick(4));
    for (int k = 0; k < mutations; ++k) {
      switch (pick(7)) {
        case 0:  // bit flip
          if (!b.empty()) b[pick(b.size())] ^= char(1u << pick(8));
          break;
        case 1:  // interesting byte
          if (!b.empty()) b[pick(b.size())] = char(interesting[pick(sizeof interesting)]);
          break;
        case 2:  // truncation
          b.resize(pick(b.size() + 1));
          break;
        case 3: {  // insertion of random bytes
          std::string ins(1 + pick(8), '\0');
          for (char& c : ins) c = char(rng());
          b.insert(pick(b.size() + 1), ins);
          break;
        }
        case 4: {  // deletion of a range
          if (b.empty()) break;
          const size_t at = pick(b.size());
          b.erase(at, 1 + pick(std::min<size_t>(8, b.size() - at)));
          break;
        }
        case 5: {  // a large length: four 0xff bytes
          if (b.size() < 4) break;
          const size_t at = pick(b.size() - 3);
          for (size_t j = 0; j < 4; ++j) b[at + j] = '\xff';
          break;
        }
        case 6: {  // duplicate a slice
          if (b.empty()) break;
          const size_t at = pick(b.size());
          const std::string slice = b.substr(at, 1 + pick(16));
          b.insert(pick(b.size() + 1), slice);
          break;
        }
      }
    }
    bool ok = false;
    peak = std::max(peak, peak_allocation([&] { ok = accepts(b, size_t(i)); }));
    (ok ? accepted : rejected) += 1;
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "stopping the fuzz loop at case " << i;
      break;
    }
  }
  // Both outcomes occur, so the loop exercises the decoders as well as the parser.
  EXPECT_GT(accepted, 200u);
  EXPECT_GT(rejected, 2000u);
  EXPECT_LT(peak, size_t{1} << 20) << "largest allocation while fuzzing";
  std::cout << "fuzz: " << accepted << " accepted, " << rejected << " rejected, largest "
            << "allocation " << peak << " bytes\n";
}

// Every value in a decoded message, with the map holding it (for erasing keys).
void collect(msgpack::object& o, msgpack::object* map, std::vector<msgpack::object*>& vals,
             std::vector<std::pair<msgpack::object*, uint32_t>>& keys) {
  if (map) vals.push_back(&o);
  if (o.type == msgpack::type::ARRAY) {
    for (uint32_t i = 0; i < o.via.array.size; ++i) collect(o.via.array.ptr[i], &o, vals, keys);
  } else if (o.type == msgpack::type::MAP) {
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      keys.emplace_back(&o, i);
      collect(o.via.map.ptr[i].val, &o, vals, keys);
    }
  }
}

// Structure-aware: replaces values with others of every type and edge value, drops and adds
// keys, so the decoders' own checks (not only the parser's) meet hostile input.
TEST(WireFuzz, MutatedFields) {
  const std::vector<std::string> base = samples();
  std::mt19937_64 rng(99);
  const auto pick = [&](size_t n) { return n ? size_t(rng() % n) : size_t{0}; };
  size_t accepted = 0, rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    Doc d(base[pick(base.size())]);
    const int mutations = 1 + int(pick(3));
    for (int k = 0; k < mutations; ++k) {
      std::vector<msgpack::object*> vals;
      std::vector<std::pair<msgpack::object*, uint32_t>> keys;
      collect(d.root, nullptr, vals, keys);
      const size_t what = pick(10);
      if (what == 0 && !keys.empty()) {  // drop a key
        auto [map, idx] = keys[pick(keys.size())];
        for (uint32_t j = idx; j + 1 < map->via.map.size; ++j) {
          map->via.map.ptr[j] = map->via.map.ptr[j + 1];
        }
        --map->via.map.size;
        continue;
      }
      if (what == 1) {  // add an unknown key
        d.append(d.root, "zz", d.make(int(pick(3))));
        continue;
      }
      if (vals.empty()) continue;
      msgpack::object& v = *vals[pick(vals.size())];
      switch (pick(20)) {
        case 0:
          v = msgpack::object();
          break;
        case 1:
          v = d.make(true);
          break;
        case 2:
          v = d.make(0);
          break;
        case 3:
          v = d.make(-1);
          break;
        case 4:
          v = d.make(int64_t(1) << 31);
          break;
        case 5:
          v = d.make(uint64_t(1) << 32);
          break;
        case 6:
          v = d.make(std::numeric_limits<uint64_t>::max());
          break;
        case 7:
          v = d.make(std::numeric_limits<int64_t>::min());
          break;
        case 8:
          v = d.make(std::numeric_limits<double>::quiet_NaN());
          break;
        case 9:
          v = d.make(std::numeric_limits<double>::infinity());
          break;
        case 10:
          v = d.make(-std::numeric_limits<double>::infinity());
          break;
        case 11:
          v = d.make(1.5);
          break;
        case 12:
          v = d.make(std::string(""));
          break;
        case 13:
          v = d.make(std::string("stop"));
          break;
        case 14:
          v = d.make(std::vector<char>(pick(12), 'b'));
          break;
        case 15:
          v = d.make(std::vector<int>{});
          break;
        case 16:
          v = d.make(std::vector<int>{1, 2});
          break;
        case 17:
          v = d.make(std::map<std::string, int>{{"n", 1}});
          break;
        case 18:
          v = d.make(uint64_t(pick(6)));
          break;
        case 19:
          v = d.raw(f64_bytes(double(pick(3))));
          break;
      }
    }
    (accepts(d.pack(), size_t(i)) ? accepted : rejected) += 1;
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "stopping at case " << i;
      break;
    }
  }
  EXPECT_GT(accepted, 100u);
  EXPECT_GT(rejected, 1000u);
  std::cout << "field fuzz: " << accepted << " accepted, " << rejected << " rejected\n";
}

TEST(WireFuzz, RandomBytes) {
  std::mt19937_64 rng(77);
  for (int i = 0; i < 5000; ++i) {
    std::string b(rng() % 200, '\0');
    for (char& c : b) c = char(rng());
    if (i % 2 && !b.empty()) b[0] = char(0x80 | (rng() % 16));  // start like a map
    accepts(b, size_t(i));
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
