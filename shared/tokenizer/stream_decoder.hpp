#pragma once
// Turns token ids arriving one at a time into text that is safe to print: push() returns only
// complete UTF-8, holding back the unfinished tail of a multi-byte character (e.g. after the
// byte-fallback token <0xE2> of "▁"); flush() returns whatever is still held at the end.
// Concatenating every push() and the final flush() gives exactly Tokenizer::decode(ids)
// (with the same render_special).
#include <cstdint>
#include <string>

namespace lb {

class Tokenizer;

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false);

  std::string push(int32_t id);
  std::string flush();

  // Bytes currently held back (0..3).
  size_t pending() const { return held_.size(); }

 private:
  const Tokenizer& tok_;
  bool render_special_;
  std::string held_;
};

}  // namespace lb
