#include "gpu/backend/cpu/thread_pool.hpp"

#include <algorithm>

namespace aegaeon::backend::cpu {

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(num_threads, 1) - 1;
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { worker_loop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_share(int index) {
  const std::size_t begin = static_cast<std::size_t>(index) * chunk_;
  const std::size_t end = std::min(count_, begin + chunk_);
  if (begin < end) (*body_)(begin, end);
}

void ThreadPool::worker_loop(int index) {
  std::uint64_t seen = 0;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      start_cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_share(index);
    {
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(std::size_t count, std::size_t grain,
                              const std::function<void(std::size_t, std::size_t)>& body) {
  if (count == 0) return;
  const std::size_t threads = static_cast<std::size_t>(num_threads());
  grain = std::max<std::size_t>(grain, 1);
  if (threads == 1 || count <= grain) {
    body(0, count);
    return;
  }
  const std::size_t shares = std::min(threads, (count + grain - 1) / grain);
  {
    std::lock_guard lock(mutex_);
    body_ = &body;
    count_ = count;
    chunk_ = (count + shares - 1) / shares;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  run_share(0);
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  body_ = nullptr;
}

}  // namespace aegaeon::backend::cpu
