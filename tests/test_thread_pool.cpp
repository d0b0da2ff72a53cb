// The engine's thread pool: every task runs exactly once per run, a task's exception reaches the
// caller, threads with nothing to do sleep (they poll for at most ThreadPool::kPollTime), and
// wake() brings sleeping workers up ahead of a run without disturbing runs.
#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "compute/thread_pool.hpp"

namespace {

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// How many times this process's threads other than the calling one went to sleep so far.
int64_t other_threads_sleeps() {
  const std::string self = std::to_string(gettid());
  int64_t n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (task.path().filename() == self) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) n += std::stoll(line.substr(24));
    }
  }
  return n;
}

}  // namespace

TEST(ThreadPool, EveryTaskRunsOnceInEveryRun) {
  lb::ThreadPool pool(3);
  for (int64_t n_tasks = 1; n_tasks < 300; ++n_tasks) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
    pool.run(n_tasks, [&](int64_t t) { hits[size_t(t)]++; });
    for (int64_t t = 0; t < n_tasks; ++t) ASSERT_EQ(hits[size_t(t)], 1) << n_tasks << " tasks";
  }
}

TEST(ThreadPool, ATaskExceptionReachesTheCallerAndThePoolGoesOn) {
  lb::ThreadPool pool(2);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run(16,
                        [&](int64_t t) {
                          ran++;
                          if (t == 5) throw std::runtime_error("task 5 failed");
                        }),
               std::runtime_error);
  EXPECT_EQ(ran, 16);  // the other tasks still ran
  ran = 0;
  pool.run(16, [&](int64_t) { ran++; });
  EXPECT_EQ(ran, 16);
}

TEST(ThreadPool, ThreadsWithNothingToDoSleep) {
  lb::ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int i = 0; i < 100; ++i) pool.run(8, [&](int64_t t) { sum += t; });
  ASSERT_EQ(sum, 100 * 28);
  // Two workers and this thread waiting 300 ms: polling for kPollTime (50 us) costs nothing
  // measurable, a thread that kept polling would cost 300 ms of CPU.
  const double cpu0 = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double idle_cpu = process_cpu_seconds() - cpu0;
  std::printf("[thread pool] CPU used by an idle pool of 3 threads over 300 ms: %.3f ms\n",
              idle_cpu * 1e3);
  EXPECT_LT(idle_cpu, 0.030);
}

TEST(ThreadPool, WakeBringsSleepingWorkersUpAndTheySleepAgain) {
  lb::ThreadPool pool(3);
  pool.run(8, [](int64_t) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // both workers asleep
  const int64_t before_idle = other_threads_sleeps();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const int64_t before_wake = other_threads_sleeps();
  EXPECT_EQ(before_wake, before_idle) << "a sleeping pool's workers woke on their own";
  pool.wake();
  // Each woken worker polls kPollTime for a run, then goes back to sleep: one more sleep each
  // (given time to be scheduled on a loaded machine).
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GE(other_threads_sleeps() - before_wake, 2);
}

TEST(ThreadPool, RunsAfterWakesRunEveryTaskOnce) {
  lb::ThreadPool pool(3);
  for (int64_t n_tasks = 1; n_tasks < 100; ++n_tasks) {
    pool.wake();
    if (n_tasks % 3 == 0) pool.wake();  // twice in a row
    if (n_tasks % 5 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
    pool.run(n_tasks, [&](int64_t t) { hits[size_t(t)]++; });
    for (int64_t t = 0; t < n_tasks; ++t) ASSERT_EQ(hits[size_t(t)], 1) << n_tasks << " tasks";
  }
  lb::ThreadPool alone(1);  // no workers: nothing to wake
  alone.wake();
  int ran = 0;
  alone.run(4, [&](int64_t) { ++ran; });
  EXPECT_EQ(ran, 4);
}
