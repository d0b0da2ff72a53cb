// `layerbus up` and `layerbus down` as a user runs them: real processes on 127.0.0.1, a state
// file in a test directory, every process stopped by pid at the end whatever happens.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "synth/synth.hpp"
#include "sys/process.hpp"
#include "test_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Runs a command to its end (at most two minutes) and returns what it printed.
std::string run_command(const std::vector<std::string>& argv, const std::string& log) {
  const int pid = lb::spawn_process(argv, log);
  const auto deadline = Clock::now() + std::chrono::minutes(2);
  while (lb::process_alive(pid) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (lb::process_alive(pid)) {
    lb::stop_processes({pid});
    ADD_FAILURE() << argv[1] << " did not finish:\n" << lbtest::read_text(log);
  }
  return lbtest::read_text(log);
}

// The tokens of the JSON object a --json command printed last.
std::vector<int> json_tokens(const std::string& out) {
  const size_t at = out.rfind("\n{");
  const std::string json = at == std::string::npos ? out : out.substr(at + 1);
  try {
    return nlohmann::json::parse(json)["tokens"].get<std::vector<int>>();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "no JSON result (" << e.what() << ") in:\n" << out;
    return {};
  }
}

// A `layerbus up` child and the processes it recorded; whatever still runs at the end is stopped.
struct Up {
  std::string state;
  std::string log;
  int pid = 0;
  std::vector<int> cluster;  // broker and stages, once recorded

  Up(const lbtest::TempDir& dir, const std::string& tag, const std::string& model,
     const std::string& state_path)
      : state(state_path), log(dir.file(tag + ".log")) {
    pid = lb::spawn_process({lbtest::bin_path("layerbus"), "up", "--model", model, "--stages", "2",
                             "--memory", "256MiB,512MiB", "--threads", "1", "--context", "128",
                             "--state", state, "--log-dir", dir.file(tag + "-logs")},
                            log);
  }
  ~Up() {
    std::vector<int> alive;
    for (int p : all()) {
      if (lb::process_alive(p)) alive.push_back(p);
    }
    lb::stop_processes(alive);
  }

  std::vector<int> all() const {
    std::vector<int> pids = cluster;
    pids.push_back(pid);
    return pids;
  }

  // The record once it names this `up`, else empty (after a minute, or when `up` ended).
  nlohmann::json wait_recorded() {
    const auto deadline = Clock::now() + std::chrono::minutes(1);
    while (Clock::now() < deadline && lb::process_alive(pid)) {
      std::ifstream in(state);
      if (in) {
        try {
          const nlohmann::json j = nlohmann::json::parse(in);
          if (j["up_pid"] == pid) {
            cluster = j["pids"].get<std::vector<int>>();
            return j;
          }
        } catch (const nlohmann::json::exception&) {
          // written by a rename, so a partial file is someone else's: wait on
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "`layerbus up` recorded no cluster at " << state << ":\n"
                  << lbtest::read_text(log);
    return {};
  }
};

std::string tiny_model(const lbtest::TempDir& dir) {
  const std::string path = dir.file("tiny.gguf");
  lb::write_synthetic_model(lb::synth_spec("llama", 256, 4, 4, 2, 704, 512, lb::GgmlType::Q4_0),
                            path);
  return path;
}

bool any_alive(const std::vector<int>& pids) {
  for (int p : pids) {
    if (lb::process_alive(p)) return true;
  }
  return false;
}

void wait_gone(const std::vector<int>& pids) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (any_alive(pids) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

TEST(Up, StartsAClusterThatGeneratesAsOneProcessAndDownStopsEveryProcess) {
  lbtest::TempDir dir("up");
  const std::string model = tiny_model(dir);
  const std::string state = dir.file("state/cluster.json");
  Up up(dir, "up", model, state);
  const nlohmann::json rec = up.wait_recorded();
  ASSERT_FALSE(rec.empty());
  const std::vector<int> pids = rec["pids"].get<std::vector<int>>();
  ASSERT_EQ(pids.size(), 3u) << "a broker and two stages";
  for (int p : pids) EXPECT_TRUE(lb::process_alive(p)) << p;

  // A second `up` on the same record is refused and starts nothing.
  const std::string second =
      run_command({lbtest::bin_path("layerbus"), "up", "--model", model, "--memory", "256MiB",
                   "--state", state, "--log-dir", dir.file("second-logs")},
                  dir.file("second.log"));
  EXPECT_NE(second.find("is running"), std::string::npos) << second;
  EXPECT_EQ(up.wait_recorded()["pids"], rec["pids"]) << "the record is still the first cluster's";

  // Generates through the recorded broker, the same tokens as one process.
  const std::vector<std::string> prompt = {"--prompt", "Once upon a time", "-n", "8", "--json"};
  std::vector<std::string> gen = {lbtest::bin_path("layerbus"), "generate", "--broker",
                                  rec["broker"].get<std::string>()};
  gen.insert(gen.end(), prompt.begin(), prompt.end());
  std::vector<std::string> run = {
      lbtest::bin_path("layerbus"), "run", "--model", model, "--threads", "1"};
  run.insert(run.end(), prompt.begin(), prompt.end());
  const std::vector<int> through_cluster = json_tokens(run_command(gen, dir.file("gen.log")));
  const std::vector<int> one_process = json_tokens(run_command(run, dir.file("run.log")));
  EXPECT_EQ(through_cluster.size(), 8u);
  EXPECT_EQ(through_cluster, one_process);

  // `down` stops the `up` process and everything it started, and forgets the cluster.
  const std::string down =
      run_command({lbtest::bin_path("layerbus"), "down", "--state", state}, dir.file("down.log"));
  EXPECT_NE(down.find("cluster stopped"), std::string::npos) << down;
  wait_gone(up.all());
  for (int p : up.all()) EXPECT_FALSE(lb::process_alive(p)) << p << " still runs";
  EXPECT_FALSE(std::filesystem::exists(state));
  const std::string again = run_command({lbtest::bin_path("layerbus"), "down", "--state", state},
                                        dir.file("down-again.log"));
  EXPECT_NE(again.find("no cluster recorded"), std::string::npos) << again;
}

TEST(Up, StoppingOneUpLeavesTheRecordOfAnotherAlone) {
  lbtest::TempDir dir("up-two");
  const std::string model = tiny_model(dir);
  const std::string state = dir.file("cluster.json");
  Up first(dir, "first", model, state);
  ASSERT_FALSE(first.wait_recorded().empty());
  // The record is deleted by hand, so a second `up` on the same path starts and records its own.
  std::filesystem::remove(state);
  Up second(dir, "second", model, state);
  const nlohmann::json rec = second.wait_recorded();
  ASSERT_FALSE(rec.empty());

  // Ctrl-C (SIGTERM here) to the first: its cluster stops, the second's record stays.
  ::kill(first.pid, SIGTERM);
  wait_gone(first.all());
  for (int p : first.all()) EXPECT_FALSE(lb::process_alive(p)) << p << " still runs";
  EXPECT_EQ(second.wait_recorded()["up_pid"], second.pid);

  // So `down` still finds and stops the second cluster.
  const std::string down =
      run_command({lbtest::bin_path("layerbus"), "down", "--state", state}, dir.file("down.log"));
  EXPECT_NE(down.find("cluster stopped"), std::string::npos) << down;
  wait_gone(second.all());
  for (int p : second.all()) EXPECT_FALSE(lb::process_alive(p)) << p << " still runs";
}
