#include "sys/cgroup.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace lb {

std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<std::string> cgroup_dir_with(const std::string& file) {
  // In cgroup v2 the process's line in /proc/self/cgroup is "0::/path".
  std::ifstream in("/proc/self/cgroup");
  std::string line, rel;
  while (std::getline(in, line)) {
    if (line.compare(0, 3, "0::") == 0) rel = line.substr(3);
  }
  if (rel.empty()) return std::nullopt;
  for (const std::string root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    const std::string dir = root + (rel == "/" ? "" : rel);
    if (std::ifstream(dir + "/" + file).good()) return dir;
  }
  return std::nullopt;
}

std::optional<int> cpu_max_cores(const std::string& line) {
  std::istringstream fields(line);
  std::string quota;
  long long period = 0;
  if (!(fields >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  long long q = 0;
  std::istringstream qs(quota);
  if (!(qs >> q) || !qs.eof() || q <= 0) return std::nullopt;
  const long long cores = (q + period - 1) / period;
  return int(std::min<long long>(cores, 1 << 20));
}

std::optional<int> cgroup_cpu_limit() {
  const auto dir = cgroup_dir_with("cpu.max");
  if (!dir) return std::nullopt;
  const auto line = read_first_line(*dir + "/cpu.max");
  return line ? cpu_max_cores(*line) : std::nullopt;
}

}  // namespace lb
