// The decode role: weighted round-robin decoding (actors/policy/decode_instance) over this
// node's decode devices — batches of one model each, a time quota per batch per round, and a
// preemptive model switch between turns, with KV swapped out and in around it (or, under the
// baseline serving policies, batches run to completion on the devices the policy allows).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/gpu_worker.hpp"
#include "actors/policy/decode_instance.hpp"
#include "actors/policy/model_pins.hpp"
#include "actors/policy/serving_policy.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

struct ServingMetrics;

/// What the decode role is built from.
struct DecodeSetup {
  std::vector<GpuWorkerActor> workers;  ///< one gpu_worker per decode device
  std::shared_ptr<const worker::HostModelCache> models;
  policy::DecodeInstanceConfig config;  ///< aegaeon's knobs; the policy adjusts them
  policy::ServingPolicy policy = policy::ServingPolicy::kAegaeon;
  /// Models with a decode device of their own at start (initial_pins); pin_atom replaces them.
  policy::ModelPins pins;
  std::vector<std::int64_t> kv_capacity_tokens;    ///< per model, on one decode device
  double host_to_device_bytes_per_s = 8e9;         ///< for switch and swap estimates
};

/// Spawns the decode role; tokens go to `proxy`, admission hints (α per model) to `prefill`
/// once wired with a wire_atom message carrying the prefill actor.
caf::actor spawn_decode(caf::actor_system& system, DecodeSetup setup, caf::actor proxy,
                        std::shared_ptr<ServingMetrics> metrics);

}  // namespace aegaeon::actors
