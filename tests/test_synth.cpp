// Synthetic models: every architecture and weight type gives a file the GGUF reader accepts, with
// llama.cpp's tensor names, shapes, types and metadata; generation is deterministic per seed; bad
// specs are refused with messages that say what is wrong.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "gguf/gguf_file.hpp"
#include "quant/f16.hpp"
#include "synth/synth.hpp"
#include "test_support.hpp"

using namespace lb;

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

SynthSpec small_spec(const std::string& arch, GgmlType type) {
  SynthSpec s = synth_spec(arch, 256, 2, 4, 2, 512, 400, type, 42);
  s.context_length = 512;
  return s;
}

std::vector<int64_t> shape(const GgufTensor& t) {
  return std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims);
}

std::string error_of(const SynthSpec& s, const std::string& path) {
  try {
    write_synthetic_model(s, path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Synth, NamesAndTypeParsing) {
  EXPECT_EQ(synth_arch_names(), (std::vector<std::string>{"llama", "qwen2", "qwen3"}));
  EXPECT_EQ(synth_type_names(), (std::vector<std::string>{"f32", "f16", "q8_0", "q4_0", "q4_k"}));
  EXPECT_EQ(parse_type_name("q4_k"), GgmlType::Q4_K);
  EXPECT_EQ(parse_type_name("Q4_K"), GgmlType::Q4_K);
  EXPECT_EQ(parse_type_name("f32"), GgmlType::F32);
  EXPECT_EQ(parse_type_name("F16"), GgmlType::F16);
  EXPECT_EQ(parse_type_name("q8_0"), GgmlType::Q8_0);
  EXPECT_EQ(parse_type_name("q4_0"), GgmlType::Q4_0);
  EXPECT_EQ(parse_type_name("q6_k"), GgmlType::Q6_K);
  EXPECT_EQ(parse_type_name("bf16"), GgmlType::BF16);
  for (const std::string bad : {"", "q4_k_m", "int8", "f 32"}) {
    try {
      parse_type_name(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("q4_k"), std::string::npos) << e.what();
    }
  }
}

TEST(Synth, Vocabulary) {
  const SynthVocab v = synth_vocab(32000);
  ASSERT_EQ(v.tokens.size(), 32000u);
  ASSERT_EQ(v.scores.size(), 32000u);
  ASSERT_EQ(v.types.size(), 32000u);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.tokens[2], "</s>");
  EXPECT_EQ(v.types[0], 2);
  EXPECT_EQ(v.types[1], 3);
  EXPECT_EQ(v.types[2], 3);
  for (int b = 0; b < 256; ++b) {
    char want[8];
    std::snprintf(want, sizeof want, "<0x%02X>", b);
    EXPECT_EQ(v.tokens[size_t(3 + b)], want);
    EXPECT_EQ(v.types[size_t(3 + b)], 6);
  }
  EXPECT_EQ(v.tokens[259], "\xe2\x96\x81");
  std::set<std::string> unique(v.tokens.begin(), v.tokens.end());
  EXPECT_EQ(unique.size(), v.tokens.size());
  for (const char* piece : {"\xe2\x96\x81the", "the", "\xe2\x96\x81Once", "\xe2\x96\x81upon", "e",
                            "\xe2\x96\x81"
                            "a",
                            "th",
                            "\xe2\x96\x81"
                            "and"}) {
    EXPECT_TRUE(unique.count(piece)) << piece;
  }
  for (size_t i = 259; i < v.tokens.size(); ++i) {
    EXPECT_EQ(v.types[i], 1);
    if (i > 259) {
      EXPECT_LT(v.scores[i], v.scores[i - 1]);
    }
  }
  // Smaller vocabularies are prefixes of larger ones; the minimum is enforced.
  const SynthVocab small = synth_vocab(kSynthMinVocab);
  EXPECT_TRUE(std::equal(small.tokens.begin(), small.tokens.end(), v.tokens.begin()));
  EXPECT_THROW(synth_vocab(kSynthMinVocab - 1), Error);
  // Large vocabularies fill up with longer letter sequences.
  EXPECT_EQ(synth_vocab(152000).tokens.size(), 152000u);
}

class SynthArchType : public ::testing::TestWithParam<std::tuple<std::string, GgmlType>> {};

TEST_P(SynthArchType, WritesWhatLlamaCppExpects) {
  const auto& [arch, type] = GetParam();
  lbtest::TempDir dir("synth");
  const SynthSpec s = small_spec(arch, type);
  const std::string path = dir.file("m.gguf");
  write_synthetic_model(s, path);
  GgufFile f(path);
  const int64_t hd = s.dim / s.n_heads;

  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.find("general.alignment")->type, GgufValueType::UINT32);
  EXPECT_EQ(f.get_string("general.architecture"), arch);
  EXPECT_EQ(f.get_uint(arch + ".context_length"), 512u);
  EXPECT_EQ(f.get_uint(arch + ".embedding_length"), 256u);
  EXPECT_EQ(f.get_uint(arch + ".block_count"), 2u);
  EXPECT_EQ(f.get_uint(arch + ".feed_forward_length"), 512u);
  EXPECT_EQ(f.get_uint(arch + ".attention.head_count"), 4u);
  EXPECT_EQ(f.get_uint(arch + ".attention.head_count_kv"), 2u);
  EXPECT_EQ(f.get_uint(arch + ".rope.dimension_count"), uint64_t(hd));
  EXPECT_EQ(f.find(arch + ".rope.freq_base")->type, GgufValueType::FLOAT32);
  EXPECT_GT(f.get_float(arch + ".rope.freq_base"), 0);
  EXPECT_EQ(f.find(arch + ".attention.layer_norm_rms_epsilon")->type, GgufValueType::FLOAT32);
  EXPECT_GT(f.get_float(arch + ".attention.layer_norm_rms_epsilon"), 0);
  EXPECT_LT(f.get_float(arch + ".attention.layer_norm_rms_epsilon"), 1e-4);
  EXPECT_EQ(f.has(arch + ".attention.key_length"), arch == "qwen3");
  if (arch == "qwen3") {
    EXPECT_EQ(f.get_uint(arch + ".attention.key_length"), uint64_t(hd));
    EXPECT_EQ(f.get_uint(arch + ".attention.value_length"), uint64_t(hd));
  }
  const std::map<GgmlType, uint64_t> ftype = {{GgmlType::F32, 0},
                                              {GgmlType::F16, 1},
                                              {GgmlType::Q4_0, 2},
                                              {GgmlType::Q8_0, 7},
                                              {GgmlType::Q4_K, 15}};
  EXPECT_EQ(f.get_uint("general.file_type"), ftype.at(type));
  EXPECT_EQ(f.find("general.file_type")->type, GgufValueType::UINT32);

  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), synth_vocab(s.vocab).tokens);
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").size(), size_t(s.vocab));
  EXPECT_EQ(f.find("tokenizer.ggml.token_type")->elem_type, GgufValueType::INT32);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), size_t(s.vocab));
  EXPECT_EQ(f.get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));

  // Tensors: names, shapes (ggml order: ne[0] is the row length) and types.
  struct Want {
    std::vector<int64_t> ne;
    GgmlType type;
  };
  const GgmlType F32 = GgmlType::F32;
  std::map<std::string, Want> want = {
      {"token_embd.weight", {{256, 400}, type}},
      {"output_norm.weight", {{256}, F32}},
      {"output.weight", {{256, 400}, type == GgmlType::Q4_K ? GgmlType::Q6_K : type}},
  };
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    want[p + "attn_norm.weight"] = {{256}, F32};
    want[p + "attn_q.weight"] = {{256, 256}, type};
    want[p + "attn_k.weight"] = {{256, 128}, type};
    want[p + "attn_v.weight"] = {{256, 128}, type};
    want[p + "attn_output.weight"] = {{256, 256}, type};
    want[p + "ffn_norm.weight"] = {{256}, F32};
    want[p + "ffn_gate.weight"] = {{256, 512}, type};
    want[p + "ffn_up.weight"] = {{256, 512}, type};
    want[p + "ffn_down.weight"] = {{512, 256}, type};
    if (arch == "qwen2") {
      want[p + "attn_q.bias"] = {{256}, F32};
      want[p + "attn_k.bias"] = {{128}, F32};
      want[p + "attn_v.bias"] = {{128}, F32};
    }
    if (arch == "qwen3") {
      want[p + "attn_q_norm.weight"] = {{hd}, F32};
      want[p + "attn_k_norm.weight"] = {{hd}, F32};
    }
  }
  EXPECT_EQ(f.tensors().size(), want.size());
  for (const auto& [name, w] : want) {
    const GgufTensor* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(shape(*t), w.ne) << name;
    EXPECT_EQ(t->type, w.type) << name;
  }

  // Values: finite; F32/F16 matrices centred with std near 1/sqrt(row length), norms near 1.
  auto values = [&](const GgufTensor& t) {
    std::vector<float> v(size_t(t.n_elements()));
    for (size_t i = 0; i < v.size(); ++i) {
      if (t.type == GgmlType::F32) {
        std::memcpy(&v[i], t.data + 4 * i, 4);
      } else {
        Half h;
        std::memcpy(&h, t.data + 2 * i, 2);
        v[i] = fp16_to_fp32(h);
      }
    }
    return v;
  };
  auto stats = [](const std::vector<float>& v, double& mean, double& sd) {
    double s = 0, s2 = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x));
      s += x;
      s2 += double(x) * x;
    }
    mean = s / double(v.size());
    sd = std::sqrt(s2 / double(v.size()) - mean * mean);
  };
  double mean, sd;
  stats(values(f.tensor("blk.1.ffn_norm.weight")), mean, sd);
  EXPECT_NEAR(mean, 1.0, 0.05);
  EXPECT_GT(sd, 0.01);
  EXPECT_LT(sd, 0.3);
  if (type == GgmlType::F32 || type == GgmlType::F16) {
    stats(values(f.tensor("blk.0.ffn_down.weight")), mean, sd);
    EXPECT_NEAR(mean, 0.0, 0.01);
    EXPECT_NEAR(sd, 1.0 / std::sqrt(512.0), 0.1 / std::sqrt(512.0));
    stats(values(f.tensor("blk.1.attn_q.weight")), mean, sd);
    EXPECT_NEAR(sd, 1.0 / 16, 0.1 / 16);
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchs, SynthArchType,
                         ::testing::Combine(::testing::Values("llama", "qwen2", "qwen3"),
                                            ::testing::Values(GgmlType::F32, GgmlType::F16,
                                                              GgmlType::Q8_0, GgmlType::Q4_0,
                                                              GgmlType::Q4_K)),
                         [](const ::testing::TestParamInfo<SynthArchType::ParamType>& info) {
                           return std::get<0>(info.param) + "_" +
                                  type_name(std::get<1>(info.param));
                         });

TEST(Synth, DeterministicPerSeed) {
  lbtest::TempDir dir("synth");
  for (GgmlType type : {GgmlType::F32, GgmlType::Q4_K}) {
    SynthSpec s = small_spec("qwen2", type);
    write_synthetic_model(s, dir.file("a.gguf"));
    write_synthetic_model(s, dir.file("b.gguf"));
    s.seed = 43;
    write_synthetic_model(s, dir.file("c.gguf"));
    const auto a = read_bytes(dir.file("a.gguf"));
    const auto b = read_bytes(dir.file("b.gguf"));
    const auto c = read_bytes(dir.file("c.gguf"));
    EXPECT_EQ(a, b);
    EXPECT_EQ(a.size(), c.size());
    EXPECT_NE(a, c);
    // Every weight tensor differs between seeds, and no two tensors share their data.
    GgufFile fa(dir.file("a.gguf")), fc(dir.file("c.gguf"));
    for (const GgufTensor& t : fa.tensors()) {
      EXPECT_NE(0, std::memcmp(t.data, fc.tensor(t.name).data, t.n_bytes)) << t.name;
    }
    EXPECT_NE(0, std::memcmp(fa.tensor("blk.0.ffn_gate.weight").data,
                             fa.tensor("blk.0.ffn_up.weight").data,
                             fa.tensor("blk.0.ffn_up.weight").n_bytes));
    EXPECT_NE(0, std::memcmp(fa.tensor("blk.0.attn_norm.weight").data,
                             fa.tensor("blk.1.attn_norm.weight").data, 256 * 4));
  }
}

TEST(Synth, BadSpecsAreRejected) {
  lbtest::TempDir dir("synth");
  const std::string path = dir.file("bad.gguf");
  struct Case {
    std::function<void(SynthSpec&)> change;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[](SynthSpec& s) { s.arch = "gpt2"; }, "unknown architecture 'gpt2'"},
      {[](SynthSpec& s) { s.type = GgmlType::Q6_K; }, "weight type q6_k is not supported"},
      {[](SynthSpec& s) { s.type = GgmlType::BF16; }, "weight type bf16 is not supported"},
      {[](SynthSpec& s) { s.dim = 0; }, "dim = 0 is out of range"},
      {[](SynthSpec& s) { s.n_layers = -1; }, "n_layers = -1 is out of range"},
      {[](SynthSpec& s) { s.n_heads = 0; }, "n_heads = 0"},
      {[](SynthSpec& s) { s.ffn = 0; }, "ffn = 0"},
      {[](SynthSpec& s) { s.context_length = 0; }, "context_length = 0"},
      {[](SynthSpec& s) { s.n_heads = 3; }, "not divisible by n_heads 3"},
      {[](SynthSpec& s) { s.n_kv_heads = 3; }, "not a multiple of n_kv_heads 3"},
      {[](SynthSpec& s) { s.n_kv_heads = 8; }, "not a multiple of n_kv_heads 8"},
      {[](SynthSpec& s) {
         s.dim = 96;
         s.n_heads = 32;
         s.n_kv_heads = 32;
         s.type = GgmlType::F32;
       },
       "head size dim/n_heads = 3 is odd"},
      {[](SynthSpec& s) { s.dim = 320; },
       "multiple of 256 (the K-quant super-block), but dim = 320"},
      {[](SynthSpec& s) { s.ffn = 640; },
       "multiple of 256 (the K-quant super-block), but ffn = 640"},
      {[](SynthSpec& s) {
         s.type = GgmlType::Q8_0;
         s.ffn = 100;
       },
       "q8_0 rows need a length that is a multiple of 32, but ffn = 100"},
      {[](SynthSpec& s) { s.vocab = 100; }, "vocab 100 is too small"},
      {[](SynthSpec& s) { s.vocab = int64_t(1) << 30; }, "vocab = 1073741824 is out of range"},
  };
  for (const Case& c : cases) {
    SynthSpec s = small_spec("llama", GgmlType::Q4_K);
    c.change(s);
    const std::string msg = error_of(s, path);
    EXPECT_NE(msg.find(c.want), std::string::npos)
        << "got '" << msg << "', want '" << c.want << "'";
    EXPECT_THROW(validate_synth_spec(s), Error);
    EXPECT_FALSE(std::filesystem::exists(path));
  }
  // The same sizes are fine for block-32 types and f32.
  SynthSpec s = small_spec("llama", GgmlType::Q8_0);
  s.dim = 320;
  s.n_heads = 5;
  s.n_kv_heads = 1;
  s.ffn = 864;
  EXPECT_EQ(error_of(s, path), "");
  GgufFile f(path);
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").ne[1], 64);
}

// The 1.1B model (TinyLlama's shape) streams to disk in bounded memory and reasonable time. Slow
// (half a minute, 640 MB on disk), so it runs only with LAYERBUS_SLOW_TESTS=1.
TEST(Synth, OneBillionParameterModel) {
  const char* slow = std::getenv("LAYERBUS_SLOW_TESTS");
  if (!slow || std::string(slow) != "1") {
    GTEST_SKIP() << "set LAYERBUS_SLOW_TESTS=1 to write the 1.1B synthetic model";
  }
  lbtest::TempDir dir("synth-1b");
  const SynthSpec s = synth_spec("llama", 2048, 22, 32, 4, 5632, 32000, GgmlType::Q4_K);
  const auto t0 = std::chrono::steady_clock::now();
  write_synthetic_model(s, dir.file("1b.gguf"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("1.1B q4_k model: %.1f s, peak RSS %ld MB\n", secs, ru.ru_maxrss / 1024);
  EXPECT_LT(ru.ru_maxrss / 1024, 1024);
  GgufFile f(dir.file("1b.gguf"));
  int64_t params = 0;
  for (const GgufTensor& t : f.tensors()) params += t.n_elements();
  EXPECT_GT(params, 1'000'000'000);
  EXPECT_LT(params, 1'200'000'000);
  EXPECT_EQ(f.tensors().size(), 3u + 22u * 9u);
}
