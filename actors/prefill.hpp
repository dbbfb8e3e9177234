// The prefill role: grouped-FCFS scheduling (actors/policy/prefill_scheduler, configured by the
// serving policy) over this node's prefill devices, admission control, and the handoff of
// prefilled requests to decode.
#pragma once

#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/policy/admission.hpp"
#include "actors/policy/model_pins.hpp"
#include "actors/policy/request.hpp"
#include "actors/gpu_worker.hpp"
#include "actors/policy/serving_policy.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

struct ServingMetrics;

/// What the prefill role is built from.
struct PrefillSetup {
  std::vector<GpuWorkerActor> workers;  ///< one gpu_worker per prefill device
  std::shared_ptr<const worker::HostModelCache> models;
  policy::Slo slo;
  policy::AdmissionConfig admission;
  policy::ServingPolicy policy = policy::ServingPolicy::kAegaeon;
  /// Models with a prefill device of their own at start (initial_pins); pin_atom replaces them.
  policy::ModelPins pins;
  double host_to_device_bytes_per_s = 8e9;  ///< for switch estimates until measured
};

/// Spawns the prefill role; `decode` receives handoffs, `proxy` receives first tokens.
caf::actor spawn_prefill(caf::actor_system& system, PrefillSetup setup, caf::actor decode,
                         caf::actor proxy, std::shared_ptr<ServingMetrics> metrics);

}  // namespace aegaeon::actors
