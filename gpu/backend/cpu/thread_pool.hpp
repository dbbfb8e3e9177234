// A fixed set of compute threads that split one loop at a time (the CPU backend's "SMs").
#pragma once

#include <atomic>
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
///
/// Threads claim chunks of a loop from a shared counter instead of owning a fixed share, so
/// the caller never waits for a worker that has not woken up yet: on a machine shared with
/// other processes a sleeping worker may not run for milliseconds, and a fixed split would make
/// every loop (hundreds per decode step) wait for it. The caller only waits for chunks a worker
/// has already claimed.
class ThreadPool {
 public:
  /// Starts num_threads - 1 workers; num_threads < 1 is treated as 1.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Calls body(begin, end) on disjoint chunks covering [0, count) and returns when all are
  /// done. Every chunk starts at a multiple of `grain` and holds a multiple of `grain` items
  /// (the last one may be shorter), so work that blocks by `grain` sees the same blocks
  /// whichever thread runs them. Loops of at most `grain` items run on the caller alone.
  void parallel_for(std::size_t count, std::size_t grain,
                    const std::function<void(std::size_t, std::size_t)>& body);

  /// Threads taking part in a loop, the caller included.
  [[nodiscard]] int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

 private:
  void worker_loop();
  // Claims and runs chunks of the current loop until none are left.
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  std::uint64_t generation_ = 0;  // bumped per loop; wakes the workers
  bool loop_open_ = false;        // false once the caller has claimed every chunk
  int active_ = 0;                // workers inside run_chunks() of the current loop
  bool stopping_ = false;
  // The current loop; written under mutex_ before generation_ changes, read by workers only
  // while they count in active_.
  const std::function<void(std::size_t, std::size_t)>* body_ = nullptr;
  std::size_t count_ = 0;
  std::size_t chunk_ = 0;
  std::atomic<std::size_t> next_{0};  // first item not yet claimed
};

}  // namespace aegaeon::backend::cpu
