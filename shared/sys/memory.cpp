#include "sys/memory.hpp"

#include <fstream>
#include <sstream>

namespace lb {

namespace {

// "Key:   1234 kB" lines, as in /proc/self/status and /proc/meminfo.
std::optional<uint64_t> read_kb_field(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() &&
        line[key.size()] == ':') {
      std::istringstream fields(line.substr(key.size() + 1));
      uint64_t kb = 0;
      if (fields >> kb) return kb * 1024;
    }
  }
  return std::nullopt;
}

std::optional<std::string> read_line(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  return line;
}

}  // namespace

uint64_t resident_bytes() {
  return read_kb_field("/proc/self/status", "VmRSS").value_or(0);
}

std::optional<uint64_t> resident_bytes_of(int pid) {
  return read_kb_field("/proc/" + std::to_string(pid) + "/status", "VmRSS");
}

uint64_t machine_memory_bytes() {
  return read_kb_field("/proc/meminfo", "MemTotal").value_or(0);
}

std::optional<CgroupMemory> cgroup_memory() {
  // In cgroup v2 the process's line in /proc/self/cgroup is "0::/path".
  std::ifstream in("/proc/self/cgroup");
  std::string line, rel;
  while (std::getline(in, line)) {
    if (line.compare(0, 3, "0::") == 0) rel = line.substr(3);
  }
  if (rel.empty()) return std::nullopt;
  for (const std::string root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    const std::string dir = root + (rel == "/" ? "" : rel);
    auto current = read_line(dir + "/memory.current");
    if (!current) continue;
    CgroupMemory cg;
    cg.path = dir;
    cg.usage = std::stoull(*current);
    auto max = read_line(dir + "/memory.max");
    if (max && *max != "max") cg.limit = std::stoull(*max);
    return cg;
  }
  return std::nullopt;
}

uint64_t default_memory_budget() {
  uint64_t total = machine_memory_bytes();
  if (auto cg = cgroup_memory(); cg && cg->limit && *cg->limit < total) total = *cg->limit;
  uint64_t reserve = std::max<uint64_t>(total / 8, 256ull << 20);
  return total > reserve ? total - reserve : 0;
}

}  // namespace lb
