#pragma once
// UTF-8 helpers with llama.cpp's tolerance rules: nothing here throws on bad input. A byte that
// does not start a well-formed sequence decodes to U+FFFD and consumes exactly one byte.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lb::utf8 {

inline constexpr uint32_t kReplacement = 0xFFFD;

// Sequence length announced by a lead byte, judged from its top four bits the way llama.cpp does
// (continuation and invalid bytes count as 1, 0xF0-0xFF as 4).
size_t len_from_lead(uint8_t lead);

// Decodes the code point at `pos` and advances `pos`. Malformed or truncated sequences yield
// U+FFFD and advance by one byte. `pos` must be < s.size().
uint32_t decode_at(std::string_view s, size_t& pos);

// Whole string to code points (malformed bytes -> U+FFFD each).
std::vector<uint32_t> decode(std::string_view s);

// Appends the UTF-8 encoding of cp; values above U+10FFFF encode as U+FFFD.
void append(std::string& out, uint32_t cp);
std::string encode(uint32_t cp);

// Length of the longest prefix of s that does not end inside an incomplete (but so far valid)
// multi-byte sequence. Malformed bytes are not held back: only a genuinely unfinished tail is.
size_t complete_prefix_len(std::string_view s);

}  // namespace lb::utf8
