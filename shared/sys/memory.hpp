#pragma once
// What this process and machine have in memory, read from /proc and cgroup v2 files.
#include <cstdint>
#include <optional>
#include <string>

namespace lb {

// Resident set size of this process (VmRSS in /proc/self/status), in bytes.
uint64_t resident_bytes();
// Resident set size of another process, or nullopt when it is gone.
std::optional<uint64_t> resident_bytes_of(int pid);

// MemTotal from /proc/meminfo.
uint64_t machine_memory_bytes();

// This process's cgroup v2 memory limit (memory.max) and usage (memory.current), when the process
// is in a cgroup v2 hierarchy with a limit; nullopt otherwise.
struct CgroupMemory {
  std::string path;
  std::optional<uint64_t> limit;  // nullopt for "max"
  uint64_t usage = 0;
};
std::optional<CgroupMemory> cgroup_memory();

// The memory budget a stage offers when none is given: the machine's memory, or the cgroup limit
// when lower, minus a reserve for the system and the process itself (1/8, at least 256 MiB).
uint64_t default_memory_budget();

}  // namespace lb
