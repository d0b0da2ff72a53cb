#include "tokenizer/spm.hpp"

#include <algorithm>
#include <queue>

#include "tokenizer/symbols.hpp"

namespace lb {

namespace {

const char kEscapedSpace[] = "\xE2\x96\x81";

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;
};

// Highest score first; equal scores: the leftmost pair first.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace

std::string spm_escape_spaces(const std::string& text) {
  return replace_all(text, " ", kEscapedSpace);
}
std::string spm_unescape_spaces(const std::string& text) {
  return replace_all(text, kEscapedSpace, " ");
}

void spm_tokenize(const Vocab& vocab, const std::string& text, std::vector<int32_t>& out) {
  if (text.empty()) return;
  std::vector<Symbol> sym = utf8_symbols(text);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  std::string scratch;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    scratch.assign(text, sym[size_t(left)].off, sym[size_t(left)].len + sym[size_t(right)].len);
    const int32_t id = vocab.find(scratch);
    if (id < 0) return;
    queue.push(Bigram{left, right, vocab.score[size_t(id)], scratch.size()});
  };

  for (int i = 1; i < int(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[size_t(b.left)];
    Symbol& r = sym[size_t(b.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[size_t(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = 0; i != -1; i = sym[size_t(i)].next) {
    const Symbol& s = sym[size_t(i)];
    scratch.assign(text, s.off, s.len);
    const int32_t id = vocab.find(scratch);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Merged symbols are always tokens, so this is a single character the vocabulary lacks:
    // spell it as byte tokens, or as one unknown token when some byte has no token.
    const size_t mark = out.size();
    bool all_bytes = true;
    for (size_t k = 0; k < s.len && all_bytes; ++k) {
      const int32_t bt = vocab.byte_token(uint8_t(text[s.off + k]));
      if (bt >= 0)
        out.push_back(bt);
      else
        all_bytes = false;
    }
    if (!all_bytes) {
      out.resize(mark);
      if (vocab.unk >= 0) out.push_back(vocab.unk);
    }
  }
}

}  // namespace lb
