#include "tokenizer/unicode_class.hpp"

#include <unicode/uchar.h>

namespace lb::unicode {

CpClass classify(uint32_t cp) {
  CpClass c;
  if (cp > 0x10FFFF) return c;
  const UChar32 ch = static_cast<UChar32>(cp);
  c.whitespace = u_isUWhiteSpace(ch) != 0;
  switch (u_charType(ch)) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      c.letter = true;
      break;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      c.number = true;
      break;
    case U_CONNECTOR_PUNCTUATION:
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      c.punctuation = true;
      break;
    case U_MATH_SYMBOL:
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
      c.symbol = true;
      break;
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
      c.mark = true;
      break;
    default:
      break;
  }
  return c;
}

}  // namespace lb::unicode
