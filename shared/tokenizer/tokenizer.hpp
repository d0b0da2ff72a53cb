#pragma once
// Text <-> token ids for a GGUF vocabulary, producing exactly llama.cpp's tokens: SentencePiece
// (`llama`) and byte-level BPE (`gpt2`) vocabularies, special-token parsing, BOS/EOS flags.
//
// Rendering: control and unknown tokens render as "" unless render_special is set (llama.cpp's
// token_to_piece with special=false, which is what llama-server's golden text shows: a story
// ending in the EOS token has no EOS text). decode() never strips a leading space: it is the
// plain concatenation of pieces, like llama-server's streamed text, so stories260K's first
// generated token "▁Once" decodes to " Once". detokenize() is llama.cpp's llama_detokenize
// (leading-space removal for SPM, clean_spaces for BPE) for round-trip checks.
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/vocab.hpp"

namespace lb {

class GgufFile;

class Tokenizer {
 public:
  explicit Tokenizer(const GgufFile& file);
  explicit Tokenizer(Vocab vocab);

  // add_special: prepend BOS / append EOS as the vocabulary's add_bos / add_eos flags say.
  // parse_special: text equal to a control/user-defined token's text becomes that token
  // (user-defined tokens are matched even when parse_special is false, as in llama.cpp).
  std::vector<int32_t> encode(const std::string& text, bool add_special,
                              bool parse_special = true) const;

  // Concatenated pieces. Throws TokenizerError naming an id outside [0, n_vocab).
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;
  // Raw bytes of one token (may be part of a UTF-8 character). Throws for an id out of range.
  std::string piece(int32_t id, bool render_special = false) const;

  // llama.cpp's llama_detokenize(): remove_special drops a leading BOS / trailing EOS when the
  // vocabulary adds them; the space-prefix of the first token is removed for SPM vocabularies;
  // unparse_special renders control tokens; BPE vocabularies get llama.cpp's clean_spaces pass.
  std::string detokenize(const std::vector<int32_t>& ids, bool remove_special,
                         bool unparse_special) const;

  int32_t n_vocab() const { return vocab_.n_tokens(); }
  int32_t bos_id() const { return vocab_.bos; }
  int32_t eos_id() const { return vocab_.eos; }
  int32_t eot_id() const { return vocab_.eot; }
  int32_t eom_id() const { return vocab_.eom; }
  int32_t unk_id() const { return vocab_.unk; }
  int32_t pad_id() const { return vocab_.pad; }
  bool add_bos() const { return vocab_.add_bos; }
  bool add_eos() const { return vocab_.add_eos; }
  bool add_space_prefix() const { return vocab_.add_space_prefix; }
  bool is_end_of_generation(int32_t id) const { return vocab_.eog.count(id) > 0; }
  const std::set<int32_t>& end_of_generation() const { return vocab_.eog; }
  bool is_control(int32_t id) const;

  // The token's text as stored in the vocabulary (e.g. "▁the", "<0x0A>", "Ġthe").
  const std::string& token_text(int32_t id) const;
  // Exact vocabulary lookup; -1 when the text is not a token.
  int32_t find_token(const std::string& text) const { return vocab_.find(text); }

  const Vocab& vocab() const { return vocab_; }

 private:
  void check_id(int32_t id) const;
  void append_piece(std::string& out, int32_t id, bool render_special, bool lstrip_space) const;

  Vocab vocab_;
};

}  // namespace lb
