#pragma once
// SentencePiece-style tokenization as llama.cpp does it for `llama` vocabularies: the text is cut
// into UTF-8 characters, adjacent pairs whose concatenation is a token are merged highest score
// first (ties: leftmost first), and whatever is left that is not a token falls back to <0xXX>
// byte tokens (or the unknown token when the vocabulary has no byte tokens).
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/vocab.hpp"

namespace lb {

// Tokenizes already-escaped text (spaces replaced by U+2581) and appends the ids to out.
void spm_tokenize(const Vocab& vocab, const std::string& text, std::vector<int32_t>& out);

// " " -> U+2581 ("▁") and back.
std::string spm_escape_spaces(const std::string& text);
std::string spm_unescape_spaces(const std::string& text);

}  // namespace lb
