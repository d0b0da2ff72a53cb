#pragma once
// Unicode character classes the pre-tokenizer regexes ask about (\p{L}, \p{N}, \p{P}, \p{S},
// \p{M}, \s), answered by ICU. Code points above U+10FFFF count as "other" (no class bit set).
#include <cstdint>

namespace lb::unicode {

struct CpClass {
  bool letter = false;       // \p{L}
  bool number = false;       // \p{N}
  bool punctuation = false;  // \p{P}
  bool symbol = false;       // \p{S}
  bool mark = false;         // \p{M}
  bool whitespace = false;   // \s: the Unicode White_Space property
};

CpClass classify(uint32_t cp);

inline bool is_letter(uint32_t cp) {
  return classify(cp).letter;
}
inline bool is_number(uint32_t cp) {
  return classify(cp).number;
}
inline bool is_whitespace(uint32_t cp) {
  return classify(cp).whitespace;
}

}  // namespace lb::unicode
