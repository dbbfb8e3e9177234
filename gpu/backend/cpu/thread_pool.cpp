#include "gpu/backend/cpu/thread_pool.hpp"

#include <algorithm>

#include "core/thread_info.hpp"

namespace aegaeon::backend::cpu {

namespace {

// Chunks per thread and loop: enough that a thread that starts late (or is preempted) leaves
// its work to the others, few enough that claiming stays negligible.
constexpr std::size_t kChunksPerThread = 4;

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(num_threads, 1) - 1;
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] {
    core::set_current_thread_name(core::thread_names::kCompute);
    worker_loop();
  });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_chunks() {
  while (true) {
    const std::size_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= count_) return;
    (*body_)(begin, std::min(count_, begin + chunk_));
  }
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (!loop_open_) continue;  // woke too late: the caller ran that loop alone
      ++active_;
    }
    run_chunks();
    {
      std::lock_guard lock(mutex_);
      if (--active_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(std::size_t count, std::size_t grain,
                              const std::function<void(std::size_t, std::size_t)>& body) {
  if (count == 0) return;
  grain = std::max<std::size_t>(grain, 1);
  if (workers_.empty() || count <= grain) {
    body(0, count);
    return;
  }
  const std::size_t chunks = static_cast<std::size_t>(num_threads()) * kChunksPerThread;
  const std::size_t target = (count + chunks - 1) / chunks;
  {
    std::lock_guard lock(mutex_);
    body_ = &body;
    count_ = count;
    chunk_ = (target + grain - 1) / grain * grain;
    next_.store(0, std::memory_order_relaxed);
    loop_open_ = true;
    ++generation_;
  }
  start_cv_.notify_all();
  run_chunks();
  std::unique_lock lock(mutex_);
  loop_open_ = false;
  // Workers still counted in active_ are finishing chunks they claimed; body_ must outlive them.
  done_cv_.wait(lock, [&] { return active_ == 0; });
  body_ = nullptr;
}

}  // namespace aegaeon::backend::cpu
