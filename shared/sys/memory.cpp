#include "sys/memory.hpp"

#include <fstream>
#include <sstream>

#include "sys/cgroup.hpp"

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
  const auto dir = cgroup_dir_with("memory.current");
  if (!dir) return std::nullopt;
  const auto current = read_first_line(*dir + "/memory.current");
  if (!current) return std::nullopt;
  CgroupMemory cg;
  cg.path = *dir;
  cg.usage = std::stoull(*current);
  const auto max = read_first_line(*dir + "/memory.max");
  if (max && *max != "max") cg.limit = std::stoull(*max);
  return cg;
}

uint64_t default_memory_budget() {
  uint64_t total = machine_memory_bytes();
  if (auto cg = cgroup_memory(); cg && cg->limit && *cg->limit < total) total = *cg->limit;
  uint64_t reserve = std::max<uint64_t>(total / 8, 256ull << 20);
  return total > reserve ? total - reserve : 0;
}

}  // namespace lb
