// Tokenizer: llama.cpp's conformance vectors (../shared/vocab), the llama-server golden outputs
// (../shared/models/golden), and unit tests for streaming, invalid UTF-8, special tokens and bad
// vocabulary metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf_file.hpp"
#include "test_support.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/stream_decoder.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace {

using lb::GgufFile;
using lb::StreamDecoder;
using lb::Tokenizer;
using lb::TokenizerError;
using Ids = std::vector<int32_t>;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string ids_str(const Ids& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::string escaped(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n')
      o += "\\n";
    else if (c == '\t')
      o += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else
      o.push_back(char(c));
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's test-tokenizer-0 vectors
// ---------------------------------------------------------------------------------------------

struct VocabCase {
  std::string text;
  Ids expected;
};

// Same parsing as test-tokenizer-0: the .inp strings are separated by "\n__ggml_vocab_test__\n"
// (so the newline before a separator is not part of the string); .out has one line per string.
std::vector<VocabCase> read_vocab_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string raw = read_file(inp_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<Ids> outputs;
  std::istringstream out(read_file(out_path));
  for (std::string line; std::getline(out, line);) {
    Ids ids;
    std::istringstream ls(line);
    for (long v; ls >> v;) ids.push_back(int32_t(v));
    outputs.push_back(ids);
  }
  if (inputs.size() != outputs.size()) {
    throw std::runtime_error(inp_path + ": " + std::to_string(inputs.size()) + " inputs but " +
                             std::to_string(outputs.size()) + " outputs");
  }
  std::vector<VocabCase> cases;
  for (size_t i = 0; i < inputs.size(); ++i) cases.push_back({inputs[i], outputs[i]});
  return cases;
}

void run_vocab_cases(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/vocab/" + name;
  GgufFile file(path);
  Tokenizer tok(file);
  const auto cases = read_vocab_cases(path + ".inp", path + ".out");
  ASSERT_GT(cases.size(), 40u);
  size_t pass = 0;
  for (const VocabCase& c : cases) {
    // test-tokenizer-0: add_special=false, parse_special=false
    const Ids got = tok.encode(c.text, false, false);
    if (got == c.expected) {
      ++pass;
    } else {
      ADD_FAILURE() << name << ": '" << escaped(c.text) << "'\n  expected: " << ids_str(c.expected)
                    << "\n  got:      " << ids_str(got);
    }
  }
  std::printf("[ vocab    ] %s: %zu/%zu cases match llama.cpp\n", name.c_str(), pass, cases.size());
  EXPECT_EQ(pass, cases.size());
}

TEST(TokenizerVocab, LlamaSpmMatchesLlamaCpp) {
  LB_REQUIRE_SHARED(dir);
  run_vocab_cases(dir, "ggml-vocab-llama-spm.gguf");
}

TEST(TokenizerVocab, Gpt2MatchesLlamaCpp) {
  LB_REQUIRE_SHARED(dir);
  run_vocab_cases(dir, "ggml-vocab-gpt-2.gguf");
}

// Round trips of the conformance strings: SPM with byte fallback and byte-level BPE are lossless.
TEST(TokenizerVocab, RoundTripOfConformanceStrings) {
  LB_REQUIRE_SHARED(dir);
  {
    const std::string path = dir + "/vocab/ggml-vocab-llama-spm.gguf";
    GgufFile file(path);
    Tokenizer tok(file);
    for (const VocabCase& c : read_vocab_cases(path + ".inp", path + ".out")) {
      // The space prefix added by encode() is removed by llama.cpp's detokenize().
      EXPECT_EQ(tok.detokenize(tok.encode(c.text, false, false), false, true), c.text)
          << escaped(c.text);
      EXPECT_EQ(tok.decode(tok.encode(c.text, false, false)), c.text.empty() ? "" : " " + c.text)
          << escaped(c.text);
    }
  }
  {
    const std::string path = dir + "/vocab/ggml-vocab-gpt-2.gguf";
    GgufFile file(path);
    Tokenizer tok(file);
    for (const VocabCase& c : read_vocab_cases(path + ".inp", path + ".out")) {
      EXPECT_EQ(tok.decode(tok.encode(c.text, false, false)), c.text) << escaped(c.text);
    }
  }
}

// llama.cpp's test-tokenizer-1-spm / -bpe: every token and every code point survives
// detokenize(tokenize(detokenize(x))).
void run_roundtrips(const Tokenizer& tok, bool spm) {
  size_t token_fail = 0;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    const std::string str = tok.detokenize({id}, false, true);
    if (!spm) {
      // The BPE test only checks tokens that detokenize to valid UTF-8.
      size_t p = 0;
      bool valid = true;
      while (p < str.size() && valid) {
        const size_t before = p;
        const uint32_t cp = lb::utf8::decode_at(str, p);
        valid = !(cp == lb::utf8::kReplacement && str.compare(before, 3, "\xEF\xBF\xBD") != 0);
      }
      if (!valid) continue;
    }
    const Ids ids = tok.encode(str, false, true);
    const std::string check = tok.detokenize(ids, false, true);
    if (check != str && ++token_fail <= 10) {
      ADD_FAILURE() << "token " << id << " detokenizes to '" << escaped(str)
                    << "' but re-tokenizes to '" << escaped(check) << "' (" << ids_str(ids) << ")";
    }
  }
  EXPECT_EQ(token_fail, 0u);

  size_t cp_fail = 0;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x40000 && cp <= 0xE0000)) continue;
    const std::string str = lb::utf8::encode(cp);
    const Ids ids = tok.encode(str, false, spm);
    const std::string check = tok.detokenize(ids, false, true);
    if (cp != 9601 && check != str && ++cp_fail <= 10) {
      ADD_FAILURE() << "code point 0x" << std::hex << cp << std::dec << " detokenizes to '"
                    << escaped(check) << "' (" << ids_str(ids) << ")";
    }
  }
  EXPECT_EQ(cp_fail, 0u);
}

TEST(TokenizerVocab, LlamaSpmTokenAndCodepointRoundTrip) {
  LB_REQUIRE_SHARED(dir);
  GgufFile file(dir + "/vocab/ggml-vocab-llama-spm.gguf");
  run_roundtrips(Tokenizer(file), true);
}

TEST(TokenizerVocab, Gpt2TokenAndCodepointRoundTrip) {
  LB_REQUIRE_SHARED(dir);
  GgufFile file(dir + "/vocab/ggml-vocab-gpt-2.gguf");
  run_roundtrips(Tokenizer(file), false);
}

// ---------------------------------------------------------------------------------------------
// llama-server golden outputs of the real models
// ---------------------------------------------------------------------------------------------

void run_golden(const std::string& dir, const std::string& model) {
  GgufFile file(dir + "/models/" + model + ".gguf");
  Tokenizer tok(file);
  const auto golden = nlohmann::json::parse(read_file(dir + "/models/golden/" + model + ".json"));
  ASSERT_FALSE(golden.at("cases").empty());
  for (const auto& c : golden.at("cases")) {
    const std::string prompt = c.at("prompt").get<std::string>();
    const Ids prompt_tokens = c.at("prompt_tokens").get<Ids>();
    const Ids tokens = c.at("tokens").get<Ids>();
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE(model + " prompt '" + prompt + "'");

    EXPECT_EQ(ids_str(tok.encode(prompt, true)), ids_str(prompt_tokens));
    EXPECT_EQ(tok.decode(tokens), text);

    StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : tokens) {
      const std::string part = stream.push(id);
      EXPECT_EQ(lb::utf8::complete_prefix_len(part), part.size()) << "half a character emitted";
      streamed += part;
    }
    streamed += stream.flush();
    EXPECT_EQ(streamed, text);
  }
}

TEST(TokenizerGolden, Stories260K) {
  LB_REQUIRE_SHARED(dir);
  run_golden(dir, "stories260K");
}

TEST(TokenizerGolden, TinyStories656K) {
  LB_REQUIRE_SHARED(dir);
  run_golden(dir, "TinyStories-656K-Q8_0");
}

TEST(TokenizerGolden, ModelFlagsAndEndOfGeneration) {
  LB_REQUIRE_SHARED(dir);
  GgufFile a(dir + "/models/stories260K.gguf");
  Tokenizer t1(a);
  EXPECT_EQ(t1.n_vocab(), 512);
  EXPECT_EQ(t1.bos_id(), 1);
  EXPECT_EQ(t1.eos_id(), 2);
  EXPECT_EQ(t1.pad_id(), -1);  // 0xFFFFFFFF in the file: out of range, so absent
  EXPECT_TRUE(t1.add_bos());
  EXPECT_FALSE(t1.add_eos());
  EXPECT_TRUE(t1.add_space_prefix());
  EXPECT_TRUE(t1.is_end_of_generation(2));
  EXPECT_FALSE(t1.is_end_of_generation(1));

  GgufFile b(dir + "/models/TinyStories-656K-Q8_0.gguf");
  Tokenizer t2(b);
  EXPECT_EQ(t2.n_vocab(), 2048);
  EXPECT_TRUE(t2.is_end_of_generation(2));
  // The EOS control token renders as nothing (the golden "<|end_story|>" text comes from the
  // normal tokens "<|" "end" "_story" "|>"), unless specials are rendered on request.
  EXPECT_EQ(t2.piece(2), "");
  EXPECT_EQ(t2.piece(2, true), "<|end_story|>");
  EXPECT_EQ(t2.decode({208, 183, 209, 210, 2}), "<|end_story|>");
  EXPECT_EQ(t2.decode({208, 183, 209, 210, 2}, true), "<|end_story|><|end_story|>");
  // "<|start_story|>" in a prompt is the control token when special parsing is on.
  const Ids ids = t2.encode("<|start_story|>Once", false, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_NE(t2.encode("<|start_story|>Once", false, false)[0], 1);
}

// ---------------------------------------------------------------------------------------------
// Streaming and UTF-8
// ---------------------------------------------------------------------------------------------

TEST(TokenizerStream, NeverEmitsHalfACharacter) {
  LB_REQUIRE_SHARED(dir);
  GgufFile file(dir + "/vocab/ggml-vocab-llama-spm.gguf");
  Tokenizer tok(file);
  const int32_t e2 = tok.find_token("<0xE2>"), x96 = tok.find_token("<0x96>"),
                x81 = tok.find_token("<0x81>");
  ASSERT_GE(e2, 0);
  ASSERT_GE(x96, 0);
  ASSERT_GE(x81, 0);
  const int32_t hello = tok.find_token("▁Hello");
  ASSERT_GE(hello, 0);

  StreamDecoder s(tok);
  EXPECT_EQ(s.push(hello), " Hello");
  EXPECT_EQ(s.push(e2), "");
  EXPECT_EQ(s.pending(), 1u);
  EXPECT_EQ(s.push(x96), "");
  EXPECT_EQ(s.push(x81), "\xE2\x96\x81");  // "▁" once complete
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_EQ(s.flush(), "");

  // An emoji split over four byte tokens, then text: nothing until the 4th byte.
  const Ids emoji = {tok.find_token("<0xF0>"), tok.find_token("<0x9F>"), tok.find_token("<0xA6>"),
                     tok.find_token("<0x99>")};
  StreamDecoder s2(tok);
  std::string all;
  for (size_t i = 0; i < emoji.size(); ++i) {
    const std::string part = s2.push(emoji[i]);
    if (i + 1 < emoji.size()) {
      EXPECT_EQ(part, "");
    }
    all += part;
  }
  EXPECT_EQ(all, "\xF0\x9F\xA6\x99");

  // A dangling lead byte at the end comes out of flush(), so nothing is lost.
  StreamDecoder s3(tok);
  EXPECT_EQ(s3.push(hello), " Hello");
  EXPECT_EQ(s3.push(e2), "");
  EXPECT_EQ(s3.flush(), "\xE2");
  EXPECT_EQ(s3.flush(), "");

  // A stray continuation byte can never complete: it is passed through, not held forever.
  StreamDecoder s4(tok);
  EXPECT_EQ(s4.push(x96), "\x96");
}

TEST(TokenizerUtf8, CompletePrefixAndDecoding) {
  using lb::utf8::complete_prefix_len;
  EXPECT_EQ(complete_prefix_len(""), 0u);
  EXPECT_EQ(complete_prefix_len("abc"), 3u);
  EXPECT_EQ(complete_prefix_len("a\xE2"), 1u);
  EXPECT_EQ(complete_prefix_len("a\xE2\x96"), 1u);
  EXPECT_EQ(complete_prefix_len("a\xE2\x96\x81"), 4u);
  EXPECT_EQ(complete_prefix_len("a\xF0\x9F\xA6"), 1u);
  EXPECT_EQ(complete_prefix_len("\x80"), 1u);
  EXPECT_EQ(complete_prefix_len("a\xFF"), 2u);
  EXPECT_EQ(complete_prefix_len("\xC3\xA9\xC3"), 2u);

  const auto cps = lb::utf8::decode("a\xE2\x28\xA1\xC3");
  ASSERT_EQ(cps.size(), 5u);  // 'a', bad E2, '(', stray A1, truncated C3
  EXPECT_EQ(cps[0], uint32_t('a'));
  EXPECT_EQ(cps[1], lb::utf8::kReplacement);
  EXPECT_EQ(cps[2], uint32_t('('));
  EXPECT_EQ(cps[3], lb::utf8::kReplacement);
  EXPECT_EQ(cps[4], lb::utf8::kReplacement);
  EXPECT_EQ(lb::utf8::encode(0x1F999), "\xF0\x9F\xA6\x99");
}

TEST(TokenizerUtf8, InvalidInputDoesNotCrash) {
  LB_REQUIRE_SHARED(dir);
  const std::vector<std::string> bad = {"\xFF",
                                        "\xC3",
                                        "abc\xE2\x28\xA1 def",
                                        "\x80\x80\x80",
                                        "\xF0\x9F\xA6",
                                        std::string("a\0b", 3),
                                        "\xED\xA0\x80",
                                        "\xF8\x88\x80\x80\x80",
                                        "\xE2\x96"};
  {
    GgufFile file(dir + "/vocab/ggml-vocab-llama-spm.gguf");
    Tokenizer tok(file);
    for (const std::string& s : bad) {
      Ids ids;
      ASSERT_NO_THROW(tok.encode(s, true, true)) << escaped(s);
      ASSERT_NO_THROW(ids = tok.encode(s, false, true)) << escaped(s);
      // SPM falls back to byte tokens, so even malformed bytes survive a round trip.
      EXPECT_EQ(tok.detokenize(ids, false, false), s) << escaped(s);
    }
  }
  {
    GgufFile file(dir + "/vocab/ggml-vocab-gpt-2.gguf");
    Tokenizer tok(file);
    for (const std::string& s : bad) {
      ASSERT_NO_THROW(tok.encode(s, true, true)) << escaped(s);
    }
    // Byte-level BPE sees malformed bytes as U+FFFD, like llama.cpp.
    EXPECT_EQ(tok.decode(tok.encode("\xFF", false)), "\xEF\xBF\xBD");
    EXPECT_EQ(tok.decode(tok.encode("a\xC3", false)), "a\xEF\xBF\xBD");
  }
}

// ---------------------------------------------------------------------------------------------
// Special tokens, pieces, flags on the real vocabularies
// ---------------------------------------------------------------------------------------------

TEST(TokenizerSpecial, SpmControlTokensAndSpacePrefix) {
  LB_REQUIRE_SHARED(dir);
  GgufFile file(dir + "/vocab/ggml-vocab-llama-spm.gguf");
  Tokenizer tok(file);
  const Ids hello = tok.encode("Hello", false);
  const Ids world = tok.encode("world", false);
  ASSERT_EQ(tok.decode(hello), " Hello");

  // Text after a special token gets the space prefix again (llama.cpp's is_prev_special rule).
  Ids expected = hello;
  expected.push_back(2);
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(ids_str(tok.encode("Hello</s>world", false, true)), ids_str(expected));

  // Without special parsing "</s>" is plain text.
  const Ids plain = tok.encode("Hello</s>world", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok.detokenize(plain, false, true), "Hello</s>world");

  // A prompt that is only a special token gets no space token.
  EXPECT_EQ(ids_str(tok.encode("<s>", false, true)), "1");
  // BOS from add_bos, no EOS (add_eos false).
  const Ids with_bos = tok.encode("Hello", true);
  ASSERT_EQ(with_bos.size(), hello.size() + 1);
  EXPECT_EQ(with_bos[0], 1);
  EXPECT_EQ(ids_str(tok.encode("", true)), "1");
  EXPECT_TRUE(tok.encode("", false).empty());

  // Pieces.
  EXPECT_EQ(tok.piece(tok.find_token("<0x41>")), "A");
  EXPECT_EQ(tok.piece(tok.find_token("▁Hello")), " Hello");
  EXPECT_EQ(tok.piece(2), "");
  EXPECT_EQ(tok.piece(2, true), "</s>");
  EXPECT_EQ(tok.piece(0), "");  // <unk>
  EXPECT_EQ(tok.piece(0, true), "<unk>");
  EXPECT_EQ(tok.decode({1, tok.find_token("▁Hello"), 2}), " Hello");
  EXPECT_EQ(tok.decode({1, tok.find_token("▁Hello"), 2}, true), "<s> Hello</s>");
  EXPECT_EQ(tok.detokenize({1, tok.find_token("▁Hello"), 2}, true, false), " Hello");
  EXPECT_EQ(tok.detokenize({tok.find_token("▁Hello")}, false, false), "Hello");
}

TEST(TokenizerSpecial, Gpt2EndOfText) {
  LB_REQUIRE_SHARED(dir);
  GgufFile file(dir + "/vocab/ggml-vocab-gpt-2.gguf");
  Tokenizer tok(file);
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_TRUE(tok.is_end_of_generation(50256));
  const Ids ids = tok.encode("Hi<|endoftext|>there", false, true);
  EXPECT_EQ(ids_str(ids), ids_str({tok.find_token("Hi"), 50256, tok.find_token("there")}));
  const Ids plain = tok.encode("Hi<|endoftext|>there", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok.decode(plain), "Hi<|endoftext|>there");
  EXPECT_EQ(tok.decode(ids), "Hithere");
  EXPECT_EQ(tok.decode(ids, true), "Hi<|endoftext|>there");
  EXPECT_EQ(tok.piece(tok.find_token("\xC4\xA0the")), " the");  // "Ġthe"
}

TEST(TokenizerErrors, DecodeRejectsOutOfRangeIds) {
  LB_REQUIRE_SHARED(dir);
  GgufFile file(dir + "/models/stories260K.gguf");
  Tokenizer tok(file);
  try {
    tok.decode({1, 100, 512});
    FAIL() << "no error";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok.piece(-1), TokenizerError);
  StreamDecoder s(tok);
  EXPECT_THROW(s.push(100000), lb::Error);
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer regexes (hand-derived from the patterns llama.cpp uses)
// ---------------------------------------------------------------------------------------------

std::vector<std::string> split(const std::string& s, lb::PreTokenizer p) {
  return lb::pretokenize(s, p);
}

TEST(TokenizerPretokenize, PatternsPerPreType) {
  using P = lb::PreTokenizer;
  const std::string s = "Hello world 12345 don't\n\n  x";
  EXPECT_EQ(split(s, P::Gpt2),
            (std::vector<std::string>{"Hello", " world", " 12345", " don", "'t", "\n\n ", " x"}));
  EXPECT_EQ(split(s, P::Llama3), (std::vector<std::string>{"Hello", " world", " ", "123", "45",
                                                           " don", "'t", "\n\n", " ", " x"}));
  EXPECT_EQ(split(s, P::Qwen2),
            (std::vector<std::string>{"Hello", " world", " ", "1", "2", "3", "4", "5", " don", "'t",
                                      "\n\n", " ", " x"}));
  EXPECT_EQ(split(s, P::SmolLM), (std::vector<std::string>{"Hello", " world", " ", "1", "2", "3",
                                                           "4", "5", " don", "'t", "\n\n ", " x"}));
  EXPECT_EQ(split(s, P::Default), (std::vector<std::string>{"Hello", " world", " ", "123", "45",
                                                            " don", "'", "t", "\n\n ", " x"}));
  // Llama 3 contractions are case-insensitive, GPT-2's are not.
  EXPECT_EQ(split("DON'T", P::Llama3), (std::vector<std::string>{"DON", "'T"}));
  EXPECT_EQ(split("DON'T", P::Gpt2), (std::vector<std::string>{"DON", "'", "T"}));
  // Llama 3: one non-letter may lead a word; punctuation runs keep trailing newlines.
  EXPECT_EQ(split("(hi)!!\n\nok", P::Llama3), (std::vector<std::string>{"(hi", ")!!\n\n", "ok"}));
  // Unicode classes: Cyrillic letters, Arabic-Indic digits, a non-ASCII space.
  EXPECT_EQ(split("на \xD9\xA1\xD9\xA2\xC2\xA0x", P::Gpt2),
            (std::vector<std::string>{"на", " \xD9\xA1\xD9\xA2", "\xC2\xA0", "x"}));
  EXPECT_EQ(lb::pre_tokenizer_from_name("something-new"), P::Default);
  EXPECT_TRUE(split("", P::Llama3).empty());
}

// ---------------------------------------------------------------------------------------------
// Synthetic vocabularies: special-token matching and bad metadata
// ---------------------------------------------------------------------------------------------

// Writes a GGUF v3 file with metadata only.
class GgufWriter {
 public:
  enum : uint32_t { U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STR = 8, ARR = 9 };

  GgufWriter& str(const std::string& k, const std::string& v) {
    key(k, STR);
    put_str(v);
    return *this;
  }
  GgufWriter& u32(const std::string& k, uint32_t v) {
    key(k, U32);
    put(v);
    return *this;
  }
  GgufWriter& boolean(const std::string& k, bool v) {
    key(k, BOOL);
    body_.push_back(char(v ? 1 : 0));
    return *this;
  }
  GgufWriter& strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, ARR);
    put(uint32_t(STR));
    put(uint64_t(v.size()));
    for (const auto& s : v) put_str(s);
    return *this;
  }
  GgufWriter& f32s(const std::string& k, const std::vector<float>& v) {
    key(k, ARR);
    put(uint32_t(F32));
    put(uint64_t(v.size()));
    for (float f : v) put(f);
    return *this;
  }
  GgufWriter& i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, ARR);
    put(uint32_t(I32));
    put(uint64_t(v.size()));
    for (int32_t x : v) put(x);
    return *this;
  }
  void write(const std::string& path) const {
    std::string out;
    auto app = [&](const auto& x) { out.append(reinterpret_cast<const char*>(&x), sizeof x); };
    out += "GGUF";
    app(uint32_t(3));
    app(uint64_t(0));
    app(n_kv_);
    out += body_;
    std::ofstream(path, std::ios::binary) << out;
  }

 private:
  template <typename T>
  void put(T x) {
    body_.append(reinterpret_cast<const char*>(&x), sizeof x);
  }
  void put_str(const std::string& s) {
    put(uint64_t(s.size()));
    body_ += s;
  }
  void key(const std::string& k, uint32_t type) {
    put_str(k);
    put(type);
    ++n_kv_;
  }
  std::string body_;
  uint64_t n_kv_ = 0;
};

// A tiny SPM vocabulary: control "<|x|>" and the longer control "<|x|>y", user-defined "<u>".
GgufWriter tiny_spm() {
  GgufWriter w;
  w.str("tokenizer.ggml.model", "llama")
      .strs("tokenizer.ggml.tokens",
            {"<unk>", "<s>", "</s>", "<|x|>", "<|x|>y", "<u>", "▁", "a", "b", "y", "▁a"})
      .f32s("tokenizer.ggml.scores", {0, 0, 0, 0, 0, 0, -1, -1, -1, -1, 1})
      .i32s("tokenizer.ggml.token_type", {2, 3, 3, 3, 3, 4, 1, 1, 1, 1, 1});
  return w;
}

TEST(TokenizerSpecial, LongestSpecialTokenWinsAndUserDefinedAlwaysMatches) {
  lbtest::TempDir tmp("tok-special");
  const std::string path = tmp.file("tiny.gguf");
  tiny_spm().write(path);
  GgufFile file(path);
  Tokenizer tok(file);

  // "<|x|>y" (6 bytes) is matched before "<|x|>" (5 bytes); "b" after it gets the space prefix.
  EXPECT_EQ(ids_str(tok.encode("a<|x|>yb", false, true)), "10 4 6 8");
  EXPECT_EQ(ids_str(tok.encode("a<|x|>b", false, true)), "10 3 6 8");
  // Control tokens are plain text without special parsing: '<', '|', 'x', '|', '>' have neither a
  // token nor byte tokens, so each is the unknown token.
  EXPECT_EQ(ids_str(tok.encode("a<|x|>yb", false, false)), "10 0 0 0 0 0 9 8");
  // User-defined tokens are matched even without special parsing.
  EXPECT_EQ(ids_str(tok.encode("a<u>b", false, false)), "10 5 6 8");
  EXPECT_EQ(tok.decode({10, 5, 6, 8}), " a<u> b");  // user-defined tokens always render
  // add_bos defaults to true for SPM, add_eos to false.
  EXPECT_EQ(ids_str(tok.encode("a", true)), "1 10");
}

TEST(TokenizerSpecial, AddEosFromMetadata) {
  lbtest::TempDir tmp("tok-eos");
  const std::string path = tmp.file("eos.gguf");
  tiny_spm()
      .boolean("tokenizer.ggml.add_bos_token", false)
      .boolean("tokenizer.ggml.add_eos_token", true)
      .boolean("tokenizer.ggml.add_space_prefix", false)
      .write(path);
  GgufFile file(path);
  Tokenizer tok(file);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_TRUE(tok.add_eos());
  EXPECT_EQ(ids_str(tok.encode("ab", true)), "7 8 2");  // no space prefix, EOS appended
  EXPECT_EQ(ids_str(tok.encode("ab", false)), "7 8");
}

void expect_load_error(const GgufWriter& w, const std::string& must_mention) {
  lbtest::TempDir tmp("tok-bad");
  const std::string path = tmp.file("bad.gguf");
  w.write(path);
  GgufFile file(path);
  try {
    Tokenizer tok(file);
    ADD_FAILURE() << "loaded without error; expected one naming '" << must_mention << "'";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find(must_mention), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, BadMetadataNamesTheKey) {
  const std::vector<std::string> toks = {"<unk>", "<s>", "</s>", "a"};
  {
    GgufWriter w;  // no vocabulary at all
    w.str("general.name", "x");
    expect_load_error(w, "tokenizer.ggml.model");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "t5").strs("tokenizer.ggml.tokens", toks);
    expect_load_error(w, "tokenizer.ggml.model");
  }
  {
    GgufWriter w;
    w.u32("tokenizer.ggml.model", 1).strs("tokenizer.ggml.tokens", toks);
    expect_load_error(w, "tokenizer.ggml.model");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama");
    expect_load_error(w, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama").str("tokenizer.ggml.tokens", "a");
    expect_load_error(w, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {});
    expect_load_error(w, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama")
        .strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "a"});
    expect_load_error(w, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama")
        .strs("tokenizer.ggml.tokens", toks)
        .f32s("tokenizer.ggml.scores", {0, 0});
    expect_load_error(w, "tokenizer.ggml.scores");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama")
        .strs("tokenizer.ggml.tokens", toks)
        .strs("tokenizer.ggml.token_type", {"1", "1", "1", "1"});
    expect_load_error(w, "tokenizer.ggml.token_type");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "gpt2").strs("tokenizer.ggml.tokens", toks);
    expect_load_error(w, "tokenizer.ggml.merges");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama")
        .strs("tokenizer.ggml.tokens", toks)
        .str("tokenizer.ggml.bos_token_id", "1");
    expect_load_error(w, "tokenizer.ggml.bos_token_id");
  }
  {
    GgufWriter w;  // one token: the default BOS id 1 does not exist, yet add_bos defaults to true
    w.str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a"});
    expect_load_error(w, "tokenizer.ggml.add_bos_token");
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama")
        .strs("tokenizer.ggml.tokens", toks)
        .u32("tokenizer.ggml.add_space_prefix", 1);
    expect_load_error(w, "tokenizer.ggml.add_space_prefix");
  }
}

TEST(TokenizerErrors, OutOfRangeSpecialIdFallsBackLikeLlamaCpp) {
  lbtest::TempDir tmp("tok-ids");
  const std::string path = tmp.file("ids.gguf");
  GgufWriter w;
  w.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", "some-future-pre")  // unknown: default pre-tokenizer
      .strs("tokenizer.ggml.tokens", {"a", "b", "ab", "<|endoftext|>"})
      .i32s("tokenizer.ggml.token_type", {1, 1, 1, 3})
      .strs("tokenizer.ggml.merges", {"a b"})
      .u32("tokenizer.ggml.eos_token_id", 4000000000u)
      .write(path);
  GgufFile file(path);
  Tokenizer tok(file);
  EXPECT_EQ(tok.eos_id(), -1);  // default 11 is outside this vocabulary, the file's id too
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_TRUE(tok.is_end_of_generation(3));  // recognised by its text
  EXPECT_EQ(ids_str(tok.encode("abab", true)), "2 2");
  EXPECT_EQ(tok.decode({2, 3}), "ab");
  EXPECT_EQ(tok.decode({2, 3}, true), "ab<|endoftext|>");
}

}  // namespace
