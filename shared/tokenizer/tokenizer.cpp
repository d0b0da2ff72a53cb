#include "tokenizer/tokenizer.hpp"

#include <utility>

#include "gguf/gguf_file.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/spm.hpp"

namespace lb {

namespace {

// A piece of the input: raw text [off, off+len) of the original string, or a special token.
struct Fragment {
  int32_t token;  // -1 for raw text
  size_t off;
  size_t len;
};

bool is_space_byte(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// llama.cpp's tokenizer_st_partition: for each special token, longest text first, every
// occurrence in the not-yet-claimed raw text becomes that token; the text around it stays raw.
std::vector<Fragment> partition(const Vocab& vocab, const std::string& text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back(Fragment{-1, 0, text.size()});
  for (int32_t id : vocab.specials) {
    const uint32_t a = vocab.attr[size_t(id)];
    if (!parse_special && (a & (kAttrControl | kAttrUnknown))) continue;
    const std::string& tok = vocab.text[size_t(id)];
    if (tok.empty()) continue;
    std::vector<Fragment> next;
    next.reserve(frags.size());
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t off = f.off;
      size_t len = f.len;
      while (len > 0) {
        const size_t hit = std::string_view(text).substr(0, off + len).find(tok, off);
        if (hit == std::string::npos) {
          next.push_back(Fragment{-1, off, len});
          break;
        }
        size_t left_len = hit - off;
        if (a & kAttrLstrip) {
          while (left_len > 0 && is_space_byte(text[off + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back(Fragment{-1, off, left_len});
        next.push_back(Fragment{id, hit, tok.size()});
        size_t right_off = hit + tok.size();
        size_t right_len = off + len - right_off;
        if (a & kAttrRstrip) {
          while (right_len > 0 && is_space_byte(text[right_off])) {
            ++right_off;
            --right_len;
          }
        }
        off = right_off;
        len = right_len;
      }
    }
    frags = std::move(next);
  }
  return frags;
}

}  // namespace

Tokenizer::Tokenizer(const GgufFile& file) : vocab_(Vocab::load(file)) {}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  const std::vector<Fragment> frags = partition(vocab_, text, parse_special);

  if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);

  if (vocab_.type == VocabType::Spm) {
    // The space prefix goes before the first raw fragment and before every raw fragment that
    // follows a special token (llama.cpp's is_prev_special rule).
    bool prev_special = true;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      std::string piece;
      if (vocab_.add_space_prefix && prev_special) piece = " ";
      piece.append(text, f.off, f.len);
      spm_tokenize(vocab_, spm_escape_spaces(piece), out);
      prev_special = false;
    }
  } else {
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      bpe_tokenize(vocab_, text.substr(f.off, f.len), out);
    }
  }

  if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
  return out;
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_.n_tokens()) {
    throw TokenizerError("token id " + std::to_string(id) + " is out of range (vocabulary has " +
                         std::to_string(vocab_.n_tokens()) + " tokens)");
  }
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < vocab_.n_tokens() && vocab_.has_attr(id, kAttrControl);
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return vocab_.text[size_t(id)];
}

void Tokenizer::append_piece(std::string& out, int32_t id, bool render_special,
                             bool lstrip_space) const {
  check_id(id);
  const uint32_t a = vocab_.attr[size_t(id)];
  const std::string& t = vocab_.text[size_t(id)];
  std::string p;
  if (a & (kAttrUnknown | kAttrControl)) {
    if (!render_special) return;
    p = t;
  } else if (a & kAttrUserDefined) {
    p = t;
  } else if (a & kAttrNormal) {
    p = vocab_.type == VocabType::Spm ? spm_unescape_spaces(t) : bpe_byte_decode(t);
  } else if (a & kAttrByte) {
    p.assign(1, char(vocab_.token_byte(id)));
  } else {
    return;  // unused / undefined tokens render as nothing, as in llama.cpp
  }
  size_t skip = (lstrip_space && !p.empty() && p[0] == ' ') ? 1 : 0;
  out.append(p, skip, std::string::npos);
}

std::string Tokenizer::piece(int32_t id, bool render_special) const {
  std::string out;
  append_piece(out, id, render_special, false);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) append_piece(out, id, render_special, false);
  return out;
}

std::string Tokenizer::detokenize(const std::vector<int32_t>& ids, bool remove_special,
                                  bool unparse_special) const {
  size_t begin = 0;
  size_t end = ids.size();
  bool remove_space = vocab_.add_space_prefix;
  if (remove_special && vocab_.add_bos && end > begin && ids[begin] == vocab_.bos) {
    remove_space = false;
    ++begin;
  }
  if (remove_special && vocab_.add_eos && end > begin && ids[end - 1] == vocab_.eos) --end;

  std::string text;
  for (size_t i = begin; i < end; ++i) {
    append_piece(text, ids[i], unparse_special, remove_space);
    remove_space = false;
  }
  if (!vocab_.clean_spaces || text.empty()) return text;

  // llama.cpp's three clean-up passes, byte for byte.
  auto pass = [](const std::string& in, auto&& body) {
    std::string o;
    o.reserve(in.size());
    o.push_back(in[0]);
    for (size_t i = 1; i < in.size(); ++i) body(in, i, o);
    return o;
  };
  // 1: " ?", " !", " .", " ," lose the space
  text = pass(text, [](const std::string& in, size_t& i, std::string& o) {
    const char x = in[i];
    if (in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) o.pop_back();
    o.push_back(x);
  });
  // 2: a lone apostrophe between spaces loses both spaces (the dropped space reads as NUL for
  // the next character, as in llama.cpp's in-place loop)
  {
    std::string in = text;
    std::string o;
    o.reserve(in.size());
    o.push_back(in[0]);
    for (size_t i = 1; i < in.size(); ++i) {
      const char x = in[i];
      if (x == '\'' && i + 1 < in.size() && in[i - 1] == ' ' && in[i + 1] == ' ') {
        o.pop_back();
        in[++i] = '\0';
      }
      o.push_back(x);
    }
    text = std::move(o);
  }
  // 3: " 's", " 'm", " 're", " 've" lose the space
  text = pass(text, [](const std::string& in, size_t& i, std::string& o) {
    const char x = in[i];
    if (in[i - 1] == ' ' && x == '\'' && i + 1 < in.size()) {
      const char x1 = in[i + 1];
      if (x1 == 's' || x1 == 'm') {
        o.pop_back();
      } else if (i + 2 < in.size()) {
        const char x2 = in[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) o.pop_back();
      }
    }
    o.push_back(x);
  });
  return text;
}

}  // namespace lb
