#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <queue>

#include "tokenizer/pretokenize.hpp"
#include "tokenizer/symbols.hpp"
#include "tokenizer/utf8.hpp"

namespace lb {

namespace {

struct ByteTables {
  std::array<uint32_t, 256> cp_of{};  // byte -> stand-in code point
  std::array<std::string, 256> text_of;
  ByteTables() {
    std::array<bool, 256> printable{};
    for (int b = 0x21; b <= 0x7E; ++b) printable[size_t(b)] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[size_t(b)] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[size_t(b)] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      cp_of[size_t(b)] = printable[size_t(b)] ? uint32_t(b) : next++;
      text_of[size_t(b)] = utf8::encode(cp_of[size_t(b)]);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables t;
  return t;
}

struct Bigram {
  int left;
  int right;
  int rank;
  std::string text;
};

// Lowest rank first; equal ranks: the leftmost pair first.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

void tokenize_word(const Vocab& vocab, const std::string& word, std::vector<int32_t>& out) {
  std::vector<Symbol> sym = vocab.ignore_merges && vocab.find(word) >= 0
                                ? std::vector<Symbol>{Symbol{-1, -1, 0, word.size()}}
                                : utf8_symbols(word);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto text_of = [&](int i) { return word.substr(sym[size_t(i)].off, sym[size_t(i)].len); };
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    std::string l = text_of(left);
    std::string r = text_of(right);
    const int rank = vocab.bpe_rank(l, r);
    if (rank < 0) return;
    queue.push(Bigram{left, right, rank, l + r});
  };
  for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[size_t(b.left)];
    Symbol& r = sym[size_t(b.right)];
    if (l.len == 0 || r.len == 0) continue;
    if (text_of(b.left) + text_of(b.right) != b.text) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[size_t(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (const Symbol& s : sym) {
    if (s.len == 0) continue;
    const std::string piece = word.substr(s.off, s.len);
    const int32_t id = vocab.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // llama.cpp's fallback: each byte of the encoded text as a one-byte token, when it exists.
    for (char c : piece) {
      const int32_t bt = vocab.find(std::string(1, c));
      if (bt >= 0) out.push_back(bt);
    }
  }
}

}  // namespace

const std::string& bpe_byte_to_text(uint8_t b) {
  return tables().text_of[b];
}

int bpe_cp_to_byte(uint32_t cp) {
  if (cp < 256) {
    const bool printable = (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE;
    return printable ? int(cp) : -1;
  }
  if (cp < 256 + 68) {
    // The 68 non-printable bytes, in increasing order, map to U+0100..U+0143.
    static const std::array<int, 68> bytes = [] {
      std::array<int, 68> a{};
      int n = 0;
      for (int b = 0; b < 256; ++b) {
        if (tables().cp_of[size_t(b)] >= 256) a[size_t(n++)] = b;
      }
      return a;
    }();
    return bytes[cp - 256];
  }
  return -1;
}

std::string bpe_byte_encode(const std::string& piece) {
  std::string out;
  out.reserve(piece.size() * 2);
  for (char c : piece) out += tables().text_of[uint8_t(c)];
  return out;
}

std::string bpe_byte_decode(const std::string& token_text) {
  std::string out;
  size_t pos = 0;
  while (pos < token_text.size()) {
    const uint32_t cp = utf8::decode_at(token_text, pos);
    const int b = bpe_cp_to_byte(cp);
    if (b >= 0) {
      out.push_back(char(b));
      continue;
    }
    out += "[UNK_BYTE_0x";
    const std::string enc = utf8::encode(cp);
    for (char c : enc) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", unsigned(uint8_t(c)));
      out += hex;
    }
    out += token_text;
    out += "]";
  }
  return out;
}

void bpe_tokenize(const Vocab& vocab, const std::string& text, std::vector<int32_t>& out) {
  for (const std::string& word : pretokenize(text, vocab.pre)) {
    tokenize_word(vocab, bpe_byte_encode(word), out);
  }
}

}  // namespace lb
