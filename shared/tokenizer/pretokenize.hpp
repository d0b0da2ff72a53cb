#pragma once
// Byte-level BPE pre-tokenizers: the regex splits llama.cpp applies before BPE merges, written as
// small matchers over code points (std::regex cannot do \p{L}). Each pre-tokenizer is a list of
// stages; like llama.cpp's unicode_regex_split, every stage splits each piece the previous stage
// produced, and the text between two matches becomes a piece of its own.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lb {

enum class PreTokenizer {
  Default,  // "default", missing or unknown names
  Gpt2,     // "gpt-2"
  Llama3,   // "llama-bpe" (Llama 3)
  Qwen2,    // "qwen2"
  SmolLM,   // "smollm"
};

// Maps tokenizer.ggml.pre to a pre-tokenizer; unknown names fall back to Default.
PreTokenizer pre_tokenizer_from_name(const std::string& name);
const char* pre_tokenizer_name(PreTokenizer p);

// Splits code points into pieces; returns the length (in code points) of each piece, in order.
std::vector<size_t> pretokenize_lengths(const std::vector<uint32_t>& cps, PreTokenizer p);

// Splits UTF-8 text into pieces, each re-encoded as UTF-8 (malformed input bytes become U+FFFD,
// as in llama.cpp).
std::vector<std::string> pretokenize(std::string_view text, PreTokenizer p);

}  // namespace lb
