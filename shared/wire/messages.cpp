#include "wire/messages.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <string_view>

#include "quant/f16.hpp"
#include "wire/reader.hpp"

namespace lb::wire {

using detail::fail;
using detail::Map;
using detail::Path;

// --- dtype and activations -------------------------------------------------------------------

size_t dtype_bytes(DType d) {
  switch (d) {
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
  }
  throw Error("unknown dtype " + std::to_string(static_cast<int>(d)));
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32:
      return "f32";
    case DType::F16:
      return "f16";
  }
  return "unknown";
}

DType parse_dtype(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  throw Error("unknown dtype '" + name + "' (expected f32 or f16)");
}

namespace {

constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

template <typename U>
void store_le(char* dst, U v) {
  if constexpr (kLittleEndian) {
    std::memcpy(dst, &v, sizeof v);
  } else {
    for (size_t i = 0; i < sizeof v; ++i) dst[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
  }
}

template <typename U>
U load_le(const char* src) {
  U v = 0;
  if constexpr (kLittleEndian) {
    std::memcpy(&v, src, sizeof v);
  } else {
    for (size_t i = 0; i < sizeof v; ++i) {
      v = static_cast<U>(v | (static_cast<U>(static_cast<unsigned char>(src[i])) << (8 * i)));
    }
  }
  return v;
}

}  // namespace

std::string pack_activations(const float* x, size_t n, DType d) {
  const size_t w = dtype_bytes(d);
  if (n > std::numeric_limits<size_t>::max() / w)
    throw WireError("wire: activation count overflow");
  std::string out(n * w, '\0');
  char* dst = out.data();
  if (d == DType::F32) {
    if constexpr (kLittleEndian) {
      if (n) std::memcpy(dst, x, n * 4);
    } else {
      for (size_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &x[i], 4);
        store_le(dst + 4 * i, bits);
      }
    }
  } else {
    for (size_t i = 0; i < n; ++i) store_le(dst + 2 * i, fp32_to_fp16(x[i]));
  }
  return out;
}

void unpack_activations(const std::string& bytes, DType d, float* out, size_t n) {
  const size_t w = dtype_bytes(d);
  if (n > std::numeric_limits<size_t>::max() / w || bytes.size() != n * w) {
    throw WireError("wire: activation payload of " + std::to_string(bytes.size()) +
                    " bytes does not hold " + std::to_string(n) + " " + dtype_name(d) + " values");
  }
  const char* src = bytes.data();
  if (d == DType::F32) {
    if constexpr (kLittleEndian) {
      if (n) std::memcpy(out, src, n * 4);
    } else {
      for (size_t i = 0; i < n; ++i) {
        const uint32_t bits = load_le<uint32_t>(src + 4 * i);
        std::memcpy(&out[i], &bits, 4);
      }
    }
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(load_le<uint16_t>(src + 2 * i));
  }
}

std::string pack_halves(const uint16_t* x, size_t n) {
  if (n > std::numeric_limits<size_t>::max() / 2) throw WireError("wire: f16 count overflow");
  std::string out(n * 2, '\0');
  if constexpr (kLittleEndian) {
    if (n) std::memcpy(out.data(), x, n * 2);
  } else {
    for (size_t i = 0; i < n; ++i) store_le(out.data() + 2 * i, x[i]);
  }
  return out;
}

void unpack_halves(const std::string& bytes, uint16_t* out, size_t n) {
  if (n > std::numeric_limits<size_t>::max() / 2 || bytes.size() != n * 2) {
    throw WireError("wire: payload of " + std::to_string(bytes.size()) + " bytes does not hold " +
                    std::to_string(n) + " f16 values");
  }
  if constexpr (kLittleEndian) {
    if (n) std::memcpy(out, bytes.data(), n * 2);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = load_le<uint16_t>(bytes.data() + 2 * i);
  }
}

// --- envelope ----------------------------------------------------------------------------------

namespace {

constexpr const char* kTypes[] = {
    "step",     "result",       "register", "assign",     "ready",   "release",     "heartbeat",
    "error",    "bye",          "generate", "accepted",   "token",   "done",        "cancel",
    "status",   "status_reply", "plan",     "plan_reply", "control", "plan_change", "budget",
    "pressure", "fetch",        "chunk",    "kv",         "unloop"};

// A type string fit for an error message: printable ASCII, at most 40 characters.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 40) out += "...";
  return out;
}

}  // namespace

Envelope Envelope::parse(const void* data, size_t size, const Limits& limits) {
  if (size > limits.max_message_bytes) {
    throw WireError("wire: message of " + std::to_string(size) + " bytes exceeds the limit of " +
                    std::to_string(limits.max_message_bytes) + " bytes");
  }
  if (size == 0 || !data) throw WireError("wire: empty message");
  const auto* bytes = static_cast<const unsigned char*>(data);
  detail::check_structure(bytes, size, limits);

  auto body = std::make_shared<Body>();
  try {
    const msgpack::unpack_limit lim(limits.max_array, limits.max_array, limits.max_string,
                                    limits.max_message_bytes, limits.max_string, limits.max_depth);
    size_t off = 0;
    body->handle =
        msgpack::unpack(reinterpret_cast<const char*>(bytes), size, off, nullptr, nullptr, lim);
    if (off != size) throw WireError("wire: malformed message: trailing bytes");
  } catch (const WireError&) {
    throw;
  } catch (const std::exception& e) {
    throw WireError(std::string("wire: malformed message: ") + e.what());
  }

  const msgpack::object& root = body->handle.get();
  if (root.type != msgpack::type::MAP) {
    throw WireError(std::string("wire: a message must be a map, got ") + detail::type_name(root));
  }
  const Path rp{nullptr, "message", 0};
  const Map m(root, rp);
  const msgpack::object* v = m.find("v");
  if (!v) throw WireError("wire: message has no protocol version (key 'v')");
  if (v->type != msgpack::type::POSITIVE_INTEGER && v->type != msgpack::type::NEGATIVE_INTEGER) {
    throw WireError(std::string("wire: protocol version must be an unsigned integer, got ") +
                    detail::type_name(*v));
  }
  if (v->type == msgpack::type::NEGATIVE_INTEGER || v->via.u64 != kVersion) {
    const std::string got = v->type == msgpack::type::NEGATIVE_INTEGER ? std::to_string(v->via.i64)
                                                                       : std::to_string(v->via.u64);
    throw WireError("wire: protocol version " + got + " received, this build speaks version " +
                    std::to_string(kVersion));
  }
  const msgpack::object* t = m.find("t");
  if (!t) throw WireError("wire: message has no type (key 't')");
  if (t->type != msgpack::type::STR) {
    throw WireError(std::string("wire: message type must be a str, got ") + detail::type_name(*t));
  }
  const std::string_view type(t->via.str.ptr, t->via.str.size);
  bool known = false;
  for (const char* k : kTypes) known = known || type == k;
  if (!known) throw WireError("wire: unknown message type '" + printable(type) + "'");

  Envelope e;
  e.type_ = std::string(type);
  e.body_ = std::move(body);
  return e;
}

// --- encoding ----------------------------------------------------------------------------------

namespace {

struct StrBuf {
  std::string s;
  void write(const char* p, size_t n) { s.append(p, n); }
};

// Writes a message map: the header keys, then exactly `fields` key/value pairs.
class Writer {
 public:
  Writer(const char* type, uint32_t fields, size_t reserve = 64) : pk_(buf_) {
    buf_.s.reserve(reserve);
    pk_.pack_map(fields + 2);
    key("v");
    pk_.pack_uint32(kVersion);
    key("t");
    str(type);
  }
  msgpack::packer<StrBuf>& pk() { return pk_; }
  void key(std::string_view k) { str(k); }
  void str(std::string_view s) {
    pk_.pack_str(static_cast<uint32_t>(s.size()));
    pk_.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  void bin(std::string_view s) {
    pk_.pack_bin(static_cast<uint32_t>(s.size()));
    pk_.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  void u64(std::string_view k, uint64_t v) {
    key(k);
    pk_.pack_uint64(v);
  }
  void i64(std::string_view k, int64_t v) {
    key(k);
    pk_.pack_int64(v);
  }
  // Floats are written by hand: msgpack-c's pack_float/pack_double turn integral values into
  // integers (and -0.0 into 0), while the protocol keeps float fields floats.
  void put_f32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    char b[5] = {static_cast<char>(0xca)};
    for (int i = 0; i < 4; ++i) b[1 + i] = static_cast<char>(bits >> (24 - 8 * i));
    buf_.write(b, sizeof b);
  }
  void put_f64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    char b[9] = {static_cast<char>(0xcb)};
    for (int i = 0; i < 8; ++i) b[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    buf_.write(b, sizeof b);
  }
  void f32(std::string_view k, float v) {
    key(k);
    put_f32(v);
  }
  void f64(std::string_view k, double v) {
    key(k);
    put_f64(v);
  }
  void boolean(std::string_view k, bool v) {
    key(k);
    if (v) {
      pk_.pack_true();
    } else {
      pk_.pack_false();
    }
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    str(v);
  }
  void bin(std::string_view k, std::string_view v) {
    key(k);
    bin(v);
  }
  void u64s(std::string_view k, const std::vector<uint64_t>& v) {
    key(k);
    pk_.pack_array(static_cast<uint32_t>(v.size()));
    for (uint64_t x : v) pk_.pack_uint64(x);
  }
  void tokens(std::string_view k, const std::vector<int32_t>& v) {
    key(k);
    pk_.pack_array(static_cast<uint32_t>(v.size()));
    for (int32_t t : v) pk_.pack_int32(t);
  }
  std::string take() { return std::move(buf_.s); }

 private:
  StrBuf buf_;
  msgpack::packer<StrBuf> pk_;
};

void write_sample(Writer& w, const SampleSpec& s) {
  auto& pk = w.pk();
  pk.pack_map(10);
  w.f32("temp", s.temp);
  w.i64("top_k", s.top_k);
  w.f32("top_p", s.top_p);
  w.f32("min_p", s.min_p);
  w.f32("rep", s.rep);
  w.u64("seed", s.seed);
  w.u64("draw", s.draw);
  w.tokens("recent", s.recent);
  w.u64("top", s.top);
  w.boolean("logits", s.logits);
}

}  // namespace

std::string encode(const Step& m) {
  Writer w(type_of<Step>(), 8, 96 + m.data.size() + 5 * m.tokens.size() + 128 * m.seqs.size());
  w.u64("epoch", m.epoch);
  w.u64("id", m.id);
  w.key("seqs");
  w.pk().pack_array(static_cast<uint32_t>(m.seqs.size()));
  for (const Chunk& c : m.seqs) {
    w.pk().pack_map(5);
    w.u64("req", c.req);
    w.i64("pos", c.pos);
    w.u64("n", c.n);
    w.key("sample");
    if (c.sample) {
      write_sample(w, *c.sample);
    } else {
      w.pk().pack_nil();
    }
    w.u64("more", c.more);
  }
  w.tokens("tokens", m.tokens);
  w.u64("dtype", static_cast<uint64_t>(m.dtype));
  w.u64("rows", m.rows);
  w.u64("dim", m.dim);
  w.bin("data", m.data);
  return w.take();
}

std::string encode(const Result& m) {
  size_t reserve = 64;
  for (const Sampled& s : m.out) reserve += 64 + s.logits.size() + 16 * s.top.size();
  Writer w(type_of<Result>(), 3, reserve);
  w.u64("epoch", m.epoch);
  w.u64("id", m.id);
  w.key("out");
  auto& pk = w.pk();
  pk.pack_array(static_cast<uint32_t>(m.out.size()));
  for (const Sampled& s : m.out) {
    pk.pack_map(s.logits.empty() ? 6 : 7);
    w.u64("req", s.req);
    w.i64("pos", s.pos);
    w.i64("token", s.token);
    w.f32("lp", s.lp);
    w.key("top");
    pk.pack_array(static_cast<uint32_t>(s.top.size()));
    for (const auto& [id, lp] : s.top) {
      pk.pack_array(2);
      pk.pack_int32(id);
      w.put_f32(lp);
    }
    w.boolean("looped", s.looped);
    if (!s.logits.empty()) w.bin("logits", s.logits);
  }
  return w.take();
}

std::string encode(const Register& m) {
  Writer w(type_of<Register>(), 10);
  w.str("node", m.node);
  w.i64("order", m.order);
  w.str("host", m.host);
  w.u64("budget", m.budget);
  w.f64("high_water", m.high_water);
  w.f64("compute", m.compute);
  w.u64("threads", m.threads);
  w.u64("cores", m.cores);
  w.str("data", m.data);
  w.str("model", m.model);
  return w.take();
}

std::string encode(const Assign& m) {
  Writer w(type_of<Assign>(), 13, 256 + 20 * m.kv.size() + 5 * m.eog.size());
  w.u64("epoch", m.epoch);
  w.i64("begin", m.begin);
  w.i64("end", m.end);
  w.i64("n_layers", m.n_layers);
  w.key("model");
  w.pk().pack_map(5);
  w.str("name", m.model.name);
  w.str("path", m.model.path);
  w.u64("size", m.model.size);
  w.str("digest", m.model.digest);
  w.u64("header", m.model.header);
  w.str("upstream", m.upstream);
  w.str("downstream", m.downstream);
  w.i64("ctx", m.ctx);
  w.u64("seqs", m.seqs);
  w.u64("dtype", static_cast<uint64_t>(m.dtype));
  w.key("kv");
  w.pk().pack_array(static_cast<uint32_t>(m.kv.size()));
  for (const KvHold& h : m.kv) {
    w.pk().pack_array(2);
    w.pk().pack_uint64(h.req);
    w.pk().pack_int64(h.n_pos);
  }
  w.str("head", m.head);
  w.tokens("eog", m.eog);
  return w.take();
}

std::string encode(const Ready& m) {
  Writer w(type_of<Ready>(), 6, 64 + 9 * m.missing.size());
  w.u64("epoch", m.epoch);
  w.i64("begin", m.begin);
  w.i64("end", m.end);
  w.u64("weights", m.weights);
  w.u64("rss", m.rss);
  w.u64s("missing", m.missing);
  return w.take();
}

std::string encode(const KvPart& m) {
  Writer w(type_of<KvPart>(), 8, 128 + m.k.size() + m.v.size());
  w.u64("epoch", m.epoch);
  w.u64("req", m.req);
  w.i64("layer", m.layer);
  w.i64("pos", m.pos);
  w.i64("n", m.n);
  w.i64("total", m.total);
  w.key("keys");
  w.bin(m.k);
  w.key("values");
  w.bin(m.v);
  return w.take();
}

std::string encode(const Release& m) {
  Writer w(type_of<Release>(), 1);
  w.u64("req", m.req);
  return w.take();
}

std::string encode(const Unloop& m) {
  Writer w(type_of<Unloop>(), 1, 16 + 9 * m.reqs.size());
  w.u64s("reqs", m.reqs);
  return w.take();
}

std::string encode(const Heartbeat& m) {
  Writer w(type_of<Heartbeat>(), 9);
  w.str("node", m.node);
  w.u64("rss", m.rss);
  w.u64("weights", m.weights);
  w.u64("kv", m.kv);
  w.u64("budget", m.budget);
  w.u64("batches", m.batches);
  w.f64("overhead_us", m.overhead_us);
  w.u64("cg_limit", m.cg_limit);
  w.u64("cg_usage", m.cg_usage);
  return w.take();
}

std::string encode(const ErrorMsg& m) {
  Writer w(type_of<ErrorMsg>(), 2 + (m.req ? 1 : 0) + (m.epoch ? 1 : 0));
  w.str("msg", m.msg);
  w.str("ref", m.ref);
  if (m.req) w.u64("req", *m.req);
  if (m.epoch) w.u64("epoch", *m.epoch);
  return w.take();
}

std::string encode(const Bye&) {
  return Writer(type_of<Bye>(), 0).take();
}

std::string encode(const Generate& m) {
  Writer w(type_of<Generate>(), 10, 128 + m.prompt.size());
  w.str("prompt", m.prompt);
  w.u64("n", m.n);
  w.f32("temp", m.temp);
  w.i64("top_k", m.top_k);
  w.f32("top_p", m.top_p);
  w.f32("min_p", m.min_p);
  w.f32("rep", m.rep);
  w.u64("seed", m.seed);
  w.key("stop");
  w.pk().pack_array(static_cast<uint32_t>(m.stop.size()));
  for (const std::string& s : m.stop) w.str(std::string_view(s));
  w.u64("top", m.top);
  return w.take();
}

std::string encode(const Accepted& m) {
  Writer w(type_of<Accepted>(), 2, 64 + 5 * m.prompt_tokens.size());
  w.u64("req", m.req);
  w.tokens("prompt_tokens", m.prompt_tokens);
  return w.take();
}

std::string encode(const TokenMsg& m) {
  Writer w(type_of<TokenMsg>(), 4);
  w.u64("req", m.req);
  w.i64("id", m.id);
  w.f32("lp", m.lp);
  w.str("text", m.text);
  return w.take();
}

std::string encode(const Done& m) {
  Writer w(type_of<Done>(), 7, 128 + m.text.size() + 5 * m.tokens.size());
  w.u64("req", m.req);
  w.str("reason", m.reason);
  w.tokens("tokens", m.tokens);
  w.str("text", m.text);
  w.f64("prompt_s", m.prompt_s);
  w.f64("decode_s", m.decode_s);
  w.u64("decode_steps", m.decode_steps);
  return w.take();
}

std::string encode(const Cancel& m) {
  Writer w(type_of<Cancel>(), 1);
  w.u64("req", m.req);
  return w.take();
}

std::string encode(const StatusQuery&) {
  return Writer(type_of<StatusQuery>(), 0).take();
}

std::string encode(const StatusReply& m) {
  Writer w(type_of<StatusReply>(), 1, 64 + m.json.size());
  w.str("json", m.json);
  return w.take();
}

std::string encode(const PlanQuery& m) {
  Writer w(type_of<PlanQuery>(), 2, 64 + 9 * m.nodes.size());
  w.str("strategy", m.strategy);
  w.u64s("nodes", m.nodes);
  return w.take();
}

std::string encode(const PlanReply& m) {
  Writer w(type_of<PlanReply>(), 1, 64 + m.json.size());
  w.str("json", m.json);
  return w.take();
}

Chunk next_chunk(const Chunk& c, int32_t token) {
  Chunk next = c;
  next.pos = c.pos + c.n;
  next.n = 1;
  next.more = c.more > 0 ? c.more - 1 : 0;
  if (next.sample) {
    SampleSpec& s = *next.sample;
    ++s.draw;
    if (s.rep != 1.0f) {
      s.recent.push_back(token);
      if (s.recent.size() > kRecentTokens)
        s.recent.erase(s.recent.begin(), s.recent.end() - long(kRecentTokens));
    }
  }
  return next;
}

std::string chunk_hash(const std::string& data) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string encode(const Fetch& m) {
  Writer w(type_of<Fetch>(), 3);
  w.str("digest", m.digest);
  w.u64("offset", m.offset);
  w.u64("size", m.size);
  return w.take();
}

std::string encode(const ModelChunk& m) {
  Writer w(type_of<ModelChunk>(), 4, 128 + m.data.size());
  w.str("digest", m.digest);
  w.u64("offset", m.offset);
  w.bin("data", m.data);
  w.str("hash", m.hash);
  return w.take();
}

std::string encode(const Control& m) {
  Writer w(type_of<Control>(), 4);
  w.str("op", m.op);
  w.str("node", m.node);
  w.u64("budget", m.budget);
  w.str("strategy", m.strategy);
  return w.take();
}

std::string encode(const PlanChange& m) {
  Writer w(type_of<PlanChange>(), 2, 64 + m.old_plan.size() + m.new_plan.size());
  w.str("old", m.old_plan);
  w.str("new", m.new_plan);
  return w.take();
}

std::string encode(const Budget& m) {
  Writer w(type_of<Budget>(), 1);
  w.u64("budget", m.budget);
  return w.take();
}

std::string encode(const Pressure& m) {
  Writer w(type_of<Pressure>(), 5);
  w.str("node", m.node);
  w.u64("rss", m.rss);
  w.u64("weights", m.weights);
  w.u64("kv", m.kv);
  w.u64("budget", m.budget);
  return w.take();
}

// --- decoding ----------------------------------------------------------------------------------

namespace {

// The body of e as a map, after checking e carries `type`; root names the type in errors.
Map open(const Envelope& e, const char* type, const Path& root) {
  if (!e.body())
    throw WireError(std::string("wire: decoding '") + type + "' from an empty envelope");
  if (e.type() != type) {
    throw WireError(std::string("wire: expected a '") + type + "' message, got '" + e.type() + "'");
  }
  return Map(e.body()->handle.get(), root);
}

void check(bool ok, const Map& m, const char* key, const std::string& what) {
  if (!ok) fail(m.path().field(key), what);
}

// Sampling parameters, in the ranges lb::validate(SamplingParams) accepts.
struct SamplingFields {
  float temp, top_p, min_p, rep;
  int32_t top_k;
};

SamplingFields read_sampling(const Map& m) {
  SamplingFields f;
  f.temp = m.f32("temp");
  check(f.temp >= 0, m, "temp", "must be >= 0");
  f.top_k = m.i32("top_k");
  check(f.top_k >= 0, m, "top_k", "must be >= 0");
  f.top_p = m.f32("top_p");
  check(f.top_p > 0 && f.top_p <= 1, m, "top_p", "must be in (0, 1]");
  f.min_p = m.f32("min_p");
  check(f.min_p >= 0 && f.min_p <= 1, m, "min_p", "must be in [0, 1]");
  f.rep = m.f32("rep");
  check(f.rep > 0, m, "rep", "must be > 0");
  return f;
}

SampleSpec read_sample(const msgpack::object& o, const Path& p) {
  const Map m(o, p);
  SampleSpec s;
  const SamplingFields f = read_sampling(m);
  s.temp = f.temp;
  s.top_k = f.top_k;
  s.top_p = f.top_p;
  s.min_p = f.min_p;
  s.rep = f.rep;
  s.seed = m.u64("seed");
  s.draw = m.u64("draw");
  s.recent = m.tokens("recent");
  s.top = m.u32("top");
  s.logits = m.boolean("logits");
  return s;
}

Chunk read_chunk(const msgpack::object& o, const Path& p) {
  const Map m(o, p);
  Chunk c;
  c.req = m.u64("req");
  c.pos = m.i64("pos", 0);
  c.n = m.u32("n");
  check(c.n >= 1, m, "n", "must be at least 1");
  check(c.pos <= std::numeric_limits<int64_t>::max() - static_cast<int64_t>(c.n), m, "pos",
        "pos + n overflows");
  if (const msgpack::object* s = m.find("sample"); s && s->type != msgpack::type::NIL) {
    c.sample = read_sample(*s, p.field("sample"));
  }
  if (m.find("more")) {
    c.more = m.u32("more");
    check(c.more == 0 || c.sample.has_value(), m, "more", "needs a sample to go on from");
  }
  return c;
}

Sampled read_sampled(const msgpack::object& o, const Path& p) {
  const Map m(o, p);
  Sampled s;
  s.req = m.u64("req");
  s.pos = m.i64("pos", 0);
  s.token = detail::as_token(m.get("token"), p.field("token"));
  s.lp = m.f32("lp", true);
  const Path tp = p.field("top");
  const msgpack::object_array& top = detail::as_array(m.get("top"), tp);
  s.top.reserve(top.size);
  for (uint32_t i = 0; i < top.size; ++i) {
    const Path ep = tp.at(i);
    const msgpack::object_array& pair = detail::as_array(top.ptr[i], ep);
    if (pair.size != 2)
      fail(ep, "expected [id, logprob], got " + std::to_string(pair.size) + " values");
    s.top.emplace_back(detail::as_token(pair.ptr[0], ep.at(0)),
                       detail::as_f32(pair.ptr[1], ep.at(1), true));
  }
  if (m.find("looped")) s.looped = m.boolean("looped");
  if (const msgpack::object* l = m.find("logits")) {
    const Path lp = p.field("logits");
    s.logits = detail::as_bin(*l, lp);
    if (s.logits.size() % 4 != 0) {
      fail(lp, std::to_string(s.logits.size()) + " bytes is not a whole number of f32 values");
    }
  }
  return s;
}

}  // namespace

void decode(const Envelope& e, Step& out) {
  const Path root{nullptr, "step", 0};
  const Map r = open(e, "step", root);
  Step m;
  m.epoch = r.u64("epoch");
  m.id = r.u64("id");
  const Path sp = root.field("seqs");
  const msgpack::object_array& seqs = detail::as_array(r.get("seqs"), sp);
  m.seqs.reserve(seqs.size);
  uint64_t total = 0;
  for (uint32_t i = 0; i < seqs.size; ++i) {
    m.seqs.push_back(read_chunk(seqs.ptr[i], sp.at(i)));
    total += m.seqs.back().n;
  }
  m.tokens = r.tokens("tokens");
  m.dtype = r.dtype("dtype");
  m.rows = r.u32("rows");
  m.dim = r.u32("dim");
  m.data = r.bin("data");
  if (!m.tokens.empty()) {
    // Into the head stage: token ids instead of activations.
    check(m.tokens.size() == total, r, "tokens",
          std::to_string(m.tokens.size()) + " token ids but the chunks hold " +
              std::to_string(total) + " rows");
    check(m.rows == 0, r, "rows",
          "must be 0 when tokens are present, got " + std::to_string(m.rows));
    check(m.dim == 0, r, "dim", "must be 0 when tokens are present, got " + std::to_string(m.dim));
    check(m.data.empty(), r, "data",
          "must be empty when tokens are present, got " + std::to_string(m.data.size()) + " bytes");
  } else {
    check(m.rows == total, r, "rows",
          std::to_string(m.rows) + " rows but the chunks hold " + std::to_string(total));
    check(m.rows == 0 || m.dim > 0, r, "dim", "must be > 0 when rows > 0");
    const uint64_t want = uint64_t{m.rows} * m.dim;  // < 2^64: both factors are < 2^32
    const uint64_t w = dtype_bytes(m.dtype);
    const bool ok = want <= std::numeric_limits<uint64_t>::max() / w && m.data.size() == want * w;
    check(ok, r, "data",
          std::to_string(m.data.size()) + " bytes but rows x dim = " + std::to_string(m.rows) +
              " x " + std::to_string(m.dim) + " " + dtype_name(m.dtype) + " values");
  }
  out = std::move(m);
}

void decode(const Envelope& e, Result& out) {
  const Path root{nullptr, "result", 0};
  const Map r = open(e, "result", root);
  Result m;
  m.epoch = r.u64("epoch");
  m.id = r.u64("id");
  const Path op = root.field("out");
  const msgpack::object_array& a = detail::as_array(r.get("out"), op);
  m.out.reserve(a.size);
  for (uint32_t i = 0; i < a.size; ++i) m.out.push_back(read_sampled(a.ptr[i], op.at(i)));
  out = std::move(m);
}

void decode(const Envelope& e, Register& out) {
  const Path root{nullptr, "register", 0};
  const Map r = open(e, "register", root);
  Register m;
  m.node = r.str("node");
  m.order = r.i64("order");
  m.host = r.str("host");
  m.budget = r.u64("budget");
  m.high_water = r.f64("high_water");
  check(m.high_water > 0 && m.high_water <= 1, r, "high_water", "must be in (0, 1]");
  m.compute = r.f64("compute");
  check(m.compute >= 0, r, "compute", "must be >= 0");
  m.threads = r.u32("threads");
  m.cores = r.u32("cores");
  check(m.cores > 0, r, "cores", "must be > 0");
  m.data = r.str("data");
  m.model = r.str("model");
  out = std::move(m);
}

void decode(const Envelope& e, Assign& out) {
  const Path root{nullptr, "assign", 0};
  const Map r = open(e, "assign", root);
  Assign m;
  m.epoch = r.u64("epoch");
  m.n_layers = r.i64("n_layers", 0);
  m.begin = r.i64("begin", 0);
  m.end = r.i64("end", 0);
  check(m.begin <= m.end, r, "end", "must be >= begin");
  check(m.end <= m.n_layers, r, "end", "must be <= n_layers");
  const Path mp = root.field("model");
  const Map mm(r.get("model"), mp);
  m.model.name = mm.str("name");
  m.model.path = mm.str("path");
  m.model.size = mm.u64("size");
  m.model.digest = mm.str("digest");
  m.model.header = mm.u64("header");
  check(m.model.header <= m.model.size, mm, "header", "is larger than the file");
  m.upstream = r.str("upstream");
  m.downstream = r.str("downstream");
  m.ctx = r.i64("ctx", 0);
  m.seqs = r.u32("seqs");
  m.dtype = r.dtype("dtype");
  const Path kp = root.field("kv");
  const msgpack::object_array& kv = detail::as_array(r.get("kv"), kp);
  m.kv.reserve(kv.size);
  for (uint32_t i = 0; i < kv.size; ++i) {
    const Path ep = kp.at(i);
    const msgpack::object_array& pair = detail::as_array(kv.ptr[i], ep);
    if (pair.size != 2)
      fail(ep, "expected [req, n_pos], got " + std::to_string(pair.size) + " values");
    KvHold h;
    h.req = detail::as_u64(pair.ptr[0], ep.at(0));
    h.n_pos = detail::as_i64(pair.ptr[1], ep.at(1), 1, m.ctx);
    m.kv.push_back(h);
  }
  if (r.find("head")) m.head = r.str("head");
  if (r.find("eog")) m.eog = r.tokens("eog");
  out = std::move(m);
}

void decode(const Envelope& e, Ready& out) {
  const Path root{nullptr, "ready", 0};
  const Map r = open(e, "ready", root);
  Ready m;
  m.epoch = r.u64("epoch");
  m.begin = r.i64("begin", 0);
  m.end = r.i64("end", 0);
  check(m.begin <= m.end, r, "end", "must be >= begin");
  m.weights = r.u64("weights");
  m.rss = r.u64("rss");
  m.missing = r.u64s("missing");
  out = std::move(m);
}

void decode(const Envelope& e, KvPart& out) {
  const Path root{nullptr, "kv", 0};
  const Map r = open(e, "kv", root);
  KvPart m;
  m.epoch = r.u64("epoch");
  m.req = r.u64("req");
  m.layer = r.i64("layer", 0);
  m.total = r.i64("total", 0);
  m.pos = r.i64("pos", 0, m.total);
  m.n = r.i64("n", 0, m.total - m.pos);
  m.k = r.bin("keys");
  m.v = r.bin("values");
  check(m.k.size() == m.v.size(), r, "values",
        std::to_string(m.v.size()) + " bytes of values for " + std::to_string(m.k.size()) +
            " bytes of keys");
  check(m.k.size() % 2 == 0, r, "keys", "is not a whole number of f16 values");
  out = std::move(m);
}

void decode(const Envelope& e, Release& out) {
  const Path root{nullptr, "release", 0};
  const Map r = open(e, "release", root);
  Release m;
  m.req = r.u64("req");
  out = m;
}

void decode(const Envelope& e, Unloop& out) {
  const Path root{nullptr, "unloop", 0};
  const Map r = open(e, "unloop", root);
  Unloop m;
  m.reqs = r.u64s("reqs");
  out = std::move(m);
}

void decode(const Envelope& e, Heartbeat& out) {
  const Path root{nullptr, "heartbeat", 0};
  const Map r = open(e, "heartbeat", root);
  Heartbeat m;
  m.node = r.str("node");
  m.rss = r.u64("rss");
  m.weights = r.u64("weights");
  m.kv = r.u64("kv");
  m.budget = r.u64("budget");
  m.batches = r.u64("batches");
  m.overhead_us = r.f64("overhead_us");
  check(m.overhead_us >= 0, r, "overhead_us", "must be >= 0");
  m.cg_limit = r.u64("cg_limit");
  m.cg_usage = r.u64("cg_usage");
  out = std::move(m);
}

void decode(const Envelope& e, ErrorMsg& out) {
  const Path root{nullptr, "error", 0};
  const Map r = open(e, "error", root);
  ErrorMsg m;
  m.msg = r.str("msg");
  m.ref = r.str("ref");
  if (const msgpack::object* q = r.find("req"); q && q->type != msgpack::type::NIL) {
    m.req = detail::as_u64(*q, root.field("req"));
  }
  if (const msgpack::object* q = r.find("epoch"); q && q->type != msgpack::type::NIL) {
    m.epoch = detail::as_u64(*q, root.field("epoch"));
  }
  out = std::move(m);
}

void decode(const Envelope& e, Bye&) {
  const Path root{nullptr, "bye", 0};
  open(e, "bye", root);
}

void decode(const Envelope& e, Generate& out) {
  const Path root{nullptr, "generate", 0};
  const Map r = open(e, "generate", root);
  Generate m;
  m.prompt = r.str("prompt");
  m.n = r.u32("n");
  const SamplingFields f = read_sampling(r);
  m.temp = f.temp;
  m.top_k = f.top_k;
  m.top_p = f.top_p;
  m.min_p = f.min_p;
  m.rep = f.rep;
  m.seed = r.u64("seed");
  m.stop = r.strs("stop");
  m.top = r.u32("top");
  out = std::move(m);
}

void decode(const Envelope& e, Accepted& out) {
  const Path root{nullptr, "accepted", 0};
  const Map r = open(e, "accepted", root);
  Accepted m;
  m.req = r.u64("req");
  m.prompt_tokens = r.tokens("prompt_tokens");
  out = std::move(m);
}

void decode(const Envelope& e, TokenMsg& out) {
  const Path root{nullptr, "token", 0};
  const Map r = open(e, "token", root);
  TokenMsg m;
  m.req = r.u64("req");
  m.id = detail::as_token(r.get("id"), root.field("id"));
  m.lp = r.f32("lp", true);
  m.text = r.str("text");
  out = std::move(m);
}

void decode(const Envelope& e, Done& out) {
  const Path root{nullptr, "done", 0};
  const Map r = open(e, "done", root);
  Done m;
  m.req = r.u64("req");
  m.reason = r.str("reason");
  check(m.reason == "length" || m.reason == "eos" || m.reason == "stop" || m.reason == "cancelled",
        r, "reason", "unknown reason '" + printable(m.reason) + "'");
  m.tokens = r.tokens("tokens");
  m.text = r.str("text");
  m.prompt_s = r.f64("prompt_s");
  check(m.prompt_s >= 0, r, "prompt_s", "must be >= 0");
  m.decode_s = r.f64("decode_s");
  check(m.decode_s >= 0, r, "decode_s", "must be >= 0");
  m.decode_steps = r.u64("decode_steps");
  out = std::move(m);
}

void decode(const Envelope& e, Cancel& out) {
  const Path root{nullptr, "cancel", 0};
  const Map r = open(e, "cancel", root);
  Cancel m;
  m.req = r.u64("req");
  out = m;
}

void decode(const Envelope& e, StatusQuery&) {
  const Path root{nullptr, "status", 0};
  open(e, "status", root);
}

void decode(const Envelope& e, StatusReply& out) {
  const Path root{nullptr, "status_reply", 0};
  const Map r = open(e, "status_reply", root);
  out.json = r.str("json");
}

void decode(const Envelope& e, PlanQuery& out) {
  const Path root{nullptr, "plan", 0};
  const Map r = open(e, "plan", root);
  PlanQuery m;
  m.strategy = r.str("strategy");
  m.nodes = r.u64s("nodes");
  out = std::move(m);
}

void decode(const Envelope& e, Fetch& out) {
  const Path root{nullptr, "fetch", 0};
  const Map r = open(e, "fetch", root);
  Fetch m;
  m.digest = r.str("digest");
  m.offset = r.u64("offset");
  m.size = r.u64("size");
  check(m.offset + m.size >= m.offset, r, "size", "overflows the offset");
  out = std::move(m);
}

void decode(const Envelope& e, ModelChunk& out) {
  const Path root{nullptr, "chunk", 0};
  const Map r = open(e, "chunk", root);
  ModelChunk m;
  m.digest = r.str("digest");
  m.offset = r.u64("offset");
  m.data = r.bin("data");
  m.hash = r.str("hash");
  out = std::move(m);
}

void decode(const Envelope& e, Control& out) {
  const Path root{nullptr, "control", 0};
  const Map r = open(e, "control", root);
  Control m;
  m.op = r.str("op");
  check(m.op == "rebalance" || m.op == "drain" || m.op == "set_budget" || m.op == "exclude" ||
            m.op == "include",
        r, "op", "unknown operation '" + printable(m.op) + "'");
  m.node = r.str("node");
  m.budget = r.u64("budget");
  m.strategy = r.str("strategy");
  out = std::move(m);
}

void decode(const Envelope& e, PlanChange& out) {
  const Path root{nullptr, "plan_change", 0};
  const Map r = open(e, "plan_change", root);
  PlanChange m;
  m.old_plan = r.str("old");
  m.new_plan = r.str("new");
  out = std::move(m);
}

void decode(const Envelope& e, Budget& out) {
  const Path root{nullptr, "budget", 0};
  const Map r = open(e, "budget", root);
  Budget m;
  m.budget = r.u64("budget");
  out = m;
}

void decode(const Envelope& e, Pressure& out) {
  const Path root{nullptr, "pressure", 0};
  const Map r = open(e, "pressure", root);
  Pressure m;
  m.node = r.str("node");
  m.rss = r.u64("rss");
  m.weights = r.u64("weights");
  m.kv = r.u64("kv");
  m.budget = r.u64("budget");
  out = std::move(m);
}

void decode(const Envelope& e, PlanReply& out) {
  const Path root{nullptr, "plan_reply", 0};
  const Map r = open(e, "plan_reply", root);
  out.json = r.str("json");
}

}  // namespace lb::wire
