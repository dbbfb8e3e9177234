// Which worker process takes a request (the controller's routing decision). Pure: the router
// actor gathers the candidates, this picks.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace aegaeon::policy {

/// A live worker that serves the request's model, and how loaded it is.
struct WorkerLoad {
  std::uint64_t node_id = 0;
  std::int64_t in_flight = 0;  ///< generations this controller has running on it
  std::int64_t reported = 0;   ///< running + waiting requests in its last heartbeat
};

/// The least loaded worker: fewest in-flight generations from this controller (known at once,
/// unlike heartbeats), then the lowest reported load (other controllers' work), then the lowest
/// id so that the choice is deterministic. nullopt when there is no candidate.
std::optional<std::uint64_t> least_loaded_worker(std::span<const WorkerLoad> workers);

}  // namespace aegaeon::policy
