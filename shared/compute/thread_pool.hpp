#pragma once
// A persistent pool of worker threads for the engine's parallel loops. The calling thread works
// too, so a pool of N threads starts N-1 workers. Idle workers block on a condition variable:
// stages on one machine share its cores, so nobody spins while waiting for work.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lb {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task) for every task in [0, n_tasks), spread over all threads; returns when all are
  // done. Tasks are handed out dynamically, so which thread runs a task never affects its result.
  // The first exception thrown by a task is rethrown here after the others finish.
  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

 private:
  void worker_loop();
  // Runs one task, records its exception, and wakes the caller when it was the run's last.
  void run_task(const std::function<void(int64_t)>& fn, int64_t task);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;  // workers: a new run
  std::condition_variable done_;  // caller: the run's tasks are done
  std::condition_variable idle_;  // caller: no worker is still inside the previous run
  uint64_t generation_ = 0;       // bumped for each run(); workers wait for a new one
  bool stop_ = false;
  int in_run_ = 0;  // workers between picking up a run and finding its tasks taken

  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t shared_tasks_ = 0;  // tasks [0, shared_tasks_) are handed out to any thread
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> pending_{0};  // tasks of the current run not finished yet
  std::exception_ptr error_;
  std::mutex run_mu_;  // one run() at a time
};

// Default thread count: the cores this process may run on.
int default_thread_count();

}  // namespace lb
