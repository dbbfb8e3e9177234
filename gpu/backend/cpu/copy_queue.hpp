// The CPU backend's copy engine: one thread that executes submitted memcpys in order, so host↔
// arena transfers overlap compute exactly as a GPU copy engine's would.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

namespace aegaeon::backend::cpu {

/// In-order asynchronous memcpy queue with monotonically increasing tickets. Thread-safe.
class CopyQueue {
 public:
  CopyQueue();
  ~CopyQueue();
  CopyQueue(const CopyQueue&) = delete;
  CopyQueue& operator=(const CopyQueue&) = delete;

  /// Enqueues a copy; returns its ticket (complete once completed_ticket() >= it).
  std::uint64_t submit(void* dst, const void* src, std::size_t bytes);

  /// Ticket of the last submitted copy (0 before any).
  [[nodiscard]] std::uint64_t submitted_ticket();

  /// Highest ticket whose copy (and all before it) finished.
  [[nodiscard]] std::uint64_t completed_ticket();

  /// Blocks until `ticket` completed.
  void wait_for(std::uint64_t ticket);

 private:
  struct Job {
    void* dst;
    const void* src;
    std::size_t bytes;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Job> jobs_;
  std::uint64_t submitted_ = 0;
  std::uint64_t completed_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace aegaeon::backend::cpu
