// ActorRuntime: the process's CAF actor system, configured in one place. Keeps caf/all.hpp out
// of the headers of whoever owns it.
#pragma once

#include <cstddef>
#include <memory>

#include <caf/fwd.hpp>

namespace aegaeon::actors {

/// Owns the CAF actor system. Destroy it after the KjRuntime (DESIGN.md rule 4): its destructor
/// waits for every actor to finish.
class ActorRuntime {
 public:
  /// Starts an actor system with `worker_threads` scheduler threads (0: one per core).
  explicit ActorRuntime(std::size_t worker_threads = 0);
  ~ActorRuntime();
  ActorRuntime(const ActorRuntime&) = delete;
  ActorRuntime& operator=(const ActorRuntime&) = delete;

  /// The actor system, for spawning.
  caf::actor_system& system();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegaeon::actors
