// The worker process's front door: it stands where the proxy stands in `aegaeon serve`.
// Generations the controller submits over RPC (already tokenized by the controller's proxy)
// enter this node's prefill role here, and their token events leave as GenerationStream
// updates. Cancelling a generation cancels it in prefill and decode, which frees its KV.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <caf/fwd.hpp>

#include "core/cluster_types.hpp"
#include "rpc/cluster_registry.hpp"

namespace aegaeon::actors {

class ModelCatalog;

/// Spawns the relay; pass it to ServingOptions::front. `in_flight` counts its generations
/// (read by the heartbeat).
caf::actor spawn_worker_relay(caf::actor_system& system,
                              std::shared_ptr<std::atomic<std::uint32_t>> in_flight);

/// Starts a generation the controller submitted (non-blocking; callable from the kj thread).
/// A job this node cannot run (unknown model, no room in the context) ends `stream` with an
/// error at once.
void start_remote_generation(const caf::actor& relay, const ModelCatalog& catalog, std::uint64_t id,
                             core::GenerationJob job, rpc::GenerationStream stream);

/// The controller cancelled generation `id` or went away (non-blocking).
void cancel_remote_generation(const caf::actor& relay, std::uint64_t id);

}  // namespace aegaeon::actors
