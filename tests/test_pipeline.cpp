// The pipeline with real processes on 127.0.0.1: the same tokens as one process (and as
// llama.cpp), the layer split by memory ratio, stage memory holding only its own layers,
// concurrent clients, requests cancelled, abandoned or cut off by a lost stage, and bad input
// that is rejected while the processes keep serving.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <future>

#include "cluster.hpp"
#include "model/generate.hpp"
#include "net/sockets.hpp"
#include "synth/synth.hpp"
#include "sys/memory.hpp"
#include "sys/process.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using lbtest::Cluster;
using lbtest::StageSpec;

// Tokens and their log-probabilities from one process, the reference every pipeline must
// reproduce (greedy by default).
struct LocalResult {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // of each token
};

LocalResult local_generation(const std::string& model, const std::string& prompt, int64_t n,
                             const lb::SamplingParams& sampling = {}) {
  auto file = std::make_shared<lb::GgufFile>(model);
  lb::Tokenizer tok(*file);
  lb::ModelWeights w(file, 0, lb::read_hparams(*file).n_layers);
  lb::ThreadPool pool(1);
  lb::RangeRunner runner(w, pool, 2048);
  lb::GenerateOptions opt;
  opt.n_predict = n;
  opt.sampling = sampling;
  LocalResult out;
  lb::generate(
      runner, tok.encode(prompt, true), opt,
      [&](int32_t id) { return tok.is_end_of_generation(id); },
      [&](const lb::GeneratedToken& t) {
        out.tokens.push_back(t.id);
        out.logprobs.push_back(t.logprob);
        return true;
      });
  return out;
}

std::vector<int32_t> local_greedy(const std::string& model, const std::string& prompt, int64_t n,
                                  const lb::SamplingParams& sampling = {}) {
  return local_generation(model, prompt, n, sampling).tokens;
}

std::vector<StageSpec> unequal_stages(size_t n) {
  const char* budgets[] = {"1GiB", "2GiB", "3GiB", "1536MiB", "2560MiB"};
  std::vector<StageSpec> s;
  for (size_t i = 0; i < n; ++i) s.push_back({"s" + std::to_string(i + 1), budgets[i]});
  return s;
}

long online_cores() {
  return std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
}

// A synthetic model whose steps take a few milliseconds here, written into dir.
std::string model_of_slow_steps(const lbtest::TempDir& dir) {
  const std::string model = dir.file("slow-steps.gguf");
  lb::write_synthetic_model(lb::synth_spec("llama", 1024, 8, 8, 8, 2816, 1024, lb::GgmlType::Q8_0),
                            model);
  return model;
}

// Two stages whose threads together outnumber this machine's cores: the broker keeps one step in
// the chain, and requests that arrive meanwhile wait for it to come back.
std::vector<StageSpec> core_sharing_stages() {
  const int threads = int(online_cores() / 2 + 1);
  return {{"s1", "1GiB", true, threads}, {"s2", "2GiB", true, threads}};
}

// Heartbeats carry the stages' cache bytes: waits (up to 30 s) for every request to end and every
// cache to go.
void expect_every_cache_freed(Cluster& cluster) {
  nlohmann::json s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const auto freed = [&] {
    s = cluster.status();
    bool zero = s["requests"].empty();
    for (const auto& n : s["nodes"]) zero = zero && n["kv"].get<uint64_t>() == 0;
    return zero;
  };
  while (!freed() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(freed()) << s.dump();
}

lb::wire::Generate greedy(const std::string& prompt, uint32_t n) {
  lb::wire::Generate g;
  g.prompt = prompt;
  g.n = n;
  return g;
}

}  // namespace

class PipelineGolden : public ::testing::TestWithParam<int> {};

TEST_P(PipelineGolden, EveryGoldenCaseEqualsLlamaCppAndOneProcess) {
  LB_REQUIRE_SHARED(shared);
  for (const std::string name : {"stories260K", "TinyStories-656K-Q8_0"}) {
    const std::string model = shared + "/models/" + name + ".gguf";
    std::ifstream in(shared + "/models/golden/" + name + ".json");
    const nlohmann::json golden = nlohmann::json::parse(in);
    Cluster cluster(model, unequal_stages(size_t(GetParam())));
    const nlohmann::json status = cluster.wait_serving();
    for (const auto& c : golden["cases"]) {
      const std::string prompt = c["prompt"];
      SCOPED_TRACE(name + " with " + std::to_string(GetParam()) + " stages, prompt '" + prompt +
                   "'");
      const auto remote = lbtest::generate_remote(cluster.broker(), greedy(prompt, c["n_predict"]));
      EXPECT_EQ(remote.prompt_tokens, c["prompt_tokens"].get<std::vector<int32_t>>());
      EXPECT_EQ(remote.tokens, c["tokens"].get<std::vector<int32_t>>());
      EXPECT_EQ(remote.text, c["text"].get<std::string>());
      EXPECT_EQ(remote.tokens, local_greedy(model, prompt, c["n_predict"]));
    }
    std::printf("[pipeline] %s through %d stage(s): %s\n", name.c_str(), GetParam(),
                status["plan"]["bar"].get<std::string>().c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, PipelineGolden, ::testing::Values(1, 2, 3, 5));

TEST(Pipeline, ModelAutoServesTheLargestConfiguredModelThatFitsAndSkipsAMissingFile) {
  LB_REQUIRE_SHARED(shared);
  lbtest::TempDir dir("model-auto");
  const std::string small = shared + "/models/TinyStories-656K-Q8_0.gguf";  // 954 KiB
  const std::string large = shared + "/models/stories260K.gguf";            // 1146 KiB
  const std::string config = dir.file("broker.yaml");
  std::ofstream(config) << "models:\n  - {name: small, path: " << small
                        << "}\n  - {name: large, path: " << large
                        << "}\n  - {name: gone, path: " << dir.file("missing.gguf")
                        << "}\nmodel: large\n";  // the flag below chooses auto instead
  // With 256 KV positions the large model needs 1306 KiB and the small one 1082 KiB.
  const std::pair<const char*, const char*> cases[] = {{"64MiB", "large"}, {"1250KiB", "small"}};
  for (const auto& [budget, want] : cases) {
    SCOPED_TRACE(std::string("one stage of ") + budget);
    Cluster cluster(
        "", {{"s1", budget}},
        {"--config", config, "--model", "auto", "--context", "256", "--max-sequences", "1"},
        {"--cache-dir", dir.file("cache")});
    const nlohmann::json status = cluster.wait_serving();
    EXPECT_EQ(status["model"]["name"], want);
    const std::string why = status["model"]["why"];
    EXPECT_NE(why.find(std::string("auto: ") + want), std::string::npos) << why;
    EXPECT_NE(why.find("gone is unavailable"), std::string::npos) << why;
    if (std::string(want) == "small") {
      EXPECT_NE(why.find("large does not fit"), std::string::npos) << why;
    }
    EXPECT_NE(cluster.log("broker").find("model gone is not served"), std::string::npos);
    const auto remote = lbtest::generate_remote(cluster.broker(), greedy("Once upon a time", 24));
    EXPECT_EQ(remote.tokens,
              local_greedy(std::string(want) == "small" ? small : large, "Once upon a time", 24));
  }
}

TEST(Pipeline, MemoryRatioSplitAndResidentMemoryHoldsOnlyOwnLayers) {
  lbtest::TempDir dir("split");
  const lb::SynthSpec spec =
      lb::synth_spec("llama", 768, 24, 12, 4, 2048, 1024, lb::GgmlType::Q8_0);
  const std::string model = dir.file("split.gguf");
  lb::write_synthetic_model(spec, model);

  Cluster cluster(model, {{"a", "200MiB"}, {"b", "400MiB"}, {"c", "600MiB"}},
                  {"--context", "256", "--max-sequences", "2"});
  const nlohmann::json status = cluster.wait_serving();
  std::map<std::string, std::pair<int, int>> layers;
  for (const auto& n : status["nodes"]) layers[n["id"]] = {n["layers"][0], n["layers"][1]};
  EXPECT_EQ(layers["a"], std::make_pair(0, 4));
  EXPECT_EQ(layers["b"], std::make_pair(4, 12));
  EXPECT_EQ(layers["c"], std::make_pair(12, 24));

  // A stage's own overhead: the resident memory of one that holds no layers (its broker is absent).
  const int idle = lb::spawn_process({lbtest::bin_path("layerbus-stage"), "--broker",
                                      "tcp://127.0.0.1:1", "--memory", "1GiB", "--threads", "1"},
                                     dir.file("idle.log"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const uint64_t baseline = lb::resident_bytes_of(idle).value_or(0);
  lb::stop_processes({idle});
  ASSERT_GT(baseline, 0u);

  // Resident memory = what the stage holds + that overhead, within 2 MiB + 2%: less than one
  // layer, so holding even one layer more (or fewer) than assigned fails.
  auto file = std::make_shared<lb::GgufFile>(model);
  const lb::ModelSizes sizes = lb::model_sizes(*file, lb::read_hparams(*file));
  const uint64_t layer = sizes.layer_bytes[0];
  for (const auto& s : status["plan"]["stages"]) {
    const std::string id = s["node"];
    uint64_t held = 0;
    for (int l = s["begin"]; l < s["end"].get<int>(); ++l) held += sizes.layer_bytes[size_t(l)];
    if (s["embedding"].get<bool>()) held += sizes.embedding_bytes;
    if (s["head"].get<bool>()) held += sizes.head_bytes;
    const uint64_t rss = lb::resident_bytes_of(cluster.stage_pid(id)).value_or(0);
    const double tolerance = 2.0 * 1048576 + 0.02 * double(held);
    ASSERT_LT(tolerance, double(layer));
    std::printf(
        "[pipeline] stage %s: holds %.1f MiB, resident %.1f MiB, idle stage %.1f MiB (one layer "
        "%.1f MiB)\n",
        id.c_str(), held / 1048576.0, rss / 1048576.0, baseline / 1048576.0, layer / 1048576.0);
    EXPECT_NEAR(double(rss), double(held + baseline), tolerance)
        << id << " does not hold exactly its own layers";
  }
}

TEST(Pipeline, EightConcurrentClientsGetTheirSingleRequestTokens) {
  LB_REQUIRE_SHARED(shared);
  const std::string model = shared + "/models/stories260K.gguf";
  const std::vector<std::string> prompts = {
      "Once upon a time",   "The little dog", "Lily and Ben", "One day, a cat",
      "Tom had a red ball", "The sun was",    "A bird sang",  "Mom said"};
  Cluster cluster(model, unequal_stages(3));
  cluster.wait_serving();
  std::vector<std::future<lbtest::RemoteResult>> futures;
  for (const std::string& p : prompts) {
    futures.push_back(std::async(std::launch::async, [&, p] {
      return lbtest::generate_remote(cluster.broker(), greedy(p, 64));
    }));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(futures[i].get().tokens, local_greedy(model, prompts[i], 64))
        << "prompt '" << prompts[i] << "'";
  }
}

TEST(Pipeline, RequestsStartedApartShareStepsWhenStagesShareAMachine) {
  // Each step takes a few milliseconds here, and the four requests start a few milliseconds
  // apart, so each arrives while another's step is in the chain. The stages share this machine's
  // cores (their threads together outnumber them): the broker keeps one step in the chain, and a
  // request that arrives meanwhile joins the next one, so the head stage runs about one batch per
  // token position, not one per token.
  lbtest::TempDir dir("pipeline-share");
  const std::string model = model_of_slow_steps(dir);
  Cluster cluster(model, core_sharing_stages());
  EXPECT_EQ(cluster.wait_serving()["steps"]["max_inflight"].get<int>(), 1);
  const std::vector<std::string> prompts = {"a b", "c d", "e f", "g h"};
  std::vector<std::future<lbtest::RemoteResult>> futures;
  for (const std::string& p : prompts) {
    futures.push_back(std::async(std::launch::async, [&, p] {
      return lbtest::generate_remote(cluster.broker(), greedy(p, 48));
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  size_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int32_t> got = futures[i].get().tokens;
    tokens += got.size();
    EXPECT_EQ(got, local_greedy(model, prompts[i], 48)) << "prompt '" << prompts[i] << "'";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a heartbeat carries the count
  const nlohmann::json s = cluster.status();
  const uint64_t batches = s["nodes"][0]["batches"].get<uint64_t>();
  std::printf("[pipeline] %zu tokens for 4 clients in %llu batches at the head stage\n", tokens,
              (unsigned long long)batches);
  EXPECT_LE(batches, tokens / 3) << "concurrent requests did not share steps";
}

TEST(Pipeline, StagesWhoseThreadsFitTheCoresEachGetAStepByDefault) {
  // Two one-thread stages on this machine: each has a core of its own when it has at least two,
  // so the broker keeps a step in the chain for each (as for stages on different machines).
  lbtest::TempDir dir("pipeline-fit");
  const std::string model = dir.file("fit.gguf");
  lb::write_synthetic_model(lb::synth_spec("llama", 256, 4, 4, 2, 704, 1024, lb::GgmlType::Q4_0),
                            model);
  Cluster cluster(model, unequal_stages(2));
  const nlohmann::json s = cluster.wait_serving();
  EXPECT_EQ(s["nodes"][0]["cores"].get<long>(), online_cores());
  EXPECT_EQ(s["steps"]["max_inflight"].get<long>(), std::min(2L, online_cores()));
}

TEST(Pipeline, StepsInFlightCarryEvenSharesOfTheRequests) {
  // With two steps allowed in the chain, six requests started at once travel in steps of at most
  // three (an even share), whichever order their prompts and tokens come back in, and every one
  // gets the tokens one process gives.
  lbtest::TempDir dir("pipeline-shares");
  const std::string model = dir.file("shares.gguf");
  lb::write_synthetic_model(lb::synth_spec("llama", 256, 4, 4, 2, 704, 1024, lb::GgmlType::Q4_0),
                            model);
  Cluster cluster(model, unequal_stages(2), {"--max-inflight-steps", "2"});
  cluster.wait_serving();
  const std::vector<std::string> prompts = {"a b", "c d e", "f", "g h i j", "k l", "m"};
  std::vector<std::future<lbtest::RemoteResult>> futures;
  for (const std::string& p : prompts) {
    futures.push_back(std::async(std::launch::async, [&, p] {
      return lbtest::generate_remote(cluster.broker(), greedy(p, 40));
    }));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(futures[i].get().tokens, local_greedy(model, prompts[i], 40))
        << "prompt '" << prompts[i] << "'";
  }
  const nlohmann::json steps = cluster.status()["steps"];
  EXPECT_GT(steps["sent"].get<uint64_t>(), 0u) << steps.dump();
  EXPECT_GE(steps["max_requests"].get<uint64_t>(), 1u) << steps.dump();
  EXPECT_LE(steps["max_requests"].get<uint64_t>(), 3u)
      << "a step carried more than an even share of the requests";
}

TEST(Pipeline, CancelledAndAbandonedRequestsFreeTheirCachesWhileOthersGoOn) {
  // One request generates throughout. Others start beside it and are cancelled as soon as they
  // are accepted: the broker keeps one step in the chain here, so a newcomer's prompt usually
  // waits for the running request's step to come back, and is cancelled while it waits. One more
  // is abandoned (its client goes away mid-generation). The broker keeps serving, the running
  // request gets its one-process tokens, and every stage frees every cache.
  lbtest::TempDir dir("pipeline-cancel");
  const std::string model = model_of_slow_steps(dir);
  Cluster cluster(model, core_sharing_stages());
  EXPECT_EQ(cluster.wait_serving()["steps"]["max_inflight"].get<int>(), 1);
  auto running = std::async(std::launch::async, [&] {
    return lbtest::generate_remote(cluster.broker(), greedy("a b", 96));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  const auto next_of_type = [&](lb::BrokerClient& c, const std::string& type) {
    for (;;) {
      std::optional<lb::wire::Envelope> env;
      try {
        env = c.receive(std::chrono::seconds(30));
      } catch (const lb::Error& e) {
        throw std::runtime_error(std::string(e.what()) + cluster.broker_log_end());
      }
      if (env->type() == type) return *env;
      if (env->type() == "error" || env->type() == "done")
        throw std::runtime_error("got '" + env->type() + "' while waiting for '" + type + "'");
    }
  };
  for (int i = 0; i < 6; ++i) {
    lb::BrokerClient c(cluster.broker());
    c.send(lb::wire::encode(greedy("c d " + std::to_string(i), 64)));
    lb::wire::Accepted accepted;
    lb::wire::decode(next_of_type(c, "accepted"), accepted);
    c.send(lb::wire::encode(lb::wire::Cancel{accepted.req}));
    lb::wire::Done done;
    lb::wire::decode(next_of_type(c, "done"), done);
    EXPECT_EQ(done.reason, "cancelled") << "request " << accepted.req;
    ASSERT_TRUE(lb::process_alive(cluster.broker_pid())) << cluster.log("broker");
  }
  {
    lb::BrokerClient abandoned(cluster.broker());
    abandoned.send(lb::wire::encode(greedy("e f", 200)));
    next_of_type(abandoned, "token");
  }

  EXPECT_EQ(running.get().tokens, local_greedy(model, "a b", 96));
  ASSERT_TRUE(lb::process_alive(cluster.broker_pid())) << cluster.log("broker");
  expect_every_cache_freed(cluster);
  EXPECT_NE(cluster.log("broker").find("is gone: cancelling"), std::string::npos)
      << "the abandoned request was not noticed";
}

TEST(Pipeline, LoopStepsAndBrokerStepsGiveTheSameTokensAndLogprobs) {
  // By default the last stage sends each sampled token straight on to the head; with
  // --loop-steps false every step comes from the broker. Both give one process's tokens and
  // log-probabilities, and the steps the broker reports say which way they went.
  lbtest::TempDir dir("pipeline-loop");
  const std::string model = model_of_slow_steps(dir);
  const LocalResult expected = local_generation(model, "a b", 24);
  for (const bool loop : {true, false}) {
    SCOPED_TRACE(loop ? "loop steps" : "broker steps");
    Cluster cluster(
        model, unequal_stages(3),
        loop ? std::vector<std::string>{} : std::vector<std::string>{"--loop-steps", "false"});
    cluster.wait_serving();
    const lbtest::RemoteResult remote =
        lbtest::generate_remote(cluster.broker(), greedy("a b", 24));
    EXPECT_EQ(remote.tokens, expected.tokens);
    // The tail sends a loop step before it works out the log-probabilities: they still arrive
    // with their tokens, equal to one process's.
    EXPECT_EQ(remote.logprobs, expected.logprobs);
    const nlohmann::json steps = cluster.status()["steps"];
    // 24 steps: the prompt's and one per token after the first but the last.
    EXPECT_EQ(steps["sent"].get<int>(), 24) << steps.dump();
    EXPECT_EQ(steps["looped"].get<int>(), loop ? 23 : 0) << steps.dump();
  }
}

TEST(Pipeline, AStopStringEndsARequestWhoseNextStepIsUnderWay) {
  // The last stage has sent the request's next token on by the time the broker finds the stop
  // string in its text: the request ends all the same, with the text before the stop string and
  // no token after it, its caches are freed once that step is back, and the cluster goes on.
  lbtest::TempDir dir("pipeline-stop");
  const std::string model = model_of_slow_steps(dir);
  const std::vector<int32_t> local = local_greedy(model, "a b", 40);
  lb::Tokenizer tok(*std::make_shared<lb::GgufFile>(model));
  Cluster cluster(model, unequal_stages(2));
  cluster.wait_serving();
  const auto full = lbtest::generate_remote(cluster.broker(), greedy("a b", 40));
  ASSERT_EQ(full.tokens, local);
  // A stop string from the middle of the text, so that it ends the request midway.
  const std::string stop = full.text.substr(full.text.size() / 2, 2);
  const std::string before = full.text.substr(0, full.text.find(stop));
  lb::wire::Generate g = greedy("a b", 40);
  g.stop = {stop};
  const auto remote = lbtest::generate_remote(cluster.broker(), g);
  EXPECT_EQ(remote.reason, "stop");
  EXPECT_EQ(remote.text, before);
  ASSERT_LT(remote.tokens.size(), local.size());
  EXPECT_TRUE(std::equal(remote.tokens.begin(), remote.tokens.end(), local.begin()));
  // The token that completed the stop string is the request's last.
  EXPECT_NE(tok.detokenize(remote.tokens, true, false).find(stop), std::string::npos);

  EXPECT_EQ(lbtest::generate_remote(cluster.broker(), greedy("a b", 40)).tokens, local);
  expect_every_cache_freed(cluster);
  for (const char* stage : {"s1", "s2"})
    EXPECT_EQ(cluster.log(stage).find("failed"), std::string::npos) << cluster.log(stage);
}

TEST(Pipeline, AStageLostMidRequestFailsItsRequestsAndTheClusterServesAgainWithANewOne) {
  // A stage dies while one request's step is in the chain and a second request's prompt waits
  // for that step to come back. Both fail with an error naming the lost stage; the broker keeps
  // running, plans again once a new stage registers, and serves a third request exactly.
  lbtest::TempDir dir("pipeline-lost");
  const std::string model = model_of_slow_steps(dir);
  std::vector<StageSpec> stages = core_sharing_stages();
  Cluster cluster(model, stages, {"--node-timeout-ms", "1500"});
  EXPECT_EQ(cluster.wait_serving()["steps"]["max_inflight"].get<int>(), 1);
  const auto error_of = [&](const std::string& prompt) {
    try {
      lbtest::generate_remote(cluster.broker(), greedy(prompt, 400));
      return std::string("no error");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  auto running = std::async(std::launch::async, error_of, "a b");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(::kill(cluster.stage_pid("s2"), SIGKILL), 0);
  auto waiting = std::async(std::launch::async, error_of, "c d");
  EXPECT_NE(running.get().find("'s2' was lost"), std::string::npos);
  EXPECT_NE(waiting.get().find("'s2' was lost"), std::string::npos);

  StageSpec replacement = stages[1];
  replacement.id = "s3";
  cluster.add_stage(replacement);
  cluster.wait_serving();
  EXPECT_EQ(lbtest::generate_remote(cluster.broker(), greedy("e f", 24)).tokens,
            local_greedy(model, "e f", 24));
  EXPECT_TRUE(lb::process_alive(cluster.broker_pid())) << cluster.log("broker");
}

TEST(Pipeline, SeededSamplingEqualsOneProcess) {
  LB_REQUIRE_SHARED(shared);
  const std::string model = shared + "/models/TinyStories-656K-Q8_0.gguf";
  Cluster cluster(model, unequal_stages(2));
  cluster.wait_serving();
  lb::SamplingParams p;
  p.temperature = 0.9f;
  p.repeat_penalty = 1.1f;
  for (uint64_t seed : {1u, 7u, 12345u}) {
    p.seed = seed;
    lb::wire::Generate g = greedy("Once upon a time", 80);
    g.temp = p.temperature;
    g.rep = p.repeat_penalty;
    g.seed = seed;
    const auto remote = lbtest::generate_remote(cluster.broker(), g).tokens;
    EXPECT_EQ(remote, local_greedy(model, "Once upon a time", 80, p)) << "seed " << seed;
    EXPECT_EQ(remote, lbtest::generate_remote(cluster.broker(), g).tokens)
        << "seed " << seed << " is not repeatable";
  }
}

namespace {

// Sends raw frames on the broker's control channel and returns the reply's type and error text.
std::pair<std::string, std::string> ask_raw(const std::string& broker, const std::string& frame) {
  lb::BrokerClient c(broker);
  c.send(frame);
  lb::wire::Envelope env = c.receive(std::chrono::seconds(10));
  std::string msg;
  if (env.type() == "error") {
    lb::wire::ErrorMsg e;
    lb::wire::decode(env, e);
    msg = e.msg;
  }
  return {env.type(), msg};
}

// A valid message with one byte of the version changed.
std::string with_version(uint32_t v) {
  std::string m = lb::wire::encode(lb::wire::StatusQuery{});
  const std::string key = std::string("\xa1v", 2);
  const size_t at = m.find(key);
  m[at + 2] = char(v);
  return m;
}

}  // namespace

TEST(Pipeline, BadInputIsRejectedAndProcessesKeepServing) {
  LB_REQUIRE_SHARED(shared);
  const std::string model = shared + "/models/stories260K.gguf";
  Cluster cluster(model, unequal_stages(2), {"--max-message", "64KiB"}, {"--max-message", "64KiB"});
  const nlohmann::json status = cluster.wait_serving();
  const auto reference =
      lbtest::generate_remote(cluster.broker(), greedy("Once upon a time", 16)).tokens;

  // Broker control channel: each bad message gets an error reply naming the problem.
  auto [t1, e1] = ask_raw(cluster.broker(), std::string("\xc1\xff\x00garbage", 10));
  EXPECT_EQ(t1, "error");
  auto [t2, e2] = ask_raw(cluster.broker(), with_version(7));
  EXPECT_EQ(t2, "error");
  EXPECT_NE(e2.find("version"), std::string::npos) << e2;
  lb::wire::Generate g = greedy("x", 1);
  std::string unknown = lb::wire::encode(g);
  unknown.replace(unknown.find("generate"), 8, "generat3");
  auto [t3, e3] = ask_raw(cluster.broker(), unknown);
  EXPECT_EQ(t3, "error");
  EXPECT_NE(e3.find("generat3"), std::string::npos) << e3;
  auto [t4, e4] = ask_raw(cluster.broker(), lb::wire::encode(lb::wire::Cancel{424242}));
  EXPECT_EQ(t4, "error");
  EXPECT_NE(e4.find("424242"), std::string::npos) << e4;
  lb::wire::Generate big = greedy(std::string(70 * 1024, 'a'), 1);
  auto [t5, e5] = ask_raw(cluster.broker(), lb::wire::encode(big));
  EXPECT_EQ(t5, "error");
  EXPECT_NE(e5.find("exceeds the limit"), std::string::npos) << e5;

  // Stage data channel: a PUSH straight into the head stage's PULL and into the second's.
  std::string head, second;
  for (const auto& n : status["nodes"]) (n["layers"][0] == 0 ? head : second) = n["data"];
  zmq::context_t ctx(1);
  auto push_to = [&](const std::string& endpoint, const std::string& frame) {
    zmq::socket_t s = lb::make_socket(ctx, zmq::socket_type::push, 1 << 20);
    s.connect(endpoint);
    lb::send_frame(s, frame);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  };
  const uint64_t epoch = status["epoch"];
  lb::wire::Step unknown_req;  // a request the stage never saw, at a position it cannot have
  unknown_req.epoch = epoch;
  unknown_req.id = 99;
  unknown_req.seqs = {{777, 5, 1, std::nullopt}};
  unknown_req.tokens = {1};
  lb::wire::Step wrong_shape = unknown_req;  // activations of the wrong width for layer 1
  wrong_shape.seqs = {{778, 0, 1, std::nullopt}};
  wrong_shape.tokens.clear();
  wrong_shape.rows = 1;
  wrong_shape.dim = 3;
  wrong_shape.data =
      lb::wire::pack_activations(std::vector<float>(3, 1.0f).data(), 3, lb::wire::DType::F32);
  std::string bad_dtype = lb::wire::encode(wrong_shape);
  bad_dtype[bad_dtype.find("\xa5"
                           "dtype") +
            6] = 9;
  lb::wire::Step old_epoch = unknown_req;
  old_epoch.epoch = epoch + 5;
  push_to(head, "not msgpack at all");
  push_to(head, with_version(9));
  push_to(head, lb::wire::encode(unknown_req));
  push_to(head, lb::wire::encode(old_epoch));
  push_to(second, lb::wire::encode(wrong_shape));
  push_to(second, bad_dtype);
  push_to(second, std::string(80 * 1024, '\x90'));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  const std::string head_log = cluster.log("s1") + cluster.log("s2");
  for (const char* expected : {"rejected data message", "version", "starts at position 5", "epoch",
                               "rows of 3 values", "dtype", "exceeds the limit"}) {
    EXPECT_NE(head_log.find(expected), std::string::npos)
        << "no logged error mentioning '" << expected << "' in the stage logs:\n"
        << head_log;
  }
  const std::string broker_log = cluster.log("broker");
  EXPECT_NE(broker_log.find("reports an error"), std::string::npos)
      << "stages did not report their errors";

  // Everyone still serves, and still gives the same tokens.
  EXPECT_EQ(lbtest::generate_remote(cluster.broker(), greedy("Once upon a time", 16)).tokens,
            reference);
}
