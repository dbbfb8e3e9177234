// The gpu_worker actor: owns one DeviceWorker on a thread of its own and executes what the
// prefill and decode roles ask (switch, prefetch, prefill, decode step, KV swap and handoff).
// It never decides policy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/typed_actor.hpp>

#include "actors/serving_atoms.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

struct ServingMetrics;

/// What prefill and decode may ask of a device, checked when they are compiled: a message
/// outside this protocol, or a reply handled as the wrong type, does not build.
using GpuWorkerActor = caf::typed_actor<
    // Makes a model active (prefill): the switch's measured cost.
    caf::replies_to<switch_atom, core::ModelId>::with<worker::SwitchStats>,
    // Readies a decode batch: evictions, swap-outs, the model's switch, its KV swapped in.
    caf::replies_to<switch_atom, SwitchBatchCommand>::with<worker::SwitchStats>,
    // Starts copying a model into a free slot (a hint; failures are logged).
    caf::reacts_to<prefetch_atom, core::ModelId>,
    // Prefills one request on the active model: its first token and its exported KV.
    caf::replies_to<prefill_atom, worker::PrefillItem>::with<PrefillOutcome>,
    // Adopts a handed-off sequence (parked on the host when its batch is not the active one).
    caf::replies_to<import_atom, ImportCommand>::with<bool>,
    // One decode step of a batch.
    caf::replies_to<decode_atom, DecodeCommand>::with<DecodeOutcome>,
    // Moves sequences' KV to the host slab.
    caf::reacts_to<swapout_atom, std::vector<worker::SeqId>>,
    // Forgets a model's weights (unload); answers once done.
    caf::replies_to<forget_atom, core::ModelId>::with<bool>,
    // Frees a finished or cancelled sequence.
    caf::reacts_to<release_atom, worker::SeqId>>;

/// Which model each device holds now (-1: none); written by gpu_workers, read by /v1/models.
struct ResidencyBoard {
  explicit ResidencyBoard(size_t devices) : device_model(devices) {
    for (auto& m : device_model) m.store(-1);
  }
  std::vector<std::atomic<std::int32_t>> device_model;
};

/// Spawns a detached gpu_worker owning `device`; `name` labels its metrics ("prefill-0") and
/// `slot` is its entry on `residency`.
GpuWorkerActor spawn_gpu_worker(caf::actor_system& system, std::unique_ptr<worker::DeviceWorker> device,
                                std::string name, std::shared_ptr<ServingMetrics> metrics,
                                std::shared_ptr<ResidencyBoard> residency, size_t slot);

}  // namespace aegaeon::actors
