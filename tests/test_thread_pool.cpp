// The engine's thread pool: every task runs exactly once per run, a task's exception reaches the
// caller, and threads with nothing to do sleep (they poll for at most ThreadPool::kPollTime).
#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "compute/thread_pool.hpp"

namespace {

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
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
