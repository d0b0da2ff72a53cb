#include "broker/text_stream.hpp"

#include <algorithm>

namespace lb {

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stops)
    : decoder_(tok), stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string TextStream::push(int32_t id, bool& stopped) {
  if (stopped_) {
    stopped = true;
    return "";
  }
  held_ += decoder_.push(id);
  return release(false, stopped);
}

std::string TextStream::flush() {
  if (stopped_) return "";
  held_ += decoder_.flush();
  bool stopped = false;
  return release(true, stopped);
}

std::string TextStream::release(bool final, bool& stopped) {
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    std::string out = held_.substr(0, cut);
    held_.clear();
    stopped_ = stopped = true;
    return out;
  }
  // Keep back the longest tail of held_ that could still grow into a stop string.
  size_t keep = 0;
  if (!final) {
    for (const std::string& s : stops_) {
      for (size_t len = std::min(s.size() - 1, held_.size()); len > keep; --len) {
        if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
          keep = len;
          break;
        }
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

}  // namespace lb
