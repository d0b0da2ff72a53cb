#include "tokenizer/stream_decoder.hpp"

#include <utility>

#include "tokenizer/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace lb {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool render_special)
    : tok_(tok), render_special_(render_special) {}

std::string StreamDecoder::push(int32_t id) {
  held_ += tok_.piece(id, render_special_);
  const size_t ready = utf8::complete_prefix_len(held_);
  std::string out = held_.substr(0, ready);
  held_.erase(0, ready);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace lb
