#pragma once
// Child processes for `layerbus up`, the multi-process tests and the benchmarks: started with
// their output in a log file, stopped by pid (SIGTERM, then SIGKILL after a grace period).
#include <chrono>
#include <string>
#include <vector>

namespace lb {

// Starts argv[0] (a path) with stdout and stderr appended to log; returns its pid.
// new_group puts it in its own process group, so a terminal's Ctrl-C reaches only the parent.
int spawn_process(const std::vector<std::string>& argv, const std::string& log,
                  bool new_group = false);

// Whether pid still runs; reaps it when it is our exited child, and counts another parent's
// exited child (a zombie) as gone.
bool process_alive(int pid);

// SIGTERM to each, then SIGKILL to those still running after `grace`; reaps our children.
void stop_processes(const std::vector<int>& pids,
                    std::chrono::milliseconds grace = std::chrono::seconds(10));

}  // namespace lb
