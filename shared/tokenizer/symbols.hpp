#pragma once
// The doubly linked list of symbols both merge tokenizers (SentencePiece and BPE) start from:
// one symbol per UTF-8 character of the text, merged pairwise as the vocabulary allows.
#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer/utf8.hpp"

namespace lb {

struct Symbol {
  int prev;
  int next;
  size_t off;  // into the text
  size_t len;  // bytes; 0 once merged into its left neighbour
};

// One symbol per character of text (a truncated sequence at the end is one symbol).
inline std::vector<Symbol> utf8_symbols(const std::string& text) {
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8::len_from_lead(uint8_t(text[off])), text.size() - off);
    const int idx = int(sym.size());
    sym.push_back(Symbol{idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }
  return sym;
}

}  // namespace lb
