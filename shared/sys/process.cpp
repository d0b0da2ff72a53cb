#include "sys/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "util/error.hpp"

namespace lb {

int spawn_process(const std::vector<std::string>& argv, const std::string& log, bool new_group) {
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("cannot start " + argv.at(0) + ": fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (new_group) ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::perror(("exec " + argv[0]).c_str());
    ::_exit(127);
  }
  return pid;
}

bool process_alive(int pid) {
  if (pid <= 0) return false;
  if (::waitpid(pid, nullptr, WNOHANG) == pid) return false;
  if (::kill(pid, 0) != 0) return false;
  // Someone else's child that exited stays a zombie until its parent reaps it: `layerbus down`
  // waiting for the `up` a script started would otherwise wait out its whole deadline.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;  // no /proc: kill's answer stands
  const size_t comm_end = line.rfind(')');     // the state follows "(comm) ", comm may hold ')'
  return comm_end == std::string::npos || comm_end + 2 >= line.size() ||
         (line[comm_end + 2] != 'Z' && line[comm_end + 2] != 'X');
}

void stop_processes(const std::vector<int>& pids, std::chrono::milliseconds grace) {
  for (int pid : pids) {
    if (pid > 0) ::kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (int pid : pids) {
    while (process_alive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (process_alive(pid)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
}

}  // namespace lb
