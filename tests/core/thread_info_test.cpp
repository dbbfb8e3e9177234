// Thread names land where `top -H` and bench/e2e read them (/proc/self/task/TID/comm), and the
// calling thread's CPU clock moves with its own work only.
#include "core/thread_info.hpp"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace aegaeon::core {
namespace {

std::string comm_of_current_thread() {
  const auto tid = static_cast<long>(::syscall(SYS_gettid));
  std::ifstream file("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(file, name);
  return name;
}

TEST(ThreadInfo, NamesTheCallingThreadTruncatedToFifteenCharacters) {
  std::string seen_short, seen_long;
  std::thread([&] {
    set_current_thread_name(thread_names::kDevice);
    seen_short = comm_of_current_thread();
    set_current_thread_name("aeg-a-name-longer-than-fifteen");
    seen_long = comm_of_current_thread();
  }).join();
  EXPECT_EQ(seen_short, "aeg-device");
  EXPECT_EQ(seen_long, "aeg-a-name-long");
}

TEST(ThreadInfo, CpuSecondsGrowWithWorkNotWithSleep) {
  const double start = current_thread_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double after_sleep = current_thread_cpu_seconds();
  EXPECT_LT(after_sleep - start, 0.02) << "sleeping costs (almost) no CPU";
  // Spin until the clock shows 20 ms of CPU; bounded in wall time, so a clock that never moves
  // (or one that only counts sleep) fails instead of hanging.
  volatile double sink = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (current_thread_cpu_seconds() - after_sleep < 0.02 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 100000; ++i) sink = sink + 1.0;
  }
  EXPECT_GE(current_thread_cpu_seconds() - after_sleep, 0.02) << "spinning shows";
}

}  // namespace
}  // namespace aegaeon::core
