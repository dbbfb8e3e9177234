// Per-thread CPU time of a local process, read from /proc/PID/task/*/{comm,schedstat}
// (nanosecond resolution, unlike the clock ticks of /proc/PID/stat). bench_e2e uses it to
// split the server's CPU into compute and runtime by the names the runtime gives its threads
// (core/thread_info.hpp): CPU time does not grow when other processes load the machine, so the
// runtime's cost per token stays measurable where wall-clock gaps do not.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

namespace aegaeon::bench {

struct ThreadCpu {
  std::string name;
  double seconds = 0;
};

/// Every live thread of `pid` by thread id; empty when the process is gone or not ours to read.
std::map<pid_t, ThreadCpu> read_thread_cpu(pid_t pid);

/// CPU seconds between two readings, split by thread name. A thread that started in between
/// counts from zero; one that ended in between is lost (the serving threads live as long as
/// the server).
struct CpuSplit {
  double compute_s = 0;  ///< threads named aeg-compute or aeg-copy (the CPU backend's workers)
  double other_s = 0;    ///< every other thread: actors, HTTP, device threads
};
CpuSplit cpu_between(const std::map<pid_t, ThreadCpu>& before, const std::map<pid_t, ThreadCpu>& after);

}  // namespace aegaeon::bench
