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
  std::int64_t same_model = 0; ///< of in_flight, generations of the request's own model
};

/// How many more in-flight generations than the least loaded worker a worker already running
/// the request's model may have and still get it. Joining a running batch of that model adds
/// little to a decode step, while another worker may have to copy the model's weights in and
/// then switch between models every turn: on the demo set, spreading a burst over 2 workers
/// without it gave half the tokens/s of one worker (bench/cluster).
inline constexpr std::int64_t kModelAffinitySlack = 4;

/// The least loaded worker: fewest in-flight generations from this controller (known at once,
/// unlike heartbeats), then the lowest reported load (other controllers' work), then the lowest
/// id so that the choice is deterministic. nullopt when there is no candidate.
std::optional<std::uint64_t> least_loaded_worker(std::span<const WorkerLoad> workers);

/// The worker for a request: the least loaded (as least_loaded_worker) among the workers already
/// running its model that are within `affinity_slack` in-flight generations of the least loaded
/// worker overall; when none is, the least loaded worker overall. So a model's requests gather
/// on the workers that run it, and spill to others only when those are `affinity_slack` busier.
std::optional<std::uint64_t> choose_worker(std::span<const WorkerLoad> workers,
                                           std::int64_t affinity_slack = kModelAffinitySlack);

}  // namespace aegaeon::policy
