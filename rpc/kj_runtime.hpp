// KjRuntime: the one kj event-loop thread of a process. The RPC and HTTP servers live on it;
// other threads hand it non-blocking work with execute_sync(). Destroy it before the CAF
// actor system (DESIGN.md rule 4): its destructor cancels all kj work and joins the thread.
#pragma once

#include <functional>
#include <memory>

#include "core/result.hpp"

namespace aegaeon::rpc {

/// The kj-thread-only handles (I/O provider, network, timer, task set); defined in
/// rpc/kj_context.hpp, which only rpc/*.cpp include.
struct KjContext;

/// Owns the kj event-loop thread.
class KjRuntime {
 public:
  /// Starts the thread and sets up async I/O; fails if kj cannot start (e.g. no epoll).
  static core::Result<std::unique_ptr<KjRuntime>> start();

  /// Cancels everything still running on the loop and joins the thread.
  ~KjRuntime();
  KjRuntime(const KjRuntime&) = delete;
  KjRuntime& operator=(const KjRuntime&) = delete;

  /// Runs `work` on the kj thread and returns once it has run. `work` must not block: it may
  /// start promises (add them to KjContext::tasks) but never wait. Callable from any thread,
  /// including the kj thread itself (then it runs inline). Returns false (and does not run
  /// `work`) once the loop has stopped.
  bool execute_sync(const std::function<void(KjContext&)>& work) const;

  /// True when called on the kj thread.
  [[nodiscard]] bool on_loop_thread() const;

 private:
  struct Impl;
  explicit KjRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::rpc
