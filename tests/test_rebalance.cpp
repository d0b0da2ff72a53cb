// Live rebalancing with real processes: the plan changes while 8 requests generate, layers move,
// memory is given back, and every output equals its undisturbed greedy tokens.
#include <atomic>
#include <csignal>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>

#include "cluster.hpp"
#include "model/generate.hpp"
#include "net/sockets.hpp"
#include "synth/synth.hpp"
#include "sys/memory.hpp"
#include "sys/process.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using lbtest::Cluster;

constexpr uint32_t kTokens = 64;

// A model whose layers are large enough for their memory to show in resident-set figures.
std::string big_layers_model(const lbtest::TempDir& dir, int64_t kv_heads = 4) {
  const lb::SynthSpec spec =
      lb::synth_spec("llama", 768, 24, 12, kv_heads, 2048, 1024, lb::GgmlType::Q8_0);
  const std::string path = dir.file("rebalance-" + std::to_string(kv_heads) + ".gguf");
  lb::write_synthetic_model(spec, path);
  return path;
}

std::vector<std::vector<int32_t>> undisturbed(const std::string& model,
                                              const std::vector<std::string>& prompts) {
  auto file = std::make_shared<lb::GgufFile>(model);
  lb::Tokenizer tok(*file);
  lb::ModelWeights w(file, 0, lb::read_hparams(*file).n_layers);
  lb::ThreadPool pool(2);
  lb::RangeRunner runner(w, pool, 256);
  std::vector<std::vector<int32_t>> out;
  for (const std::string& p : prompts) {
    lb::GenerateOptions opt;
    opt.n_predict = kTokens;
    out.emplace_back();
    lb::generate(
        runner, tok.encode(p, true), opt, [&](int32_t id) { return tok.is_end_of_generation(id); },
        [&](const lb::GeneratedToken& t) {
          out.back().push_back(t.id);
          return true;
        });
  }
  return out;
}

// 8 requests streaming at once; `during` runs once every request has produced a few tokens.
std::vector<std::vector<int32_t>> generate_while(const std::string& broker,
                                                 const std::vector<std::string>& prompts,
                                                 const std::function<void()>& during) {
  std::atomic<int> started{0};
  std::vector<std::future<std::vector<int32_t>>> futures;
  for (const std::string& p : prompts) {
    futures.push_back(std::async(std::launch::async, [&, p] {
      lb::BrokerClient c(broker);
      lb::wire::Generate g;
      g.prompt = p;
      g.n = kTokens;
      c.send(lb::wire::encode(g));
      int tokens = 0;
      for (;;) {
        lb::wire::Envelope env = c.receive(std::chrono::seconds(120));
        if (env.type() == "token" && ++tokens == 3) started++;
        if (env.type() == "error") {
          lb::wire::ErrorMsg e;
          lb::wire::decode(env, e);
          throw std::runtime_error("request failed: " + e.msg);
        }
        if (env.type() == "done") {
          lb::wire::Done d;
          lb::wire::decode(env, d);
          if (tokens < 3) started++;
          return d.tokens;
        }
      }
    }));
  }
  while (started < int(prompts.size())) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  during();
  std::vector<std::vector<int32_t>> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

std::string control(const std::string& broker, const std::string& op, const std::string& node = "",
                    uint64_t budget = 0, const std::string& strategy = "") {
  lb::BrokerClient c(broker);
  lb::wire::PlanChange r;
  lb::wire::decode(c.ask(lb::wire::encode(lb::wire::Control{op, node, budget, strategy}),
                         std::chrono::seconds(30)),
                   r);
  return r.new_plan;
}

nlohmann::json wait_rebalanced(Cluster& cluster) {
  for (int i = 0; i < 2000; ++i) {
    nlohmann::json s = cluster.status();
    if (s["serving"].get<bool>() && !s["rebalancing"].get<bool>()) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("rebalance did not finish");
}

// The last move kept every generating request's caches (moved between stages, none replayed).
void expect_caches_moved(const nlohmann::json& status) {
  ASSERT_TRUE(status.contains("last_migration")) << status.dump();
  const nlohmann::json& m = status["last_migration"];
  EXPECT_GE(m["moved"].get<int>(), 1) << "the move did not happen while requests were generating";
  EXPECT_EQ(m["replayed"].get<int>(), 0) << m.dump();
  EXPECT_GT(m["kv_bytes"].get<uint64_t>(), 0u) << "no KV cache went from stage to stage";
}

int layers_of(const nlohmann::json& status, const std::string& id) {
  for (const auto& n : status["nodes"]) {
    if (n["id"] == id && n.contains("layers"))
      return n["layers"][1].get<int>() - n["layers"][0].get<int>();
  }
  return 0;
}

const std::vector<std::string> kPrompts = {"a", "b c", "d e f", "g", "h i", "j k l", "m", "n o"};

}  // namespace

TEST(Rebalance, SetBudgetHalvesAStageMidGenerationAndOutputsStayExact) {
  lbtest::TempDir dir("rebalance-budget");
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  Cluster cluster(model, {{"a", "400MiB"}, {"b", "400MiB"}, {"c", "400MiB"}},
                  {"--context", "256", "--max-sequences", "8"});
  const nlohmann::json before = cluster.wait_serving();
  const uint64_t rss_before = lb::resident_bytes_of(cluster.stage_pid("c")).value_or(0);
  const auto got = generate_while(cluster.broker(), kPrompts, [&] {
    control(cluster.broker(), "set_budget", "c", 200ull << 20);
  });
  const nlohmann::json after = wait_rebalanced(cluster);
  EXPECT_EQ(after["epoch"].get<uint64_t>(), before["epoch"].get<uint64_t>() + 1);
  EXPECT_LT(layers_of(after, "c"), layers_of(before, "c"));
  const uint64_t rss_after = lb::resident_bytes_of(cluster.stage_pid("c")).value_or(0);
  std::printf("[rebalance] stage c: %d -> %d layers, resident %.1f -> %.1f MiB\n",
              layers_of(before, "c"), layers_of(after, "c"), rss_before / 1048576.0,
              rss_after / 1048576.0);
  EXPECT_LT(rss_after + (10ull << 20), rss_before)
      << "stage c did not give its dropped layers' memory back";
  expect_caches_moved(after);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}

TEST(Rebalance, AStageThatReloadsItsConfigOnSighupHasItsNewBudgetPlanned) {
  lbtest::TempDir dir("rebalance-sighup");
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  const std::string config = dir.file("c.yaml");
  std::ofstream(config) << "memory: 400MiB\n";
  lbtest::StageSpec c("c", "400MiB");
  c.args = {"--config", config};
  Cluster cluster(model, {{"a", "400MiB"}, {"b", "400MiB"}, c},
                  {"--context", "256", "--max-sequences", "8"});
  const nlohmann::json before = cluster.wait_serving();
  const auto got = generate_while(cluster.broker(), kPrompts, [&] {
    std::ofstream(config) << "# halved\nmemory: 200MiB\n";
    ASSERT_EQ(::kill(cluster.stage_pid("c"), SIGHUP), 0);
    for (int i = 0; i < 500; ++i) {
      const nlohmann::json s = cluster.status();
      for (const auto& n : s["nodes"]) {
        if (n["id"] == "c" && n["budget"].get<uint64_t>() == 200ull << 20) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "the broker never heard of stage c's new budget:\n" << cluster.log("c");
  });
  const nlohmann::json after = wait_rebalanced(cluster);
  EXPECT_LT(layers_of(after, "c"), layers_of(before, "c"));
  expect_caches_moved(after);
  EXPECT_NE(cluster.log("c").find("config reloaded"), std::string::npos);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}

nlohmann::json wait_registered(Cluster& cluster, const std::string& id) {
  for (int i = 0; i < 1000; ++i) {
    const nlohmann::json s = cluster.status();
    for (const auto& n : s["nodes"]) {
      if (n["id"] == id) return s;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("stage " + id + " never registered:\n" + cluster.log(id));
}

TEST(Rebalance, AStageJoiningWhileServingGetsLayersAtTheNextRebalance) {
  lbtest::TempDir dir("rebalance-join");
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  Cluster cluster(model, {{"a", "400MiB"}, {"b", "400MiB"}},
                  {"--context", "256", "--max-sequences", "8"});
  cluster.wait_serving();
  cluster.add_stage({"c", "400MiB"});
  nlohmann::json s = wait_registered(cluster, "c");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  s = cluster.status();
  EXPECT_EQ(layers_of(s, "c"), 0) << "without auto_rebalance a new stage waits for a rebalance";
  const auto got =
      generate_while(cluster.broker(), kPrompts, [&] { control(cluster.broker(), "rebalance"); });
  s = wait_rebalanced(cluster);
  EXPECT_GT(layers_of(s, "c"), 0);
  expect_caches_moved(s);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}

TEST(Rebalance, WithAutoRebalanceAStageJoiningMidGenerationGetsLayersAtOnce) {
  lbtest::TempDir dir("rebalance-auto");
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  Cluster cluster(model, {{"a", "400MiB"}, {"b", "400MiB"}},
                  {"--context", "256", "--max-sequences", "8", "--auto-rebalance"});
  cluster.wait_serving();
  const auto got = generate_while(cluster.broker(), kPrompts, [&] {
    cluster.add_stage({"c", "400MiB"});
    for (int i = 0; i < 1000; ++i) {
      const nlohmann::json s = cluster.status();
      if (layers_of(s, "c") > 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "stage c was given no layers:\n" << cluster.log("broker");
  });
  const nlohmann::json s = wait_rebalanced(cluster);
  EXPECT_GT(layers_of(s, "c"), 0);
  EXPECT_NE(cluster.log("broker").find("c joined (auto_rebalance)"), std::string::npos);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}

TEST(Rebalance, DrainAndStrategySwitchesMidGenerationChangeNothing) {
  lbtest::TempDir dir("rebalance-drain");
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  Cluster cluster(model, {{"a", "300MiB"}, {"b", "400MiB"}, {"c", "600MiB"}},
                  {"--context", "256", "--max-sequences", "8"});
  cluster.wait_serving();

  auto got =
      generate_while(cluster.broker(), kPrompts, [&] { control(cluster.broker(), "drain", "b"); });
  nlohmann::json s = wait_rebalanced(cluster);
  EXPECT_EQ(layers_of(s, "b"), 0);
  for (const auto& n : s["nodes"])
    EXPECT_NE(n["id"], "b") << "the drained node is still registered";
  for (int i = 0; i < 250 && lb::process_alive(cluster.stage_pid("b")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(lb::process_alive(cluster.stage_pid("b"))) << "the drained stage did not exit";
  expect_caches_moved(s);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "drain, prompt '" << kPrompts[i] << "'";

  got = generate_while(cluster.broker(), kPrompts, [&] {
    control(cluster.broker(), "rebalance", "", 0, "uniform");
    wait_rebalanced(cluster);
    control(cluster.broker(), "rebalance", "", 0, "memory");
  });
  s = wait_rebalanced(cluster);
  EXPECT_EQ(s["plan"]["strategy"], "memory");
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "uniform/memory, prompt '" << kPrompts[i] << "'";
}

namespace {

// Eight requests generate through three stages while the split turns uniform; every output must
// equal one process's. `check` looks at the cluster and its last move once the move is done.
void rebalance_mid_generation(
    const std::string& tag, std::vector<std::string> broker_args,
    const std::vector<std::string>& stage_args,
    const std::function<void(const Cluster&, const nlohmann::json& last_migration)>& check) {
  lbtest::TempDir dir(tag);
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  broker_args.insert(broker_args.begin(), {"--context", "256", "--max-sequences", "8"});
  Cluster cluster(model, {{"a", "300MiB"}, {"b", "400MiB"}, {"c", "600MiB"}}, broker_args,
                  stage_args);
  cluster.wait_serving();
  const auto got = generate_while(cluster.broker(), kPrompts, [&] {
    control(cluster.broker(), "rebalance", "", 0, "uniform");
  });
  const nlohmann::json s = wait_rebalanced(cluster);
  check(cluster, s["last_migration"]);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}

}  // namespace

TEST(Rebalance, WithoutKvTransferCachesAreRebuiltByReplay) {
  rebalance_mid_generation("rebalance-replay", {"--kv-transfer", "false"}, {},
                           [](const Cluster&, const nlohmann::json& m) {
                             EXPECT_GE(m["replayed"].get<int>(), 1) << m.dump();
                             EXPECT_EQ(m["moved"].get<int>(), 0) << m.dump();
                             EXPECT_EQ(m["kv_bytes"].get<uint64_t>(), 0u);
                           });
}

// A KV part lost on its way (the broker drops one here) cannot stall a move: its new owner stops
// waiting after --kv-wait-s, the request is replayed, and every output stays exact.
TEST(Rebalance, AKvPartThatNeverComesIsReplayedInstead) {
  rebalance_mid_generation(
      "rebalance-lost-part", {"--drop-kv-parts", "1"}, {"--kv-wait-s", "1"},
      [](const Cluster& cluster, const nlohmann::json& m) {
        EXPECT_GE(m["replayed"].get<int>(), 1) << m.dump();
        EXPECT_NE(cluster.log("broker").find("--drop-kv-parts"), std::string::npos);
        std::string stages;
        for (const char* id : {"a", "b", "c"}) stages += cluster.log(id);
        EXPECT_NE(stages.find("no KV part for 1 s"), std::string::npos) << stages;
      });
}

TEST(Rebalance, KvCacheGrowthPastTheHighWaterMarkMovesLayersByItself) {
  // Stage c comes first and is filled to its 40 MiB budget by `priority`, with the planner told to
  // reserve KV for only 64 positions per layer. Eight requests make its caches grow (no GQA: 3 KiB
  // per position per layer) past 90% of the budget; it reports pressure, and the broker re-plans
  // with what the caches really use, moving layers to a.
  lbtest::TempDir dir("rebalance-pressure");
  const std::string model = big_layers_model(dir, 12);
  const auto expected = undisturbed(model, kPrompts);
  Cluster cluster(model, {{"c", "40MiB"}, {"a", "600MiB"}},
                  {"--context", "512", "--max-sequences", "8", "--strategy", "priority",
                   "--kv-reserve-tokens", "64"});
  const nlohmann::json before = cluster.wait_serving();
  const auto got = lbtest::generate_all(cluster.broker(), kPrompts, kTokens);
  const nlohmann::json after = wait_rebalanced(cluster);
  std::printf("[rebalance] stage c: %d -> %d layers after its KV cache grew (epoch %llu -> %llu)\n",
              layers_of(before, "c"), layers_of(after, "c"),
              (unsigned long long)before["epoch"].get<uint64_t>(),
              (unsigned long long)after["epoch"].get<uint64_t>());
  EXPECT_GT(after["epoch"].get<uint64_t>(), before["epoch"].get<uint64_t>());
  EXPECT_LT(layers_of(after, "c"), layers_of(before, "c"));
  EXPECT_NE(cluster.log("broker").find("memory pressure on c"), std::string::npos);
  EXPECT_NE(cluster.log("c").find("memory pressure"), std::string::npos);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}

namespace {

nlohmann::json stories260k_golden(const std::string& shared) {
  std::ifstream in(shared + "/models/golden/stories260K.json");
  return nlohmann::json::parse(in);
}

// Greedy generation of a golden case through the cluster gives llama.cpp's tokens.
void expect_golden_tokens(const std::string& broker, const nlohmann::json& c) {
  lb::wire::Generate g;
  g.prompt = c["prompt"];
  g.n = c["n_predict"];
  EXPECT_EQ(lbtest::generate_remote(broker, g).tokens, c["tokens"].get<std::vector<int32_t>>())
      << "prompt '" << g.prompt << "'";
}

}  // namespace

TEST(Rebalance, StageWithoutTheModelFileFetchesItsLayersAndACorruptChunkIsSentAgain) {
  LB_REQUIRE_SHARED(shared);
  lbtest::TempDir cache("fetch-cache");
  Cluster cluster(shared + "/models/stories260K.gguf",
                  {{"local", "1GiB", true}, {"remote", "2GiB", false}}, {"--corrupt-chunks", "1"},
                  {"--cache-dir", cache.path.string()});
  cluster.wait_serving();
  const std::string log = cluster.log("remote");
  EXPECT_NE(log.find("failed its size/hash check"), std::string::npos) << log;
  EXPECT_NE(log.find("from the broker"), std::string::npos) << log;
  for (const auto& c : stories260k_golden(shared)["cases"])
    expect_golden_tokens(cluster.broker(), c);
}

// A stage that cannot load its layers (its own model copy is truncated) would keep its epoch from
// ever serving: the broker marks it failed, says why, and serves with the stages that can.
TEST(Rebalance, AStageThatCannotLoadItsLayersIsPlannedAround) {
  LB_REQUIRE_SHARED(shared);
  const std::string model = shared + "/models/stories260K.gguf";
  lbtest::TempDir dir("truncated-model");
  const std::string truncated = dir.file("truncated.gguf");
  {
    std::ifstream in(model, std::ios::binary);
    std::string head(20000, '\0');
    in.read(head.data(), std::streamsize(head.size()));
    std::ofstream(truncated, std::ios::binary).write(head.data(), std::streamsize(in.gcount()));
  }
  lbtest::StageSpec bad("bad", "1GiB", false);
  bad.args = {"--model", truncated};
  // Two stages are awaited, so the first plan gives the bad one layers.
  Cluster cluster(model, {bad, {"a", "1GiB"}});
  std::string error;
  for (int i = 0; i < 600 && error.empty(); ++i) {
    const nlohmann::json j = cluster.status();
    for (const auto& n : j["nodes"]) {
      if (n["id"] == "bad" && n["state"] == "failed") error = n.value("error", "?");
    }
    if (error.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(error.empty()) << cluster.log("broker");
  EXPECT_NE(error.find(truncated), std::string::npos) << error;
  EXPECT_NE(cluster.log("broker").find("planning without it"), std::string::npos);

  cluster.add_stage({"b", "1GiB"});
  const nlohmann::json serving = cluster.wait_serving();
  for (const auto& n : serving["nodes"]) {
    if (n["id"] == "bad") {
      EXPECT_FALSE(n.contains("layers")) << n.dump();
    }
  }
  for (const auto& c : stories260k_golden(shared)["cases"])
    expect_golden_tokens(cluster.broker(), c);
}

namespace {

// A stage of the test's own: a control connection that registers and then says what the test
// tells it to.
class FakeStage {
 public:
  FakeStage(const std::string& broker, const std::string& id)
      : socket_(lb::make_socket(ctx_, zmq::socket_type::dealer, size_t(1) << 20)) {
    socket_.set(zmq::sockopt::routing_id, id);
    socket_.connect(broker);
    lb::wire::Register r;
    r.node = id;
    r.host = "test";
    r.budget = uint64_t(1) << 30;
    r.compute = 1;
    r.threads = 1;
    r.data = "tcp://127.0.0.1:9";  // never used: this stage never gets ready
    send(lb::wire::encode(r));
  }
  void send(const std::string& bytes) { lb::send_frame(socket_, bytes); }
  // The next message of `type`, skipping others (heartbeating meanwhile); throws after 30 s.
  lb::wire::Envelope await(const std::string& type) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      zmq::message_t msg;
      if (!socket_.recv(msg, zmq::recv_flags::dontwait)) {
        send(lb::wire::encode(lb::wire::Heartbeat{}));
        continue;
      }
      lb::wire::Envelope env = lb::wire::Envelope::parse(msg.data(), msg.size(), {});
      if (env.type() == type) return env;
    }
    throw std::runtime_error("no '" + type + "' from the broker within 30 s");
  }
  // This node's entry in the broker's status, asked on this connection: the broker has handled
  // everything sent before it.
  nlohmann::json entry(const std::string& id) {
    send(lb::wire::encode(lb::wire::StatusQuery{}));
    lb::wire::StatusReply r;
    lb::wire::decode(await("status_reply"), r);
    const nlohmann::json j = nlohmann::json::parse(r.json);
    for (const auto& n : j["nodes"]) {
      if (n["id"] == id) return n;
    }
    return {};
  }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t socket_;
};

}  // namespace

// An `error` answering an assign names that assign's epoch. One about an earlier epoch (it
// crossed a newer plan on the way) says nothing about the stage's new range, and must not fail it.
TEST(Rebalance, AnAssignErrorAboutAnEarlierEpochDoesNotFailTheStage) {
  LB_REQUIRE_SHARED(shared);
  Cluster cluster(shared + "/models/stories260K.gguf", {{"a", "1GiB"}}, {"--auto-rebalance"});
  cluster.wait_serving();
  FakeStage fake(cluster.broker(), "fake");
  lb::wire::Assign assign;
  lb::wire::decode(fake.await("assign"), assign);
  ASSERT_GE(assign.epoch, 2u);

  fake.send(lb::wire::encode(
      lb::wire::ErrorMsg{"stale failure", "assign", std::nullopt, assign.epoch - 1}));
  nlohmann::json n = fake.entry("fake");
  EXPECT_EQ(n["state"], "registered") << n.dump();
  EXPECT_TRUE(n.contains("layers")) << n.dump();  // still planned

  fake.send(
      lb::wire::encode(lb::wire::ErrorMsg{"cannot load", "assign", std::nullopt, assign.epoch}));
  n = fake.entry("fake");
  EXPECT_EQ(n["state"], "failed") << n.dump();
  EXPECT_EQ(n.value("error", ""), "cannot load");
  cluster.wait_serving();
  expect_golden_tokens(cluster.broker(), stories260k_golden(shared)["cases"][0]);
}

TEST(Rebalance, StagesFetchingIntoOneCacheDirectoryAtOnceAllServe) {
  LB_REQUIRE_SHARED(shared);
  lbtest::TempDir cache("shared-cache");
  Cluster cluster(shared + "/models/stories260K.gguf",
                  {{"a", "1GiB", false}, {"b", "1GiB", false}, {"c", "1GiB", false}}, {},
                  {"--cache-dir", cache.path.string()});
  cluster.wait_serving();
  expect_golden_tokens(cluster.broker(), stories260k_golden(shared)["cases"][0]);
}

namespace {

// A cgroup v2 child group with the memory controller, made for this test and removed after it;
// `why_not` says what this machine lacks when it cannot be made.
struct Cgroup {
  std::string dir;
  std::string why_not;
  explicit Cgroup(uint64_t memory_max) {
    std::ifstream mounts("/proc/self/mountinfo");
    std::string root;
    for (std::string line; std::getline(mounts, line);) {
      std::istringstream f(line);
      std::vector<std::string> fields;
      for (std::string w; f >> w;) fields.push_back(w);
      for (size_t i = 0; i + 1 < fields.size(); ++i) {
        if (fields[i] == "-" && fields[i + 1] == "cgroup2") root = fields[4];
      }
    }
    if (root.empty()) {
      why_not = "no cgroup v2 hierarchy is mounted";
      return;
    }
    std::ifstream controllers(root + "/cgroup.controllers");
    std::string list((std::istreambuf_iterator<char>(controllers)),
                     std::istreambuf_iterator<char>());
    if (list.find("memory") == std::string::npos) {
      why_not = "the cgroup v2 hierarchy at " + root +
                " has no memory controller (it is on cgroup v1 here)";
      return;
    }
    std::ofstream(root + "/cgroup.subtree_control") << "+memory";
    const std::string d = root + "/layerbus-test-" + std::to_string(::getpid());
    std::error_code ec;
    std::filesystem::create_directory(d, ec);
    std::ofstream max(d + "/memory.max");
    max << memory_max;
    max.close();
    if (ec || !max) {
      why_not = "cannot create a cgroup with a memory limit under " + root;
      std::filesystem::remove(d, ec);
      return;
    }
    dir = d;
  }
  ~Cgroup() {
    if (dir.empty()) return;
    std::error_code ec;
    for (int i = 0; i < 100 && !std::filesystem::remove(dir, ec); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
};

}  // namespace

TEST(Rebalance, AStageUnderACgroupV2LimitMovesLayersBeforeTheOomKiller) {
  Cgroup cg(120ull << 20);
  if (cg.dir.empty()) GTEST_SKIP() << "cgroup v2 memory limits are unavailable: " << cg.why_not;
  lbtest::TempDir dir("rebalance-cgroup");
  const std::string model = big_layers_model(dir);
  const auto expected = undisturbed(model, kPrompts);
  // Stage c says it has 1 GiB, but its cgroup allows 120 MiB: the layers the plan gives it would
  // not fit. Its cgroup usage crosses the high-water mark, it reports pressure with the limit as
  // its budget, and the broker moves layers to a before anything is killed.
  Cluster cluster(model, {{"c", "1GiB", true, 1, cg.dir}, {"a", "600MiB"}},
                  {"--context", "256", "--max-sequences", "8"});
  const nlohmann::json before = cluster.wait_serving();
  const auto got = lbtest::generate_all(cluster.broker(), kPrompts, kTokens);
  const nlohmann::json after = wait_rebalanced(cluster);
  EXPECT_TRUE(lb::process_alive(cluster.stage_pid("c"))) << "stage c was killed";
  EXPECT_LT(layers_of(after, "c"), layers_of(before, "c"));
  EXPECT_NE(cluster.log("broker").find("memory pressure on c"), std::string::npos);
  for (size_t i = 0; i < kPrompts.size(); ++i)
    EXPECT_EQ(got[i], expected[i]) << "prompt '" << kPrompts[i] << "'";
}
