// A fixed set of compute threads that split one loop at a time (the CPU backend's "SMs").
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace aegaeon::backend::cpu {

/// Runs parallel_for loops on `num_threads` threads (the caller is one of them). Not
/// re-entrant: one loop at a time, called from the owning thread only.
class ThreadPool {
 public:
  /// Starts num_threads - 1 workers; num_threads < 1 is treated as 1.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Calls body(begin, end) on disjoint chunks covering [0, count), at least `grain` items each
  /// (except the last), and returns when all are done.
  void parallel_for(std::size_t count, std::size_t grain,
                    const std::function<void(std::size_t, std::size_t)>& body);

  /// Threads taking part in a loop, the caller included.
  [[nodiscard]] int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

 private:
  void worker_loop(int index);
  void run_share(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  std::uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
  // The loop being run; valid while pending_ > 0.
  const std::function<void(std::size_t, std::size_t)>* body_ = nullptr;
  std::size_t count_ = 0;
  std::size_t chunk_ = 0;
};

}  // namespace aegaeon::backend::cpu
