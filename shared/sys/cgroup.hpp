#pragma once
// This process's cgroup v2 limits: the files of the cgroup it is in (the container or systemd
// unit that caps it), which the machine-wide figures in /proc do not show.
#include <optional>
#include <string>

namespace lb {

// The directory of this process's cgroup v2 that holds `file` (e.g. "memory.max"), or nullopt
// outside a cgroup v2 hierarchy or when that controller's files are absent.
std::optional<std::string> cgroup_dir_with(const std::string& file);

// The first line of a file, or nullopt when it cannot be read.
std::optional<std::string> read_first_line(const std::string& path);

// The CPUs a cgroup v2 cpu.max line ("QUOTA PERIOD", or "max PERIOD" for no limit) allows,
// rounded up and at least 1; nullopt for no limit or a line that does not parse.
std::optional<int> cpu_max_cores(const std::string& line);

// cpu_max_cores of this process's cgroup, when it has a CPU limit.
std::optional<int> cgroup_cpu_limit();

}  // namespace lb
