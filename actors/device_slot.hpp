// What a scheduling role tracks about one of its devices between commands.
#pragma once

#include <optional>

#include <caf/actor.hpp>

#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

/// One device as prefill or decode sees it: its gpu_worker, the model its weights region holds,
/// the model being prefetched, and whether a command is in flight (one at a time).
struct DeviceSlot {
  caf::actor worker;
  std::optional<worker::ModelId> resident;
  std::optional<worker::ModelId> prefetching;
  bool busy = false;

  /// Records that `model` became resident (a prefetch of it is used up).
  void on_resident(worker::ModelId model) {
    resident = model;
    if (prefetching == model) prefetching.reset();
  }
  /// True when a prefetch hint for `model` should be sent now.
  [[nodiscard]] bool should_prefetch(const std::optional<worker::ModelId>& model) const {
    return model && model != prefetching && model != resident;
  }
};

}  // namespace aegaeon::actors
