#pragma once
// A persistent pool of worker threads for the engine's parallel loops. The calling thread works
// too, so a pool of N threads starts N-1 workers.
//
// Stages on one machine share its cores, so a thread with nothing to do sleeps on a condition
// variable. But waking a sleeping thread takes 25-45 us on a virtual machine, and a decode step
// runs five parallel loops per layer with a few microseconds of serial work between them: a
// worker that slept after every loop would leave the caller streaming weights alone for that
// long, over a hundred times per token. So a waiting thread first polls for at most kPollTime
// (about one wake-up; the wait is then never more than twice the shortest possible) and sleeps
// only after that: between the loops of one step it is back at work at once, and a pool between
// steps sleeps.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lb {

class ThreadPool {
 public:
  static constexpr std::chrono::microseconds kPollTime{50};

  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(task) for every task in [0, n_tasks), spread over all threads; returns when all are
  // done. Tasks are handed out dynamically, so which thread runs a task never affects its result.
  // The first exception thrown by a task is rethrown here after the others finish.
  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  // Wakes sleeping workers now, ahead of a run the caller knows is coming but must first
  // prepare (a stage whose step has just arrived, still to be received and decoded): their
  // wake-up then overlaps that serial work instead of delaying the run's start. Woken workers
  // poll kPollTime for the run, as after any run, and then sleep again.
  void wake();

 private:
  void worker_loop();
  // Hands tasks [0, n_tasks) of fn to the workers (none when n_tasks is 0: they only wake up)
  // once no worker is still inside the previous run. Called with run_mu_ held.
  void start(const std::function<void(int64_t)>* fn, int64_t n_tasks);
  // Runs one task, records its exception, and wakes the caller when it was the run's last.
  void run_task(const std::function<void(int64_t)>& fn, int64_t task);
  // Returns mu_ held once ready() holds: polls it (without the lock) for up to kPollTime, then
  // sleeps on cv. Whoever makes ready() true then notifies cv under mu_.
  template <class Ready>
  std::unique_lock<std::mutex> wait_until(std::condition_variable& cv, Ready ready);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;  // workers: a new run
  std::condition_variable done_;  // caller: the run's tasks are done
  std::condition_variable idle_;  // caller: no worker is still inside the previous run
  // Written under mu_; atomic so that waiting threads can poll them without it.
  std::atomic<uint64_t> generation_{0};  // bumped for each run(); workers wait for a new one
  std::atomic<bool> stop_{false};
  std::atomic<int> in_run_{0};  // workers between picking up a run and finding its tasks taken

  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;  // tasks [0, n_tasks_) of the current run, handed out to any thread
  std::atomic<int64_t> next_task_{0};
  std::atomic<int64_t> pending_{0};  // tasks of the current run not finished yet
  std::exception_ptr error_;
  std::mutex run_mu_;  // one run() at a time
};

// Default thread count: the cores this process may run on.
int default_thread_count();

}  // namespace lb
