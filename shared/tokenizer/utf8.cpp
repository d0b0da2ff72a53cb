#include "tokenizer/utf8.hpp"

namespace lb::utf8 {

size_t len_from_lead(uint8_t lead) {
  static const uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

namespace {
bool is_cont(uint8_t b) {
  return (b & 0xC0) == 0x80;
}
}  // namespace

uint32_t decode_at(std::string_view s, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  const size_t left = s.size() - pos;
  if (b0 < 0x80) {
    pos += 1;
    return b0;
  }
  // llama.cpp accepts any lead/continuation bit pattern (no overlong or surrogate checks), and
  // only rejects a missing continuation byte or a stray continuation / 0xF8+ lead.
  if ((b0 & 0xE0) == 0xC0) {
    if (left >= 2 && is_cont(byte(pos + 1))) {
      uint32_t cp = (uint32_t(b0 & 0x1F) << 6) | (byte(pos + 1) & 0x3F);
      pos += 2;
      return cp;
    }
  } else if ((b0 & 0xF0) == 0xE0) {
    if (left >= 3 && is_cont(byte(pos + 1)) && is_cont(byte(pos + 2))) {
      uint32_t cp = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(byte(pos + 1) & 0x3F) << 6) |
                    (byte(pos + 2) & 0x3F);
      pos += 3;
      return cp;
    }
  } else if ((b0 & 0xF8) == 0xF0) {
    if (left >= 4 && is_cont(byte(pos + 1)) && is_cont(byte(pos + 2)) && is_cont(byte(pos + 3))) {
      uint32_t cp = (uint32_t(b0 & 0x07) << 18) | (uint32_t(byte(pos + 1) & 0x3F) << 12) |
                    (uint32_t(byte(pos + 2) & 0x3F) << 6) | (byte(pos + 3) & 0x3F);
      pos += 4;
      return cp;
    }
  }
  pos += 1;
  return kReplacement;
}

std::vector<uint32_t> decode(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) out.push_back(decode_at(s, pos));
  return out;
}

void append(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF) cp = kReplacement;
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string encode(uint32_t cp) {
  std::string s;
  append(s, cp);
  return s;
}

size_t complete_prefix_len(std::string_view s) {
  // Look at most 3 bytes back for the lead byte of the last sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = static_cast<uint8_t>(s[n - back]);
    if (is_cont(b)) continue;  // keep looking for the lead
    size_t need = 0;
    if ((b & 0xE0) == 0xC0)
      need = 2;
    else if ((b & 0xF0) == 0xE0)
      need = 3;
    else if ((b & 0xF8) == 0xF0)
      need = 4;
    // ASCII or an invalid lead: nothing to wait for.
    if (need > back) return n - back;  // unfinished sequence: hold it back
    return n;
  }
  return n;  // only continuation bytes (or empty): malformed, emit as is
}

}  // namespace lb::utf8
