#include "bench/e2e/thread_cpu.hpp"

#include <filesystem>
#include <fstream>

#include "core/thread_info.hpp"

namespace aegaeon::bench {

std::map<pid_t, ThreadCpu> read_thread_cpu(pid_t pid) {
  std::map<pid_t, ThreadCpu> threads;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
    ThreadCpu t;
    std::ifstream comm(entry.path() / "comm");
    std::getline(comm, t.name);
    // schedstat: time on CPU (ns), time waiting to run (ns), timeslices.
    std::ifstream schedstat(entry.path() / "schedstat");
    double on_cpu_ns = 0;
    if (!(schedstat >> on_cpu_ns)) continue;  // the thread ended while we looked
    t.seconds = on_cpu_ns * 1e-9;
    threads.emplace(static_cast<pid_t>(std::stol(entry.path().filename().string())), std::move(t));
  }
  return threads;
}

CpuSplit cpu_between(const std::map<pid_t, ThreadCpu>& before, const std::map<pid_t, ThreadCpu>& after) {
  CpuSplit split;
  for (const auto& [tid, now] : after) {
    const auto then = before.find(tid);
    const double used = now.seconds - (then == before.end() ? 0.0 : then->second.seconds);
    const bool compute = now.name == core::thread_names::kCompute || now.name == core::thread_names::kCopy;
    (compute ? split.compute_s : split.other_s) += used;
  }
  return split;
}

}  // namespace aegaeon::bench
