// The worker process's front door: it stands where the proxy stands in `aegaeon serve`.
// Generations the controller submits over RPC (already tokenized by the controller's proxy)
// enter this node's prefill role here, and their token events leave as GenerationStream
// updates. Cancelling a generation cancels it in prefill and decode, which frees its KV.
// On a prefill-only worker a generation ends after its first token with a KV handoff; on a
// decode-only worker generations arrive as handoffs another worker prefilled.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <caf/fwd.hpp>

#include "core/cluster_types.hpp"
#include "rpc/cluster_registry.hpp"

namespace aegaeon::actors {

class ModelCatalog;

/// The generations a worker's relay has in flight, by model: its heartbeats' load report.
/// Thread-safe.
class RelayLoad {
 public:
  [[nodiscard]] std::map<std::string, std::uint32_t> by_model() const;
  [[nodiscard]] std::uint32_t total() const;
  /// The relay's new counts (the relay only).
  void publish(std::map<std::string, std::uint32_t> by_model);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint32_t> by_model_;
};

/// Spawns the relay; pass it to ServingOptions::front. It keeps `load` up to date.
caf::actor spawn_worker_relay(caf::actor_system& system, std::shared_ptr<RelayLoad> load);

/// Starts a generation the controller submitted (non-blocking; callable from the kj thread).
/// A job this node cannot run (unknown model, no room in the context) ends `stream` with an
/// error at once.
void start_remote_generation(const caf::actor& relay, const ModelCatalog& catalog, std::uint64_t id,
                             core::GenerationJob job, rpc::GenerationStream stream);

/// Whether this node can adopt `handoff` for `job`: the model is served, the prompt is the KV,
/// it fits the context and the blob's size is plausible for that many tokens (the import checks
/// it exactly). Errors say which; nothing is pulled before this passes.
core::Result<void> check_handoff(const ModelCatalog& catalog, const core::GenerationJob& job,
                                 const core::KvHandoff& handoff, std::uint64_t kv_bytes_per_token);

/// Continues generation `id` on this node's decode role from a handoff checked by check_handoff
/// and pulled (non-blocking; callable from the kj thread).
void adopt_remote_generation(const caf::actor& relay, const ModelCatalog& catalog, std::uint64_t id,
                             core::GenerationJob job, core::KvHandoff handoff, rpc::GenerationStream stream);

/// The controller cancelled generation `id` or went away (non-blocking).
void cancel_remote_generation(const caf::actor& relay, std::uint64_t id);

}  // namespace aegaeon::actors
