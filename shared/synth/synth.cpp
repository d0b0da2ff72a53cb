#include "synth/synth.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "gguf/gguf_writer.hpp"
#include "quant/f16.hpp"
#include "quant/q4_0.hpp"
#include "quant/q4_k.hpp"
#include "quant/q6_k.hpp"
#include "quant/q8_0.hpp"
#include "util/error.hpp"

namespace lb {

namespace {

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers.

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// splitmix64: a fixed, portable generator (unlike std:: distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ull;
    return mix64(state_);
  }
  // Approximately N(0, 1): the Irwin-Hall sum of four 16-bit uniforms, rescaled to unit variance
  // (bounded to +-3.46, which suits weights). Plain float arithmetic, so identical everywhere.
  float normal() {
    const uint64_t x = next();
    float s = 0;
    for (int i = 0; i < 4; ++i) s += float((x >> (16 * i)) & 0xffff);
    // Each uniform is (k + 0.5) / 65536, mean 1/2, variance 1/12; the sum has variance 1/3.
    return ((s + 2.0f) * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
  }

 private:
  uint64_t state_;
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// ---------------------------------------------------------------------------------------------
// Types and architectures.

struct TypeName {
  const char* name;
  GgmlType type;
};
// clang-format off
constexpr TypeName kTypeNames[] = {
    {"f32", GgmlType::F32},   {"f16", GgmlType::F16},   {"bf16", GgmlType::BF16},
    {"q4_0", GgmlType::Q4_0}, {"q4_1", GgmlType::Q4_1}, {"q5_0", GgmlType::Q5_0},
    {"q5_1", GgmlType::Q5_1}, {"q8_0", GgmlType::Q8_0}, {"q8_1", GgmlType::Q8_1},
    {"q2_k", GgmlType::Q2_K}, {"q3_k", GgmlType::Q3_K}, {"q4_k", GgmlType::Q4_K},
    {"q5_k", GgmlType::Q5_K}, {"q6_k", GgmlType::Q6_K}, {"q8_k", GgmlType::Q8_K},
};
// clang-format on

const char* const kArchs[] = {"llama", "qwen2", "qwen3"};
const GgmlType kSynthTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0,
                                GgmlType::Q4_K};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string type_label(GgmlType t) {
  for (const TypeName& n : kTypeNames) {
    if (n.type == t) return n.name;
  }
  return "type " + std::to_string(uint32_t(t));
}

// llama.cpp's llama_ftype for general.file_type.
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;  // ALL_F32
    case GgmlType::F16:
      return 1;  // MOSTLY_F16
    case GgmlType::Q4_0:
      return 2;  // MOSTLY_Q4_0
    case GgmlType::Q8_0:
      return 7;  // MOSTLY_Q8_0
    case GgmlType::Q4_K:
      return 15;  // MOSTLY_Q4_K_M
    default:
      return 0;
  }
}

// output.weight's type: Q4_K models keep the output matrix in Q6_K, as llama.cpp's Q4_K_M does.
GgmlType output_type_of(GgmlType t) {
  return t == GgmlType::Q4_K ? GgmlType::Q6_K : t;
}

int64_t block_size_of(GgmlType t) {
  const TypeInfo* info = type_info(uint32_t(t));
  return info ? info->block_size : 1;
}

// Converts one row of floats to type t (n a multiple of the block size).
void convert_row(GgmlType t, const float* src, uint8_t* dst, int64_t n) {
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * sizeof(float));
      break;
    case GgmlType::F16:
      fp32_to_fp16_row(src, reinterpret_cast<Half*>(dst), n);
      break;
    case GgmlType::Q8_0:
      quantize_row_q8_0(src, dst, n);
      break;
    case GgmlType::Q4_0:
      quantize_row_q4_0_ref(src, dst, n);
      break;
    case GgmlType::Q4_K:
      quantize_row_q4_k_ref(src, dst, n);
      break;
    case GgmlType::Q6_K:
      quantize_row_q6_k_ref(src, dst, n);
      break;
    default:
      throw Error(std::string("synth: cannot write ") + type_name(t) + " tensors");
  }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary.

// Common English words (and story words), added with all their "▁"-prefixed prefixes so that a
// SentencePiece merge path exists to every one of them.
const char* const kWords[] = {
    "the",   "and",    "to",     "of",       "a",       "in",    "is",     "it",      "you",
    "that",  "he",     "was",    "for",      "on",      "are",   "with",   "as",      "his",
    "they",  "be",     "at",     "one",      "have",    "this",  "from",   "or",      "had",
    "by",    "not",    "word",   "but",      "what",    "some",  "we",     "can",     "out",
    "other", "were",   "all",    "there",    "when",    "up",    "use",    "your",    "how",
    "said",  "an",     "each",   "she",      "which",   "do",    "their",  "time",    "if",
    "will",  "way",    "about",  "many",     "then",    "them",  "would",  "like",    "so",
    "these", "her",    "long",   "make",     "thing",   "see",   "him",    "two",     "has",
    "look",  "more",   "day",    "could",    "go",      "come",  "did",    "my",      "sound",
    "no",    "most",   "people", "over",     "know",    "water", "than",   "call",    "first",
    "who",   "may",    "down",   "side",     "been",    "now",   "find",   "any",     "new",
    "work",  "part",   "take",   "get",      "place",   "made",  "live",   "where",   "after",
    "back",  "little", "only",   "round",    "man",     "year",  "came",   "show",    "every",
    "good",  "me",     "give",   "our",      "under",   "name",  "very",   "through", "just",
    "form",  "much",   "great",  "think",    "say",     "help",  "low",    "line",    "before",
    "turn",  "cause",  "same",   "mean",     "differ",  "move",  "right",  "boy",     "old",
    "too",   "does",   "tell",   "sentence", "set",     "three", "want",   "air",     "well",
    "also",  "play",   "small",  "end",      "put",     "home",  "read",   "hand",    "port",
    "large", "spell",  "add",    "even",     "land",    "here",  "must",   "big",     "high",
    "such",  "follow", "act",    "why",      "ask",     "men",   "change", "went",    "light",
    "kind",  "off",    "need",   "house",    "picture", "try",   "us",     "again",   "animal",
    "point", "mother", "world",  "near",     "build",   "self",  "earth",  "father",  "head",
    "stand", "own",    "page",   "should",   "country", "found", "answer", "school",  "grow",
    "study", "still",  "learn",  "plant",    "cover",   "food",  "sun",    "four",    "between",
    "state", "keep",   "eye",    "never",    "once",    "upon",  "girl",   "named",   "lily",
    "happy", "park",   "friend", "toy",      "ball",    "tree",  "dog",    "cat",     "bird",
    "sky",   "red",    "blue",   "saw",      "loved",   "mom",
};

const char kLetters[] = "etaoinshrdlcumwfgypbvkjxqz";  // English letters by frequency
const char* const kSpace = "\xe2\x96\x81";             // U+2581, SentencePiece's word marker

}  // namespace

SynthVocab synth_vocab(int64_t n_tokens) {
  if (n_tokens < kSynthMinVocab) {
    throw Error("synth: vocab " + std::to_string(n_tokens) + " is too small: the tokenizer needs " +
                std::to_string(kSynthMinVocab) +
                " tokens at least (<unk>, <s>, </s>, 256 byte tokens, \xe2\x96\x81 and the "
                "letters a-z with and without it)");
  }
  SynthVocab v;
  v.tokens.reserve(size_t(n_tokens));
  v.scores.reserve(size_t(n_tokens));
  v.types.reserve(size_t(n_tokens));
  std::unordered_set<std::string> seen;
  auto add = [&](const std::string& tok, float score, int32_t type) {
    if (int64_t(v.tokens.size()) >= n_tokens || !seen.insert(tok).second) return;
    v.tokens.push_back(tok);
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, 2);
  add("<s>", 0.0f, 3);
  add("</s>", 0.0f, 3);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0.0f, 6);
  }
  // Pieces score like SentencePiece log-probabilities: earlier (commoner) pieces score higher.
  auto piece = [&](const std::string& p) { add(p, -float(v.tokens.size() - 259), 1); };
  const std::string sp = kSpace;
  piece(sp);
  for (const char* c = kLetters; *c; ++c) {
    piece(sp + *c);
    piece(std::string(1, *c));
  }
  for (const char* c = kLetters; *c; ++c) {
    const std::string up(1, char(std::toupper(static_cast<unsigned char>(*c))));
    piece(sp + up);
    piece(up);
  }
  for (const char* p : {".", ",", "'", "!", "?", "\"", "-", ":", ";", "(", ")",
                        "0", "1", "2", "3", "4", "5",  "6", "7", "8", "9"}) {
    piece(p);
    piece(sp + p);
  }
  for (const char* w : kWords) {
    const std::string word = w;
    std::string cap = word;
    cap[0] = char(std::toupper(static_cast<unsigned char>(cap[0])));
    for (size_t k = 2; k <= word.size(); ++k) piece(sp + word.substr(0, k));
    piece(word);
    for (size_t k = 2; k <= cap.size(); ++k) piece(sp + cap.substr(0, k));
  }
  // Then every letter sequence of length 2, 3, ... (commonest letters first), bare and with "▁",
  // until the vocabulary is full. 26^5 sequences of length 5 alone exceed any allowed vocab.
  for (size_t len = 2; int64_t(v.tokens.size()) < n_tokens; ++len) {
    std::vector<int> idx(len, 0);
    while (int64_t(v.tokens.size()) < n_tokens) {
      std::string s(len, ' ');
      for (size_t i = 0; i < len; ++i) s[i] = kLetters[idx[i]];
      piece(s);
      piece(sp + s);
      size_t i = len;
      while (i > 0 && ++idx[i - 1] == 26) idx[--i] = 0;
      if (i == 0) break;
    }
  }
  return v;
}

SynthSpec synth_spec(const std::string& arch, int64_t dim, int64_t n_layers, int64_t n_heads,
                     int64_t n_kv_heads, int64_t ffn, int64_t vocab, GgmlType type, uint64_t seed) {
  SynthSpec s;
  s.arch = arch;
  s.dim = dim;
  s.n_layers = n_layers;
  s.n_heads = n_heads;
  s.n_kv_heads = n_kv_heads;
  s.ffn = ffn;
  s.vocab = vocab;
  s.type = type;
  s.seed = seed;
  return s;
}

std::vector<std::string> synth_arch_names() {
  return {std::begin(kArchs), std::end(kArchs)};
}

std::vector<std::string> synth_type_names() {
  std::vector<std::string> out;
  for (GgmlType t : kSynthTypes) out.push_back(type_label(t));
  return out;
}

GgmlType parse_type_name(const std::string& name) {
  const std::string l = lower(name);
  for (const TypeName& n : kTypeNames) {
    if (l == n.name) return n.type;
  }
  std::string known;
  for (const TypeName& n : kTypeNames) known += std::string(known.empty() ? "" : ", ") + n.name;
  throw Error("unknown tensor type '" + name + "' (known: " + known + ")");
}

void validate_synth_spec(const SynthSpec& s) {
  const std::vector<std::string> archs = synth_arch_names();
  if (std::find(archs.begin(), archs.end(), s.arch) == archs.end()) {
    throw Error("synth: unknown architecture '" + s.arch + "' (supported: llama, qwen2, qwen3)");
  }
  if (std::find(std::begin(kSynthTypes), std::end(kSynthTypes), s.type) == std::end(kSynthTypes)) {
    std::string names;
    for (const std::string& n : synth_type_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("synth: weight type " + type_label(s.type) +
                " is not supported (supported: " + names + ")");
  }
  struct Field {
    const char* name;
    int64_t value;
    int64_t max;
  };
  const Field fields[] = {{"dim", s.dim, 1 << 16},
                          {"n_layers", s.n_layers, 1 << 10},
                          {"n_heads", s.n_heads, 1 << 10},
                          {"n_kv_heads", s.n_kv_heads, 1 << 10},
                          {"ffn", s.ffn, 1 << 18},
                          {"vocab", s.vocab, 1 << 21},
                          {"context_length", s.context_length, 1 << 24}};
  for (const Field& f : fields) {
    if (f.value < 1 || f.value > f.max) {
      throw Error(std::string("synth: ") + f.name + " = " + std::to_string(f.value) +
                  " is out of range (1 to " + std::to_string(f.max) + ")");
    }
  }
  if (s.dim % s.n_heads != 0) {
    throw Error("synth: dim " + std::to_string(s.dim) + " is not divisible by n_heads " +
                std::to_string(s.n_heads));
  }
  if (s.n_kv_heads > s.n_heads || s.n_heads % s.n_kv_heads != 0) {
    throw Error("synth: n_heads " + std::to_string(s.n_heads) +
                " is not a multiple of n_kv_heads " + std::to_string(s.n_kv_heads));
  }
  if ((s.dim / s.n_heads) % 2 != 0) {
    throw Error("synth: head size dim/n_heads = " + std::to_string(s.dim / s.n_heads) +
                " is odd (RoPE rotates pairs)");
  }
  for (GgmlType t : {s.type, output_type_of(s.type)}) {
    const int64_t bs = block_size_of(t);
    for (const auto& [name, n] : {std::pair<const char*, int64_t>{"dim", s.dim}, {"ffn", s.ffn}}) {
      if (n % bs != 0) {
        throw Error("synth: " + type_label(t) + " rows need a length that is a multiple of " +
                    std::to_string(bs) + (bs == 256 ? " (the K-quant super-block)" : "") +
                    ", but " + name + " = " + std::to_string(n));
      }
    }
  }
  if (s.vocab < kSynthMinVocab) synth_vocab(s.vocab);  // throws the explanation
}

namespace {

// How a tensor's values are drawn: mean + std * N(0,1)-ish.
struct Dist {
  float mean;
  float std;
};

// Streams one tensor: rows generated and converted in parallel a batch at a time.
void fill_tensor(GgufDataSink& out, const std::string& name, int64_t row_len, int64_t n_rows,
                 GgmlType type, Dist dist, uint64_t seed) {
  const size_t rb = row_bytes(type, row_len);
  const int64_t batch_rows =
      std::max<int64_t>(1, std::min<int64_t>(n_rows, (int64_t(8) << 20) / row_len));
  const unsigned hw = std::thread::hardware_concurrency();
  const int n_threads = int(std::clamp<unsigned>(hw == 0 ? 1 : hw, 1, 16));
  std::vector<uint8_t> buf(size_t(batch_rows) * rb);
  const uint64_t tensor_seed = mix64(mix64(seed) ^ fnv1a(name));

  auto do_rows = [&](int64_t r0, int64_t r1, int64_t base) {
    std::vector<float> row(static_cast<size_t>(row_len));
    for (int64_t r = r0; r < r1; ++r) {
      Rng rng(mix64(tensor_seed + uint64_t(r) * 0x9e3779b97f4a7c15ull));
      for (float& x : row) x = dist.mean + dist.std * rng.normal();
      convert_row(type, row.data(), buf.data() + size_t(r - base) * rb, row_len);
    }
  };

  for (int64_t b0 = 0; b0 < n_rows; b0 += batch_rows) {
    const int64_t b1 = std::min(n_rows, b0 + batch_rows);
    const int64_t n = b1 - b0;
    const int threads = int(std::min<int64_t>(n_threads, n));
    if (threads <= 1) {
      do_rows(b0, b1, b0);
    } else {
      std::vector<std::thread> pool;
      std::exception_ptr err;
      std::mutex err_mu;
      for (int t = 0; t < threads; ++t) {
        const int64_t r0 = b0 + n * t / threads, r1 = b0 + n * (t + 1) / threads;
        pool.emplace_back([&, r0, r1] {
          try {
            do_rows(r0, r1, b0);
          } catch (...) {
            std::lock_guard<std::mutex> lock(err_mu);
            if (!err) err = std::current_exception();
          }
        });
      }
      for (std::thread& th : pool) th.join();
      if (err) std::rethrow_exception(err);
    }
    out.write(buf.data(), size_t(n) * rb);
  }
}

}  // namespace

void write_synthetic_model(const SynthSpec& s, const std::string& path) {
  validate_synth_spec(s);
  const std::string& a = s.arch;
  const bool qwen = a == "qwen2" || a == "qwen3";
  const int64_t hd = s.dim / s.n_heads;
  const int64_t q_dim = hd * s.n_heads, kv_dim = hd * s.n_kv_heads;

  GgufWriter w(3);
  w.set_string("general.architecture", a);
  w.set_string("general.name", "layerbus synthetic " + a);
  w.set_u32("general.file_type", file_type_of(s.type));
  w.set_u32("general.quantization_version", 2);
  w.set_alignment(GgufWriter::kDefaultAlignment);
  w.set_u64("layerbus.synth.seed", s.seed);
  w.set_u32(a + ".vocab_size", uint32_t(s.vocab));
  w.set_u32(a + ".context_length", uint32_t(s.context_length));
  w.set_u32(a + ".embedding_length", uint32_t(s.dim));
  w.set_u32(a + ".block_count", uint32_t(s.n_layers));
  w.set_u32(a + ".feed_forward_length", uint32_t(s.ffn));
  w.set_u32(a + ".attention.head_count", uint32_t(s.n_heads));
  w.set_u32(a + ".attention.head_count_kv", uint32_t(s.n_kv_heads));
  w.set_f32(a + ".rope.freq_base", qwen ? 1000000.0f : 10000.0f);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", qwen ? 1e-6f : 1e-5f);
  w.set_u32(a + ".rope.dimension_count", uint32_t(hd));
  if (a == "qwen3") {
    w.set_u32(a + ".attention.key_length", uint32_t(hd));
    w.set_u32(a + ".attention.value_length", uint32_t(hd));
  }

  SynthVocab vocab = synth_vocab(s.vocab);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
  w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
  w.set_i32_array("tokenizer.ggml.token_type", vocab.types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
  vocab = SynthVocab();

  const uint64_t seed = s.seed;
  auto tensor = [&](const std::string& name, std::vector<int64_t> ne, GgmlType type, Dist dist) {
    const int64_t row_len = ne[0];
    int64_t n_rows = 1;
    for (size_t i = 1; i < ne.size(); ++i) n_rows *= ne[i];
    w.add_tensor(name, ne, type, [=](GgufDataSink& out) {
      fill_tensor(out, name, row_len, n_rows, type, dist, seed);
    });
  };
  auto matrix = [&](const std::string& name, int64_t cols, int64_t rows) {
    tensor(name, {cols, rows}, s.type, Dist{0.0f, 1.0f / std::sqrt(float(cols))});
  };
  const Dist norm{1.0f, 0.1f}, bias{0.0f, 0.05f};

  tensor("token_embd.weight", {s.dim, s.vocab}, s.type, Dist{0.0f, 1.0f});
  for (int64_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", {s.dim}, GgmlType::F32, norm);
    matrix(p + "attn_q.weight", s.dim, q_dim);
    matrix(p + "attn_k.weight", s.dim, kv_dim);
    matrix(p + "attn_v.weight", s.dim, kv_dim);
    if (a == "qwen2") {
      tensor(p + "attn_q.bias", {q_dim}, GgmlType::F32, bias);
      tensor(p + "attn_k.bias", {kv_dim}, GgmlType::F32, bias);
      tensor(p + "attn_v.bias", {kv_dim}, GgmlType::F32, bias);
    }
    if (a == "qwen3") {
      tensor(p + "attn_q_norm.weight", {hd}, GgmlType::F32, norm);
      tensor(p + "attn_k_norm.weight", {hd}, GgmlType::F32, norm);
    }
    matrix(p + "attn_output.weight", q_dim, s.dim);
    tensor(p + "ffn_norm.weight", {s.dim}, GgmlType::F32, norm);
    matrix(p + "ffn_gate.weight", s.dim, s.ffn);
    matrix(p + "ffn_up.weight", s.dim, s.ffn);
    matrix(p + "ffn_down.weight", s.ffn, s.dim);
  }
  tensor("output_norm.weight", {s.dim}, GgmlType::F32, norm);
  // Logits get a standard deviation of about 2, so greedy decoding has clear winners.
  tensor("output.weight", {s.dim, s.vocab}, output_type_of(s.type),
         Dist{0.0f, 2.0f / std::sqrt(float(s.dim))});
  w.write(path);
}

}  // namespace lb
