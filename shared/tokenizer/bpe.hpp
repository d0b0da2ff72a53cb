#pragma once
// Byte-level BPE (GPT-2 style) as llama.cpp does it for `gpt2` vocabularies: pre-tokenize, map
// every byte of each piece to GPT-2's printable stand-in character, then merge adjacent symbols
// lowest merge rank first (ties: leftmost first).
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/vocab.hpp"

namespace lb {

// GPT-2's bytes_to_unicode(): the UTF-8 text of the character standing for byte b.
const std::string& bpe_byte_to_text(uint8_t b);
// The inverse for one code point; -1 when cp stands for no byte.
int bpe_cp_to_byte(uint32_t cp);

// Byte-encodes a piece (raw UTF-8 bytes -> stand-in characters).
std::string bpe_byte_encode(const std::string& piece);

// Decodes a BPE token text back to raw bytes. A character that stands for no byte is rendered as
// "[UNK_BYTE_0x..]" the way llama.cpp does.
std::string bpe_byte_decode(const std::string& token_text);

// Tokenizes raw text (one fragment without special tokens) and appends the ids to out.
void bpe_tokenize(const Vocab& vocab, const std::string& text, std::vector<int32_t>& out);

}  // namespace lb
