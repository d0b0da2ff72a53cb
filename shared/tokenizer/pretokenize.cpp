#include "tokenizer/pretokenize.hpp"

#include "tokenizer/unicode_class.hpp"
#include "tokenizer/utf8.hpp"

namespace lb {

namespace {

using unicode::CpClass;

// The piece of the code point sequence a stage works on: [begin, end). Positions outside it read
// as "no character", so look-aheads stop at the piece boundary exactly like llama.cpp's splitters.
struct Span {
  const std::vector<uint32_t>& cps;
  const std::vector<CpClass>& cls;
  size_t begin;
  size_t end;

  bool in(size_t i) const { return i >= begin && i < end; }
  uint32_t cp(size_t i) const { return in(i) ? cps[i] : 0xFFFFFFFFu; }
  bool letter(size_t i) const { return in(i) && cls[i].letter; }
  bool number(size_t i) const { return in(i) && cls[i].number; }
  bool space(size_t i) const { return in(i) && cls[i].whitespace; }
  // [^\s\p{L}\p{N}]: any real character that is not whitespace, letter or number.
  bool other(size_t i) const {
    return in(i) && !cls[i].whitespace && !cls[i].letter && !cls[i].number;
  }
};

using Out = std::vector<size_t>;

void emit(Out& out, size_t len) {
  if (len > 0) out.push_back(len);
}

bool lower_is(uint32_t cp, char c) {
  return cp == uint32_t(c) || (c >= 'a' && c <= 'z' && cp == uint32_t(c - 'a' + 'A'));
}

// Length of a contraction ('s 't 're 've 'm 'll 'd) starting at i, or 0.
size_t contraction_len(const Span& s, size_t i, bool any_case) {
  if (s.cp(i) != '\'' || !s.in(i + 1)) return 0;
  auto is = [&](size_t k, char c) {
    return any_case ? lower_is(s.cp(k), c) : s.cp(k) == uint32_t(c);
  };
  if (is(i + 1, 's') || is(i + 1, 't') || is(i + 1, 'm') || is(i + 1, 'd')) return 2;
  if (s.in(i + 2) && ((is(i + 1, 'r') && is(i + 2, 'e')) || (is(i + 1, 'v') && is(i + 2, 'e')) ||
                      (is(i + 1, 'l') && is(i + 2, 'l')))) {
    return 3;
  }
  return 0;
}

// Whitespace run handling shared by the GPT-2 and Llama 3 patterns:
//   \s+(?!\S) keeps the last blank for the next word when something non-blank follows, \s+ else.
size_t whitespace_len(const Span& s, size_t i) {
  size_t n = 0;
  while (s.space(i + n)) ++n;
  if (n > 1 && s.in(i + n)) return n - 1;
  return n;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Span& s, Out& out) {
  size_t i = s.begin;
  while (i < s.end) {
    if (size_t n = contraction_len(s, i, false)) {
      emit(out, n);
      i += n;
      continue;
    }
    const size_t j = s.cp(i) == ' ' ? i + 1 : i;  // optional leading space
    size_t k = j;
    if (s.letter(j)) {
      while (s.letter(k)) ++k;
    } else if (s.number(j)) {
      while (s.number(k)) ++k;
    } else if (s.other(j)) {
      while (s.other(k)) ++k;
    }
    if (k > j) {
      emit(out, k - i);
      i = k;
      continue;
    }
    size_t n = whitespace_len(s, i);
    if (n == 0) n = 1;  // unmatched character: a piece of its own
    emit(out, n);
    i += n;
  }
}

// Llama 3 (max_digits 3) and Qwen2 (max_digits 1):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(const Span& s, Out& out, size_t max_digits) {
  size_t i = s.begin;
  while (i < s.end) {
    const uint32_t c = s.cp(i);
    if (size_t n = contraction_len(s, i, true)) {
      emit(out, n);
      i += n;
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c != '\r' && c != '\n' && !s.number(i) && (s.letter(i) || s.letter(i + 1))) {
      size_t k = i + 1;
      while (s.letter(k)) ++k;
      emit(out, k - i);
      i = k;
      continue;
    }
    // \p{N}{1,max}
    if (s.number(i)) {
      size_t k = i;
      while (k - i < max_digits && s.number(k)) ++k;
      emit(out, k - i);
      i = k;
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    {
      const size_t j = c == ' ' ? i + 1 : i;
      if (s.other(j)) {
        size_t k = j;
        while (s.other(k)) ++k;
        while (s.cp(k) == '\r' || s.cp(k) == '\n') ++k;
        emit(out, k - i);
        i = k;
        continue;
      }
    }
    // \s*[\r\n]+ : up to the last CR/LF of the whitespace run
    size_t run = 0;
    size_t last_nl = 0;
    while (s.space(i + run)) {
      const uint32_t w = s.cp(i + run);
      ++run;
      if (w == '\r' || w == '\n') last_nl = run;
    }
    if (last_nl > 0) {
      emit(out, last_nl);
      i += last_nl;
      continue;
    }
    size_t n = whitespace_len(s, i);
    if (n == 0) n = 1;
    emit(out, n);
    i += n;
  }
}

// Pattern "X+" (match = maximal run of X): pieces are the runs of X and the runs of not-X.
template <typename Pred>
void split_runs(const Span& s, Out& out, Pred pred) {
  size_t i = s.begin;
  while (i < s.end) {
    const bool x = pred(i);
    size_t k = i + 1;
    while (k < s.end && pred(k) == x) ++k;
    emit(out, k - i);
    i = k;
  }
}

// Pattern "X" (match = one character of X): every X alone, runs of not-X together.
template <typename Pred>
void split_singles(const Span& s, Out& out, Pred pred) {
  size_t i = s.begin;
  while (i < s.end) {
    if (pred(i)) {
      emit(out, 1);
      ++i;
      continue;
    }
    size_t k = i + 1;
    while (k < s.end && !pred(k)) ++k;
    emit(out, k - i);
    i = k;
  }
}

// [0-9][0-9][0-9]: leftmost non-overlapping ASCII digit triples; the rest stays in between.
void split_digit_triples(const Span& s, Out& out) {
  auto digit = [&](size_t k) { return s.in(k) && s.cps[k] >= '0' && s.cps[k] <= '9'; };
  size_t gap_start = s.begin;
  size_t i = s.begin;
  while (i + 3 <= s.end) {
    if (digit(i) && digit(i + 1) && digit(i + 2)) {
      emit(out, i - gap_start);
      emit(out, 3);
      i += 3;
      gap_start = i;
    } else {
      ++i;
    }
  }
  emit(out, s.end - gap_start);
}

enum class Stage { Gpt2, Llama3, Qwen2, PunctRuns, NumberRuns, NumberSingles, DigitTriples };

std::vector<Stage> stages_for(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::Gpt2:
      return {Stage::Gpt2};
    case PreTokenizer::Llama3:
      return {Stage::Llama3};
    case PreTokenizer::Qwen2:
      return {Stage::Qwen2};
    case PreTokenizer::SmolLM:
      return {Stage::NumberSingles, Stage::Gpt2};
    case PreTokenizer::Default:
      break;
  }
  // llama.cpp's default: [\p{P}\$\+<=>\^~\|]+, then GPT-2, then \p{N}+, then [0-9][0-9][0-9]
  return {Stage::PunctRuns, Stage::Gpt2, Stage::NumberRuns, Stage::DigitTriples};
}

void run_stage(Stage st, const Span& s, Out& out) {
  switch (st) {
    case Stage::Gpt2:
      split_gpt2(s, out);
      break;
    case Stage::Llama3:
      split_llama3(s, out, 3);
      break;
    case Stage::Qwen2:
      split_llama3(s, out, 1);
      break;
    case Stage::PunctRuns:
      split_runs(s, out, [&](size_t k) {
        const uint32_t c = s.cps[k];
        return s.cls[k].punctuation || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
               c == '^' || c == '~' || c == '|';
      });
      break;
    case Stage::NumberRuns:
      split_runs(s, out, [&](size_t k) { return s.cls[k].number; });
      break;
    case Stage::NumberSingles:
      split_singles(s, out, [&](size_t k) { return s.cls[k].number; });
      break;
    case Stage::DigitTriples:
      split_digit_triples(s, out);
      break;
  }
}

}  // namespace

PreTokenizer pre_tokenizer_from_name(const std::string& name) {
  if (name == "gpt-2" || name == "phi-2") return PreTokenizer::Gpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreTokenizer::Llama3;
  if (name == "qwen2" || name == "deepseek-r1-qwen") return PreTokenizer::Qwen2;
  if (name == "smollm") return PreTokenizer::SmolLM;
  return PreTokenizer::Default;
}

const char* pre_tokenizer_name(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::Default:
      return "default";
    case PreTokenizer::Gpt2:
      return "gpt-2";
    case PreTokenizer::Llama3:
      return "llama-bpe";
    case PreTokenizer::Qwen2:
      return "qwen2";
    case PreTokenizer::SmolLM:
      return "smollm";
  }
  return "default";
}

std::vector<size_t> pretokenize_lengths(const std::vector<uint32_t>& cps, PreTokenizer p) {
  if (cps.empty()) return {};
  std::vector<CpClass> cls(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) cls[i] = unicode::classify(cps[i]);

  std::vector<size_t> pieces{cps.size()};
  for (Stage st : stages_for(p)) {
    std::vector<size_t> next;
    next.reserve(pieces.size());
    size_t start = 0;
    for (size_t len : pieces) {
      run_stage(st, Span{cps, cls, start, start + len}, next);
      start += len;
    }
    pieces = std::move(next);
  }
  return pieces;
}

std::vector<std::string> pretokenize(std::string_view text, PreTokenizer p) {
  const std::vector<uint32_t> cps = utf8::decode(text);
  const std::vector<size_t> lens = pretokenize_lengths(cps, p);
  std::vector<std::string> words;
  words.reserve(lens.size());
  size_t start = 0;
  for (size_t len : lens) {
    std::string w;
    for (size_t i = start; i < start + len; ++i) utf8::append(w, cps[i]);
    words.push_back(std::move(w));
    start += len;
  }
  return words;
}

}  // namespace lb
