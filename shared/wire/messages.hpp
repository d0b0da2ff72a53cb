#pragma once
// The wire protocol of docs/protocol.md as plain structs, each with one encode and one decode.
// encode() returns the bytes of one ZeroMQ frame; decode() checks every field's presence, type
// and range and throws WireError naming the message type and field.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/error.hpp"

namespace lb::wire {

constexpr uint32_t kVersion = 1;

class WireError : public Error {
 public:
  using Error::Error;
};

// Bounds applied while parsing, so a hostile message cannot make the receiver allocate much.
struct Limits {
  size_t max_message_bytes = 64u << 20;
  size_t max_array = 1u << 20;    // elements in any array
  size_t max_string = 1u << 20;   // bytes in any string (prompts included)
  size_t max_depth = 16;          // nesting of arrays and maps (the protocol needs 5)
  size_t max_objects = 4u << 20;  // values of any kind in one message
};

// A parsed frame: its version and type have been checked; the body is decoded by type.
class Envelope {
 public:
  // Throws WireError for oversized input, malformed msgpack, a non-map, a missing or wrong
  // version, or a missing or unknown type.
  static Envelope parse(const void* data, size_t size, const Limits& limits);
  const std::string& type() const { return type_; }

  struct Body;  // the unpacked msgpack object and its zone (wire/reader.hpp), shared by copies
  const Body* body() const { return body_.get(); }

 private:
  std::string type_;
  std::shared_ptr<const Body> body_;
};

enum class DType : uint8_t { F32 = 0, F16 = 1 };
size_t dtype_bytes(DType d);
const char* dtype_name(DType d);
DType parse_dtype(const std::string& name);  // "f32" | "f16"; throws lb::Error

// Activations as a `bin` payload: n values, little-endian f32, or f16 rounded to nearest even.
std::string pack_activations(const float* x, size_t n, DType d);
// The inverse; throws WireError unless bytes holds exactly n values of d.
void unpack_activations(const std::string& bytes, DType d, float* out, size_t n);

// F16 bit patterns (KV-cache entries) as a `bin` payload: n values, little-endian.
std::string pack_halves(const uint16_t* x, size_t n);
// The inverse; throws WireError unless bytes holds exactly n values.
void unpack_halves(const std::string& bytes, uint16_t* out, size_t n);

// --- data messages ---------------------------------------------------------------------------

struct SampleSpec {
  float temp = 0, top_p = 1, min_p = 0, rep = 1;
  int32_t top_k = 0;
  uint64_t seed = 0;
  uint64_t draw = 0;
  std::vector<int32_t> recent;
  uint32_t top = 0;
  bool logits = false;
};

// The repetition penalty looks at this many of a request's last tokens, as `layerbus run` does.
constexpr size_t kRecentTokens = 64;

struct Chunk {
  uint64_t req = 0;
  int64_t pos = 0;
  uint32_t n = 0;
  std::optional<SampleSpec> sample;
  // Tokens after the one sampled here that the tail may go on to by itself, sending each straight
  // to the head in a loop step (0: the sampled token goes back to the broker only).
  uint32_t more = 0;
};

// The chunk that takes `token`, sampled after chunk c, into the head: its position, one row, the
// next draw, the token added to the penalty window, one token fewer to go on to.
Chunk next_chunk(const Chunk& c, int32_t token);

struct Step {
  uint64_t epoch = 0;
  uint64_t id = 0;
  std::vector<Chunk> seqs;
  std::vector<int32_t> tokens;
  DType dtype = DType::F32;
  uint32_t rows = 0;
  uint32_t dim = 0;
  std::string data;  // rows * dim * dtype_bytes(dtype) bytes
};

struct Sampled {
  uint64_t req = 0;
  int64_t pos = 0;
  int32_t token = 0;
  float lp = 0;
  std::vector<std::pair<int32_t, float>> top;
  std::string logits;   // f32 bytes, only when asked
  bool looped = false;  // the tail sent the token on to the head: its next step is under way
};

struct Result {
  uint64_t epoch = 0;
  uint64_t id = 0;
  std::vector<Sampled> out;
};

// --- stage <-> broker ------------------------------------------------------------------------

struct Register {
  std::string node, host;
  int64_t order = 0;  // position in the chain: lower first; ties by registration
  uint64_t budget = 0;
  double high_water = 0.9;  // share of the budget it may fill before it reports pressure
  double compute = 0;
  uint32_t threads = 0;
  uint32_t cores = 1;  // CPUs online on the stage's host, which its stages share
  std::string data;    // the stage's data endpoint
  std::string model;   // local model path, may be empty
};

struct ModelRef {
  std::string name, path;
  uint64_t size = 0;
  std::string digest;
  uint64_t header = 0;  // bytes before the tensor data (metadata and tensor infos)
};

// A request whose KV cache carries over into a new epoch, and the positions it holds.
struct KvHold {
  uint64_t req = 0;
  int64_t n_pos = 0;
};

struct Assign {
  uint64_t epoch = 0;
  int64_t begin = 0, end = 0, n_layers = 0;
  ModelRef model;
  std::string upstream;  // who feeds this stage: the predecessor's data endpoint, or "broker"
  std::string downstream;
  int64_t ctx = 0;
  uint32_t seqs = 0;
  DType dtype = DType::F32;
  // Caches that survive the move: layers the stage keeps stay, layers it loses go to their new
  // owner as `kv` parts, layers it gains arrive as `kv` parts. Caches not listed are dropped.
  std::vector<KvHold> kv;
  // For the last stage: the head's data endpoint, where loop steps go, and the tokens that end
  // generation (a request sampling one of them goes back to the broker). Empty: no loop steps.
  std::string head;
  std::vector<int32_t> eog;
};

struct Ready {
  uint64_t epoch = 0;
  int64_t begin = 0, end = 0;
  uint64_t weights = 0, rss = 0;
  std::vector<uint64_t> missing;  // requests whose cache could not be completed: replay them
};

// Stage -> broker -> stage: positions [pos, pos + n) of one layer of a request's KV cache,
// from the layer's old owner to its new one during a move. `total` is the positions the
// sender holds (the Assign's n_pos); total == 0 says it holds none (the receiver then reports the
// request missing). k and v hold n * kv_dim F16 values each.
struct KvPart {
  uint64_t epoch = 0;
  uint64_t req = 0;
  int64_t layer = 0;
  int64_t pos = 0, n = 0, total = 0;
  std::string k, v;
};

struct Release {
  uint64_t req = 0;
};

// Broker -> last stage: send these requests' next sampled tokens back to the broker, not on to
// the head (they end, or the broker regroups them with others).
struct Unloop {
  std::vector<uint64_t> reqs;
};

struct Heartbeat {
  std::string node;
  uint64_t rss = 0, weights = 0, kv = 0, budget = 0;
  uint64_t batches = 0;    // batches run so far
  double overhead_us = 0;  // mean time per batch from message in to message out, compute excluded
  uint64_t cg_limit = 0;   // cgroup v2 memory.max (0: none)
  uint64_t cg_usage = 0;   // cgroup v2 memory.current (0: no cgroup v2)
};

struct ErrorMsg {
  std::string msg;
  std::string ref;  // the type of the message this answers
  std::optional<uint64_t> req;
  std::optional<uint64_t> epoch = std::nullopt;  // the plan epoch of the `assign` it answers
};

struct Bye {};

// --- client <-> broker -----------------------------------------------------------------------

struct Generate {  // sampling defaults are SamplingParams' (greedy unless temp > 0)
  std::string prompt;
  uint32_t n = 128;
  float temp = 0, top_p = 0.95f, min_p = 0.05f, rep = 1;
  int32_t top_k = 40;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  uint32_t top = 0;
};

struct Accepted {
  uint64_t req = 0;
  std::vector<int32_t> prompt_tokens;
};

struct TokenMsg {
  uint64_t req = 0;
  int32_t id = 0;
  float lp = 0;
  std::string text;
};

struct Done {
  uint64_t req = 0;
  std::string reason;  // length | eos | stop | cancelled
  std::vector<int32_t> tokens;
  std::string text;
  double prompt_s = 0, decode_s = 0;
  uint64_t decode_steps = 0;
};

struct Cancel {
  uint64_t req = 0;
};

struct StatusQuery {};

struct StatusReply {
  std::string json;
};

struct PlanQuery {
  std::string strategy;
  std::vector<uint64_t> nodes;
};

struct PlanReply {
  std::string json;
};

// --- rebalancing -----------------------------------------------------------------------------

// Client -> broker: change the plan while serving. op: rebalance (strategy may be empty = keep),
// drain (move every layer off node, then let it leave), set_budget (node's budget = budget),
// exclude / include (node gets no layers / may get layers again).
struct Control {
  std::string op;
  std::string node;
  uint64_t budget = 0;
  std::string strategy;
};

// Broker -> client: the plan before and after a Control (JSON, as in `layerbus plan --json`).
struct PlanChange {
  std::string old_plan;
  std::string new_plan;
};

// Broker -> stage: the node's memory budget changed (after `set_budget`). Stage -> broker: the
// stage's own budget changed (its config was reloaded); the broker plans with it.
struct Budget {
  uint64_t budget = 0;
};

// Stage -> broker: usage crossed the high-water mark of the budget.
struct Pressure {
  std::string node;
  uint64_t rss = 0, weights = 0, kv = 0, budget = 0;
};

// Stage -> broker: send me these bytes of the model file (a stage without a local copy).
struct Fetch {
  std::string digest;
  uint64_t offset = 0, size = 0;
};

// Broker -> stage: bytes of the model file, with a hash the stage checks before using them.
struct ModelChunk {
  std::string digest;
  uint64_t offset = 0;
  std::string data;
  std::string hash;  // chunk_hash(data)
};

// The hash a chunk carries: FNV-1a 64 of its bytes, as 16 hex digits.
std::string chunk_hash(const std::string& data);

// One encode per message type (the type key comes from the struct).
std::string encode(const Step& m);
std::string encode(const Result& m);
std::string encode(const Register& m);
std::string encode(const Assign& m);
std::string encode(const Ready& m);
std::string encode(const Release& m);
std::string encode(const Unloop& m);
std::string encode(const Heartbeat& m);
std::string encode(const ErrorMsg& m);
std::string encode(const Bye& m);
std::string encode(const Generate& m);
std::string encode(const Accepted& m);
std::string encode(const TokenMsg& m);
std::string encode(const Done& m);
std::string encode(const Cancel& m);
std::string encode(const StatusQuery& m);
std::string encode(const StatusReply& m);
std::string encode(const PlanQuery& m);
std::string encode(const PlanReply& m);
std::string encode(const Fetch& m);
std::string encode(const ModelChunk& m);
std::string encode(const Control& m);
std::string encode(const PlanChange& m);
std::string encode(const Budget& m);
std::string encode(const Pressure& m);
std::string encode(const KvPart& m);

// One decode per message type; the envelope's type must match (WireError otherwise).
void decode(const Envelope& e, Step& m);
void decode(const Envelope& e, Result& m);
void decode(const Envelope& e, Register& m);
void decode(const Envelope& e, Assign& m);
void decode(const Envelope& e, Ready& m);
void decode(const Envelope& e, Release& m);
void decode(const Envelope& e, Unloop& m);
void decode(const Envelope& e, Heartbeat& m);
void decode(const Envelope& e, ErrorMsg& m);
void decode(const Envelope& e, Bye& m);
void decode(const Envelope& e, Generate& m);
void decode(const Envelope& e, Accepted& m);
void decode(const Envelope& e, TokenMsg& m);
void decode(const Envelope& e, Done& m);
void decode(const Envelope& e, Cancel& m);
void decode(const Envelope& e, StatusQuery& m);
void decode(const Envelope& e, StatusReply& m);
void decode(const Envelope& e, PlanQuery& m);
void decode(const Envelope& e, PlanReply& m);
void decode(const Envelope& e, Fetch& m);
void decode(const Envelope& e, ModelChunk& m);
void decode(const Envelope& e, Control& m);
void decode(const Envelope& e, PlanChange& m);
void decode(const Envelope& e, Budget& m);
void decode(const Envelope& e, Pressure& m);
void decode(const Envelope& e, KvPart& m);

// The type string each struct is encoded with ("step", "result", "register", ...).
template <typename T>
const char* type_of();
// clang-format off
template <> inline const char* type_of<Step>()        { return "step"; }
template <> inline const char* type_of<Result>()      { return "result"; }
template <> inline const char* type_of<Register>()    { return "register"; }
template <> inline const char* type_of<Assign>()      { return "assign"; }
template <> inline const char* type_of<Ready>()       { return "ready"; }
template <> inline const char* type_of<Release>()     { return "release"; }
template <> inline const char* type_of<Unloop>()      { return "unloop"; }
template <> inline const char* type_of<Heartbeat>()   { return "heartbeat"; }
template <> inline const char* type_of<ErrorMsg>()    { return "error"; }
template <> inline const char* type_of<Bye>()         { return "bye"; }
template <> inline const char* type_of<Generate>()    { return "generate"; }
template <> inline const char* type_of<Accepted>()    { return "accepted"; }
template <> inline const char* type_of<TokenMsg>()    { return "token"; }
template <> inline const char* type_of<Done>()        { return "done"; }
template <> inline const char* type_of<Cancel>()      { return "cancel"; }
template <> inline const char* type_of<StatusQuery>() { return "status"; }
template <> inline const char* type_of<StatusReply>() { return "status_reply"; }
template <> inline const char* type_of<PlanQuery>()   { return "plan"; }
template <> inline const char* type_of<PlanReply>()   { return "plan_reply"; }
template <> inline const char* type_of<Control>()     { return "control"; }
template <> inline const char* type_of<Fetch>()       { return "fetch"; }
template <> inline const char* type_of<ModelChunk>()  { return "chunk"; }
template <> inline const char* type_of<PlanChange>()  { return "plan_change"; }
template <> inline const char* type_of<Budget>()      { return "budget"; }
template <> inline const char* type_of<Pressure>()    { return "pressure"; }
template <> inline const char* type_of<KvPart>()      { return "kv"; }
// clang-format on

}  // namespace lb::wire
