// The gpu_worker actor: owns one DeviceWorker on a thread of its own and executes what the
// prefill and decode roles ask (switch, prefetch, prefill, decode step, KV swap and handoff).
// It never decides policy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

struct ServingMetrics;

/// Which model each device holds now (-1: none); written by gpu_workers, read by /v1/models.
struct ResidencyBoard {
  explicit ResidencyBoard(size_t devices) : device_model(devices) {
    for (auto& m : device_model) m.store(-1);
  }
  std::vector<std::atomic<std::int32_t>> device_model;
};

/// Spawns a detached gpu_worker owning `device`; `name` labels its metrics ("prefill-0") and
/// `slot` is its entry on `residency`.
caf::actor spawn_gpu_worker(caf::actor_system& system, std::unique_ptr<worker::DeviceWorker> device,
                            std::string name, std::shared_ptr<ServingMetrics> metrics,
                            std::shared_ptr<ResidencyBoard> residency, size_t slot);

}  // namespace aegaeon::actors
