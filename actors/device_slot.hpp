// What a scheduling role tracks about one of its devices between commands.
#pragma once

#include <memory>
#include <optional>

#include "actors/gpu_worker.hpp"
#include "actors/policy/weight_cache.hpp"
#include "actors/serving_atoms.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

/// One device as prefill or decode sees it: its gpu_worker, the active model (the one its
/// prefills and steps run), every model in its weight slots as of the last switch, the model
/// being prefetched, and whether a command is in flight (one at a time).
struct DeviceSlot {
  GpuWorkerActor worker;
  std::optional<core::ModelId> resident;
  policy::WeightCache held = policy::WeightCache();
  std::optional<core::ModelId> prefetching;
  bool busy = false;

  /// Records that `model` became active (a prefetch of it is used up).
  void on_resident(core::ModelId model) {
    resident = model;
    if (prefetching == model) prefetching.reset();
  }
  /// Records a switch's outcome: `model` active, `stats.resident` in the slots.
  void on_switched(core::ModelId model, const worker::SwitchStats& stats) {
    held.clear();
    for (auto m : stats.resident) held.insert(m);
    on_resident(model);
  }
  /// True when a prefetch hint for `model` should be sent now.
  [[nodiscard]] bool should_prefetch(const std::optional<core::ModelId>& model) const {
    return model && model != prefetching && model != resident;
  }
};

/// Unloading `model` (unload_atom): makes every device of a role forget its weights (forget_atom)
/// and calls `done` once all have. `Actor` is a role whose state keeps its DeviceSlots in
/// `instances`. A slot drops the model when its device answers, not before: a switch sent
/// earlier answers first and would mark the model resident again.
template <class Actor>
void forget_on_devices(Actor* self, core::ModelId model, DevicesForgot done) {
  auto pending = std::make_shared<std::size_t>(self->state.instances.size());
  if (*pending == 0) {
    done();
    return;
  }
  for (std::size_t i = 0; i < self->state.instances.size(); ++i) {
    auto answered = [self, i, model, pending, done] {
      auto& slot = self->state.instances[i];
      if (slot.resident == model) slot.resident.reset();
      slot.held.erase(model);
      if (slot.prefetching == model) slot.prefetching.reset();
      if (--*pending == 0) done();
    };
    // A device that is gone copies nothing either.
    self->request(self->state.instances[i].worker, caf::infinite, forget_atom::value, model)
        .then([answered](bool) { answered(); }, [answered](caf::error&) { answered(); });
  }
}

}  // namespace aegaeon::actors
