#include "gpu/backend/cpu/copy_queue.hpp"

#include <cstring>

#include "core/thread_info.hpp"

namespace aegaeon::backend::cpu {

CopyQueue::CopyQueue() : thread_([this] { run(); }) {}

CopyQueue::~CopyQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  thread_.join();
}

std::uint64_t CopyQueue::submit(void* dst, const void* src, std::size_t bytes) {
  std::uint64_t ticket;
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(Job{dst, src, bytes});
    ticket = ++submitted_;
  }
  work_cv_.notify_one();
  return ticket;
}

std::uint64_t CopyQueue::submitted_ticket() {
  std::lock_guard lock(mutex_);
  return submitted_;
}

std::uint64_t CopyQueue::completed_ticket() {
  std::lock_guard lock(mutex_);
  return completed_;
}

void CopyQueue::wait_for(std::uint64_t ticket) {
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return completed_ >= ticket; });
}

void CopyQueue::run() {
  core::set_current_thread_name(core::thread_names::kCopy);
  while (true) {
    Job job{};
    {
      std::unique_lock lock(mutex_);
      // Drain remaining work before stopping so no submitted copy is silently dropped.
      work_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = jobs_.front();
      jobs_.pop_front();
    }
    if (job.bytes > 0) std::memcpy(job.dst, job.src, job.bytes);
    {
      std::lock_guard lock(mutex_);
      ++completed_;
    }
    done_cv_.notify_all();
  }
}

}  // namespace aegaeon::backend::cpu
