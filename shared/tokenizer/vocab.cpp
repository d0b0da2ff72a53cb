#include "tokenizer/vocab.hpp"

#include <algorithm>
#include <limits>

#include "gguf/gguf_file.hpp"

namespace lb {

namespace {

const char* const kModel = "tokenizer.ggml.model";
const char* const kPre = "tokenizer.ggml.pre";
const char* const kTokens = "tokenizer.ggml.tokens";
const char* const kScores = "tokenizer.ggml.scores";
const char* const kTypes = "tokenizer.ggml.token_type";
const char* const kMerges = "tokenizer.ggml.merges";
const char* const kAddBos = "tokenizer.ggml.add_bos_token";
const char* const kAddEos = "tokenizer.ggml.add_eos_token";
const char* const kAddPrefix = "tokenizer.ggml.add_space_prefix";
const char* const kBosId = "tokenizer.ggml.bos_token_id";
const char* const kEosId = "tokenizer.ggml.eos_token_id";

// llama.cpp's token types (tokenizer.ggml.token_type values).
enum TokenType : int64_t {
  kTypeUndefined = 0,
  kTypeNormal = 1,
  kTypeUnknown = 2,
  kTypeControl = 3,
  kTypeUserDefined = 4,
  kTypeUnused = 5,
  kTypeByte = 6,
};

uint32_t attr_from_type(int64_t t) {
  switch (t) {
    case kTypeNormal:
      return kAttrNormal;
    case kTypeUnknown:
      return kAttrUnknown;
    case kTypeControl:
      return kAttrControl;
    case kTypeUserDefined:
      return kAttrUserDefined;
    case kTypeUnused:
      return kAttrUnused;
    case kTypeByte:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

class Loader {
 public:
  explicit Loader(const GgufFile& f) : f_(f) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw TokenizerError(f_.path() + ": tokenizer metadata '" + key + "' " + what);
  }

  std::string type_name(const GgufValue& v) const {
    if (v.type == GgufValueType::ARRAY) {
      return std::string("array of ") + gguf_value_type_name(v.elem_type);
    }
    return gguf_value_type_name(v.type);
  }

  const GgufValue* optional(const std::string& key) const { return f_.find(key); }

  const GgufValue& required(const std::string& key, const std::string& why) const {
    const GgufValue* v = f_.find(key);
    if (!v) fail(key, "is missing" + why);
    return *v;
  }

  std::string string_value(const GgufValue& v, const std::string& key) const {
    if (v.type != GgufValueType::STRING) fail(key, "is " + type_name(v) + ", expected a string");
    return v.str;
  }

  bool bool_value(const std::string& key, bool def) const {
    const GgufValue* v = optional(key);
    if (!v) return def;
    if (v->type != GgufValueType::BOOL) fail(key, "is " + type_name(*v) + ", expected bool");
    return v->u64 != 0;
  }

  const GgufValue& array_of(const std::string& key, const GgufValue& v, const char* what) const {
    if (v.type != GgufValueType::ARRAY)
      fail(key, "is " + type_name(v) + ", expected an array of " + what);
    return v;
  }

  // Reads a special token id: absent keeps `id`; out of range keeps it too (llama.cpp warns
  // "bad special token" and keeps its default); a non-integer is an error.
  void special_id(const std::string& key, int32_t& id, int32_t n_tokens) const {
    if (id >= n_tokens) id = -1;  // default outside this vocabulary
    const GgufValue* v = optional(key);
    if (!v) return;
    if (!v->is_integer()) fail(key, "is " + type_name(*v) + ", expected an integer token id");
    if (v->i64 >= 0 && v->u64 < uint64_t(n_tokens)) id = int32_t(v->u64);
  }

 private:
  const GgufFile& f_;
};

// Texts llama.cpp recognises as end-of-turn / end-of-generation tokens.
const char* const kEotTexts[] = {
    "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>"};
const char* const kEogTexts[] = {"<|eot_id|>",
                                 "<|im_end|>",
                                 "<|end|>",
                                 "<|return|>",
                                 "<|call|>",
                                 "<|flush|>",
                                 "<|calls|>",
                                 "<end_of_turn>",
                                 "<|endoftext|>",
                                 "</s>",
                                 "<|eom_id|>",
                                 "<EOT>",
                                 "_<EOT>",
                                 "[EOT]",
                                 "[EOS]",
                                 "<|end_of_text|>",
                                 "<end_of_utterance>",
                                 "<eos>",
                                 "<turn|>",
                                 "<|tool_response>",
                                 "<｜end▁of▁sentence｜>",
                                 "[e~["};

template <size_t N>
bool in_list(const std::string& s, const char* const (&list)[N]) {
  for (const char* t : list) {
    if (s == t) return true;
  }
  return false;
}

}  // namespace

std::string Vocab::pair_key(const std::string& left, const std::string& right) {
  std::string k = std::to_string(left.size());
  k.push_back(':');
  k += left;
  k += right;
  return k;
}

int Vocab::bpe_rank(const std::string& left, const std::string& right) const {
  auto it = merge_rank.find(pair_key(left, right));
  return it == merge_rank.end() ? -1 : it->second;
}

int32_t Vocab::byte_token(uint8_t b) const {
  static const char* hex = "0123456789ABCDEF";
  const char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
  int32_t id = find(buf);
  if (id >= 0) return id;
  return find(std::string(1, char(b)));
}

uint8_t Vocab::token_byte(int32_t id) const {
  // "<0xXX>": parse up to two hex digits after "<0x", leniently like strtol.
  const std::string& t = text[size_t(id)];
  unsigned v = 0;
  for (size_t i = 3; i < t.size() && i < 5; ++i) {
    const char c = t[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = unsigned(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = unsigned(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = unsigned(c - 'A' + 10);
    else
      break;
    v = v * 16 + d;
  }
  return uint8_t(v);
}

Vocab Vocab::load(const GgufFile& file) {
  Loader ld(file);
  Vocab v;

  // --- tokenizer type and its defaults ---
  v.model_name = ld.string_value(ld.required(kModel, " (the file holds no vocabulary)"), kModel);
  if (const GgufValue* p = ld.optional(kPre)) v.pre_name = ld.string_value(*p, kPre);

  if (v.model_name == "llama") {
    v.type = VocabType::Spm;
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.add_space_prefix = true;
    v.clean_spaces = false;
    v.add_bos = true;
    v.add_eos = false;
  } else if (v.model_name == "gpt2") {
    v.type = VocabType::Bpe;
    v.bos = 11;
    v.eos = 11;
    v.add_space_prefix = false;
    v.clean_spaces = true;
    v.pre = pre_tokenizer_from_name(v.pre_name);
    switch (v.pre) {
      case PreTokenizer::Llama3:
        v.ignore_merges = true;
        v.add_bos = true;
        break;
      case PreTokenizer::Qwen2:
      case PreTokenizer::SmolLM:
        v.clean_spaces = false;
        break;
      default:
        break;
    }
  } else {
    ld.fail(kModel,
            "is '" + v.model_name + "', which is not supported (supported: 'llama', 'gpt2')");
  }
  v.add_space_prefix = ld.bool_value(kAddPrefix, v.add_space_prefix);

  // --- tokens, scores, types ---
  const GgufValue& toks = ld.array_of(kTokens, ld.required(kTokens, ""), "strings");
  if (toks.elem_type != GgufValueType::STRING) {
    ld.fail(kTokens, "is " + ld.type_name(toks) + ", expected an array of strings");
  }
  if (toks.elems.empty()) ld.fail(kTokens, "is empty");
  if (toks.elems.size() > size_t(std::numeric_limits<int32_t>::max())) {
    ld.fail(kTokens,
            "holds " + std::to_string(toks.elems.size()) + " tokens, more than int32 ids allow");
  }
  const size_t n = toks.elems.size();
  const int32_t n_tokens = int32_t(n);

  const GgufValue* scores = ld.optional(kScores);
  if (scores) {
    ld.array_of(kScores, *scores, "float32");
    if (scores->elem_type != GgufValueType::FLOAT32 && scores->elem_type != GgufValueType::INT32) {
      ld.fail(kScores, "is " + ld.type_name(*scores) + ", expected an array of float32 (or int32)");
    }
    if (scores->elems.size() < n) {
      ld.fail(kScores, "holds " + std::to_string(scores->elems.size()) + " values for " +
                           std::to_string(n) + " tokens");
    }
  }
  const GgufValue* types = ld.optional(kTypes);
  if (types) {
    ld.array_of(kTypes, *types, "int32");
    if (!types->elems.empty() && !types->elems.front().is_integer()) {
      ld.fail(kTypes, "is " + ld.type_name(*types) + ", expected an array of int32");
    }
    if (types->elems.size() < n) {
      ld.fail(kTypes, "holds " + std::to_string(types->elems.size()) + " values for " +
                          std::to_string(n) + " tokens");
    }
  }

  v.text.resize(n);
  v.score.assign(n, 0.0f);
  v.attr.assign(n, kAttrNormal);
  v.id_of.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string word = toks.elems[i].str;
    if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp does
    auto ins = v.id_of.emplace(word, int32_t(i));
    if (!ins.second) {
      ld.fail(kTokens, "holds the token '" + word + "' twice (ids " +
                           std::to_string(ins.first->second) + " and " + std::to_string(i) + ")");
    }
    v.text[i] = std::move(word);
    if (scores) {
      const GgufValue& s = scores->elems[i];
      v.score[i] = s.is_float() ? float(s.f64) : float(s.i64);
    }
    if (types) v.attr[i] = attr_from_type(types->elems[i].i64);
  }

  // --- BPE merges ---
  if (v.type == VocabType::Bpe) {
    const GgufValue& merges = ld.array_of(
        kMerges, ld.required(kMerges, " (a 'gpt2' tokenizer needs its BPE merges)"), "strings");
    if (merges.elem_type != GgufValueType::STRING) {
      ld.fail(kMerges, "is " + ld.type_name(merges) + ", expected an array of strings");
    }
    if (merges.elems.size() > size_t(std::numeric_limits<int>::max()))
      ld.fail(kMerges, "is too long");
    v.merge_rank.reserve(merges.elems.size());
    for (size_t i = 0; i < merges.elems.size(); ++i) {
      const std::string& m = merges.elems[i].str;
      std::string left, right;
      const size_t sp = m.find(' ', 1);
      if (sp != std::string::npos) {
        left = m.substr(0, sp);
        right = m.substr(sp + 1);
      }
      v.merge_rank.emplace(pair_key(left, right), int(i));  // the first rank of a pair wins
    }
  }

  // --- special token ids and flags ---
  ld.special_id(kBosId, v.bos, n_tokens);
  ld.special_id(kEosId, v.eos, n_tokens);
  ld.special_id("tokenizer.ggml.eot_token_id", v.eot, n_tokens);
  ld.special_id("tokenizer.ggml.eom_token_id", v.eom, n_tokens);
  ld.special_id("tokenizer.ggml.unknown_token_id", v.unk, n_tokens);
  ld.special_id("tokenizer.ggml.seperator_token_id", v.sep, n_tokens);
  ld.special_id("tokenizer.ggml.padding_token_id", v.pad, n_tokens);

  v.add_bos = ld.bool_value(kAddBos, v.add_bos);
  v.add_eos = ld.bool_value(kAddEos, v.add_eos);
  if (v.add_bos && v.bos < 0) {
    ld.fail(kAddBos, std::string("is true, but '") + kBosId + "' is missing or out of range");
  }
  if (v.add_eos && v.eos < 0) {
    ld.fail(kAddEos, std::string("is true, but '") + kEosId + "' is missing or out of range");
  }

  // --- end-of-generation tokens, recognised by text as llama.cpp does ---
  // Iterate in text order (llama.cpp walks a std::map-like table; the first match wins for eot).
  std::vector<int32_t> by_text(n);
  for (size_t i = 0; i < n; ++i) by_text[i] = int32_t(i);
  std::sort(by_text.begin(), by_text.end(),
            [&](int32_t a, int32_t b) { return v.text[size_t(a)] < v.text[size_t(b)]; });
  for (int32_t id : by_text) {
    const std::string& t = v.text[size_t(id)];
    if (v.eot < 0 && in_list(t, kEotTexts)) {
      v.eot = id;
      v.attr[size_t(id)] |= kAttrControl;
    }
    if (v.eom < 0 && t == "<|eom_id|>") {
      v.eom = id;
      v.attr[size_t(id)] |= kAttrControl;
    }
  }
  for (int32_t id : by_text) {
    const std::string& t = v.text[size_t(id)];
    if (in_list(t, kEogTexts)) {
      v.eog.insert(id);
      v.attr[size_t(id)] |= kAttrControl;
    }
    // gpt-oss: these are always rendered (llama.cpp makes them user-defined)
    if (t == "<|channel|>" || t == "<|message|>" || t == "<|start|>" || t == "<|constrain|>") {
      v.attr[size_t(id)] = kAttrUserDefined;
    }
  }
  for (int32_t id : {v.eos, v.eot, v.eom}) {
    if (id >= 0) v.eog.insert(id);
  }
  {
    // o200k_harmony / solar-open: "<|end|>" is not end-of-generation when "<|return|>" or
    // "<|flush|>" come with "<|call|>"/"<|calls|>".
    bool has_return = false, has_call = false, has_flush = false;
    int32_t end_id = -1;
    for (int32_t id : v.eog) {
      const std::string& t = v.text[size_t(id)];
      if (t == "<|return|>")
        has_return = true;
      else if (t == "<|call|>" || t == "<|calls|>")
        has_call = true;
      else if (t == "<|flush|>")
        has_flush = true;
      else if (t == "<|end|>")
        end_id = id;
    }
    if (end_id >= 0 && has_call && (has_return || has_flush)) {
      v.eog.erase(end_id);
      v.attr[size_t(end_id)] = kAttrUserDefined;
    }
  }

  // --- special tokens, longest text first ---
  for (int32_t id = 0; id < n_tokens; ++id) {
    if (v.attr[size_t(id)] & (kAttrControl | kAttrUserDefined | kAttrUnknown))
      v.specials.push_back(id);
  }
  std::stable_sort(v.specials.begin(), v.specials.end(), [&](int32_t a, int32_t b) {
    return v.text[size_t(a)].size() > v.text[size_t(b)].size();
  });
  return v;
}

}  // namespace lb
