#pragma once
// Turns a request's generated tokens into the text released to its client: never half a UTF-8
// character, and never text that might turn out to begin a stop string.
#include <string>
#include <vector>

#include "tokenizer/stream_decoder.hpp"

namespace lb {

class TextStream {
 public:
  TextStream(const Tokenizer& tok, std::vector<std::string> stops);
  // Text that can be shown now; sets `stopped` once a stop string appeared (the text ends
  // right before it and nothing more will be released).
  std::string push(int32_t id, bool& stopped);
  // What is still held back, at the end of generation.
  std::string flush();

 private:
  std::string release(bool final, bool& stopped);

  StreamDecoder decoder_;
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace lb
