#pragma once
// The vocabulary of a GGUF file (tokenizer.ggml.* metadata), loaded and checked the way llama.cpp
// loads it: token texts, scores and types, BPE merges, special token ids and the add-BOS/EOS and
// space-prefix flags. Anything missing or malformed raises TokenizerError naming the key.
#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/pretokenize.hpp"
#include "util/error.hpp"

namespace lb {

class GgufFile;

class TokenizerError : public Error {
 public:
  using Error::Error;
};

enum class VocabType { Spm, Bpe };

// Token attributes (llama.cpp's llama_token_attr bits), derived from tokenizer.ggml.token_type.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
};

struct Vocab {
  VocabType type = VocabType::Spm;
  std::string model_name;  // tokenizer.ggml.model
  std::string pre_name;    // tokenizer.ggml.pre ("" when absent)
  PreTokenizer pre = PreTokenizer::Default;

  std::vector<std::string> text;  // token id -> text as stored in the file
  std::vector<float> score;
  std::vector<uint32_t> attr;  // TokenAttr bits
  std::unordered_map<std::string, int32_t> id_of;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1, sep = -1;
  std::set<int32_t> eog;  // ids that end generation: eos, eot, eom and tokens recognised by text

  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  bool ignore_merges = false;  // BPE: a pre-token that is a whole token skips the merges
  bool clean_spaces = false;   // detokenize(): llama.cpp's " ," / " 's" clean-up

  // Control, user-defined and unknown tokens, longest text first (special-token parsing order).
  std::vector<int32_t> specials;

  // BPE: merge rank of a (left, right) pair; -1 when the pair never merges.
  int bpe_rank(const std::string& left, const std::string& right) const;

  int32_t n_tokens() const { return int32_t(text.size()); }
  int32_t find(const std::string& s) const {
    auto it = id_of.find(s);
    return it == id_of.end() ? -1 : it->second;
  }
  bool has_attr(int32_t id, uint32_t a) const { return (attr[size_t(id)] & a) != 0; }

  // SPM byte fallback: the <0xXX> token (or the raw one-byte token); -1 when neither exists.
  int32_t byte_token(uint8_t b) const;
  // The byte a kAttrByte token stands for (parsed from "<0xXX>").
  uint8_t token_byte(int32_t id) const;

  static Vocab load(const GgufFile& file);

  std::unordered_map<std::string, int> merge_rank;  // key: pair_key(left, right)
  static std::string pair_key(const std::string& left, const std::string& right);
};

}  // namespace lb
