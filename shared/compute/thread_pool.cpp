#include "compute/thread_pool.hpp"

#include <sched.h>

#include <chrono>

#include "sys/cgroup.hpp"

namespace lb {

namespace {

// Tells the core this is a polling loop: the other hyperthread gets the pipeline meanwhile.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

template <class Ready>
std::unique_lock<std::mutex> ThreadPool::wait_until(std::condition_variable& cv, Ready ready) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + kPollTime;
  for (int i = 1; !ready(); ++i) {
    cpu_relax();
    if (i % 64 == 0 && Clock::now() > deadline) break;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv.wait(lock, ready);
  return lock;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run_task(const std::function<void(int64_t)>& fn, int64_t task) {
  try {
    fn(task);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::current_exception();
  }
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last task of the run: the caller may be asleep waiting for it.
    std::lock_guard<std::mutex> lock(mu_);
    done_.notify_one();
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t)>* fn;
    int64_t n_tasks;
    {
      const std::unique_lock<std::mutex> lock =
          wait_until(wake_, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      n_tasks = n_tasks_;
      ++in_run_;
    }
    for (;;) {
      const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
      if (task >= n_tasks) break;
      run_task(*fn, task);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--in_run_ == 0) idle_.notify_one();
    }
  }
}

void ThreadPool::start(const std::function<void(int64_t)>* fn, int64_t n_tasks) {
  {
    // A worker that woke late for the previous run may still be looking at its counter.
    const std::unique_lock<std::mutex> lock = wait_until(idle_, [&] { return in_run_ == 0; });
    fn_ = fn;
    n_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    pending_.store(n_tasks, std::memory_order_relaxed);
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
}

void ThreadPool::wake() {
  if (workers_.empty()) return;
  std::lock_guard<std::mutex> run_lock(run_mu_);
  start(nullptr, 0);
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  std::lock_guard<std::mutex> run_lock(run_mu_);
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  // Every task goes to whichever thread asks first, the caller's included. Keeping the last
  // one for the caller (so that it would finish last and never sleep waiting for a worker)
  // left a worker idle through that whole task at the end of every loop, and the caller
  // doing three of attention's four tasks: 1.1B Q4_0 decode ran 1-3% slower (paired runs:
  // slower in 11 of 11 rounds of two fixed-order sets, in 8 of 10 and 4 of 6 of alternating
  // ones), prompts no different. The caller polls kPollTime before it sleeps, longer than a
  // decode task takes.
  start(&fn, n_tasks);
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks) break;
    run_task(fn, task);
  }
  std::exception_ptr error;
  {
    // Only the tasks are waited for, not the workers: one that has not woken up yet finds
    // nothing left to do when it does.
    const std::unique_lock<std::mutex> lock =
        wait_until(done_, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

int default_thread_count() {
  int n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = int(std::thread::hardware_concurrency());
  // A container limited to fewer CPUs than it can see gets that many: more threads than the
  // quota runs at once would wait on each other at every parallel step.
  if (const auto quota = cgroup_cpu_limit(); quota && (n <= 0 || *quota < n)) n = *quota;
  return n > 0 ? n : 1;
}

}  // namespace lb
