#pragma once
// A short compute probe: how fast this machine runs the engine's hot loop, so the planner can
// weigh nodes by speed. Runs Q8_0 matrix-vector products for about `millis` milliseconds.
#include "compute/thread_pool.hpp"

namespace lb {

// Billions of multiply-adds per second over the pool's threads.
double probe_compute_score(ThreadPool& pool, int millis = 150);

}  // namespace lb
