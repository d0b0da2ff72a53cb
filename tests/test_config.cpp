// Configuration files: the committed examples load, every key is read, and mistakes are named.
#include <sched.h>

#include <fstream>

#include "compute/thread_pool.hpp"
#include "config/broker_config.hpp"
#include "config/stage_config.hpp"
#include "sys/cgroup.hpp"
#include "test_support.hpp"
#include "util/error.hpp"

namespace {

std::string write(const lbtest::TempDir& dir, const std::string& text) {
  const std::string path = dir.file("conf.yaml");
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lb::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ExamplesLoad) {
  const lb::BrokerConfig b =
      lb::load_broker_config(std::string(LAYERBUS_SOURCE_DIR) + "/conf/broker.yaml");
  EXPECT_EQ(b.models.size(), 2u);
  EXPECT_TRUE(b.kv_transfer);
  EXPECT_TRUE(b.loop_steps);
  EXPECT_EQ(b.nodes.at("laptop").cap, 6ull << 30);
  EXPECT_TRUE(b.nodes.at("old-nas").exclude);
  lb::load_broker_config(std::string(LAYERBUS_SOURCE_DIR) + "/conf/broker-local.yaml");
  const lb::StageConfig s =
      lb::load_stage_config(std::string(LAYERBUS_SOURCE_DIR) + "/conf/stage.yaml");
  EXPECT_EQ(s.memory, 6ull << 30);
  EXPECT_EQ(s.high_water, 0.9);
  EXPECT_FALSE(s.threads.has_value());
}

TEST(Config, BrokerKeys) {
  lbtest::TempDir dir("config");
  const lb::BrokerConfig c = lb::load_broker_config(write(dir,
                                                          "kv_reserve_tokens: 64\n"
                                                          "auto_rebalance: true\n"
                                                          "kv_transfer: false\n"
                                                          "loop_steps: false\n"
                                                          "context: 512\n"
                                                          "max_message_bytes: 1MiB\n"));
  EXPECT_EQ(c.kv_reserve_tokens, 64);
  EXPECT_TRUE(c.auto_rebalance);
  EXPECT_FALSE(c.kv_transfer);
  EXPECT_FALSE(c.loop_steps);
  EXPECT_EQ(c.context, 512);
  EXPECT_EQ(c.max_message_bytes, 1u << 20);
  EXPECT_NE(error_of([&] {
              lb::load_broker_config(write(dir, "kv_transfr: true\n"));
            }).find("unknown key 'kv_transfr'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              lb::load_broker_config(write(dir, "kv_transfer: maybe\n"));
            }).find("'kv_transfer' has the wrong type"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { lb::load_broker_config(write(dir, "strategy: fastest\n")); }).find("fastest"),
      std::string::npos);
}

TEST(Config, StageKeys) {
  lbtest::TempDir dir("config");
  const lb::StageConfig c = lb::load_stage_config(write(dir,
                                                        "broker: tcp://10.0.0.1:5555\n"
                                                        "memory: 12GiB\n"
                                                        "threads: 3\n"
                                                        "order: -1\n"
                                                        "node_id: desk\n"
                                                        "max_message: 8MiB\n"));
  EXPECT_EQ(c.broker, "tcp://10.0.0.1:5555");
  EXPECT_EQ(c.memory, 12ull << 30);
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.order, -1);
  EXPECT_EQ(c.node_id, "desk");
  EXPECT_EQ(c.max_message, 8u << 20);
  EXPECT_FALSE(c.model.has_value());
  EXPECT_NE(error_of([&] {
              lb::load_stage_config(write(dir, "memroy: 1GiB\n"));
            }).find("unknown key 'memroy'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { lb::load_stage_config(write(dir, "memory: lots\n")); }).find("'memory'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { lb::load_stage_config(write(dir, "threads: 0\n")); }).find("threads"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { lb::load_stage_config(write(dir, "high_water: 2\n")); }).find("high_water"),
      std::string::npos);
  EXPECT_NE(error_of([&] { lb::load_stage_config(write(dir, "- a\n- b\n")); }).find("a map"),
            std::string::npos);
}

// The stage's default thread count honours a container's CPU quota (cgroup v2 cpu.max).
TEST(Defaults, CpuMaxGivesWholeCores) {
  EXPECT_EQ(lb::cpu_max_cores("max 100000"), std::nullopt);
  EXPECT_EQ(lb::cpu_max_cores("200000 100000"), 2);
  EXPECT_EQ(lb::cpu_max_cores("150000 100000"), 2);
  EXPECT_EQ(lb::cpu_max_cores("50000 100000"), 1);
  EXPECT_EQ(lb::cpu_max_cores("400000 50000"), 8);
  for (const char* bad : {"", "max", "100000", "abc 100000", "100000 0", "-5 100000", "1e5 100000"})
    EXPECT_EQ(lb::cpu_max_cores(bad), std::nullopt) << "'" << bad << "'";
}

TEST(Defaults, ThreadCountFitsAffinityAndQuota) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int threads = lb::default_thread_count();
  EXPECT_GE(threads, 1);
  EXPECT_LE(threads, CPU_COUNT(&set));
  if (const auto quota = lb::cgroup_cpu_limit()) {
    EXPECT_LE(threads, *quota);
  }
}

}  // namespace
