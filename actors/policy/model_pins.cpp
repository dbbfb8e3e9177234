#include "actors/policy/model_pins.hpp"

#include <algorithm>
#include <string>

namespace aegaeon::policy {

ModelPins ModelPins::one_per_model(std::int32_t models, std::int32_t instances) {
  ModelPins pins(instances);
  for (ModelId m = 0; m < std::min(models, instances); ++m) pins.pins_.push_back({m, m});
  return pins;
}

bool ModelPins::taken(InstanceId instance) const {
  return std::any_of(pins_.begin(), pins_.end(), [&](const Pin& p) { return p.instance == instance; });
}

core::Result<InstanceId> ModelPins::pin(ModelId model, std::span<const std::optional<ModelId>> resident) {
  if (auto existing = instance_of(model)) return *existing;
  std::vector<InstanceId> free;
  for (InstanceId i = 0; i < instances_; ++i) {
    if (!taken(i)) free.push_back(i);
  }
  // The models that are not pinned need an instance too.
  if (free.size() < 2) {
    return core::error(core::ErrorCode::kFailedPrecondition,
                       std::to_string(instances_) + " instance(s), " + std::to_string(pins_.size()) +
                           " already pinned: a pin needs a free one for the model and one left for the others");
  }
  InstanceId chosen = free.front();
  for (InstanceId i : free) {
    if (static_cast<std::size_t>(i) < resident.size() && resident[static_cast<std::size_t>(i)] == model) {
      chosen = i;
      break;
    }
  }
  pins_.push_back({model, chosen});
  return chosen;
}

bool ModelPins::unpin(ModelId model) {
  auto it = std::find_if(pins_.begin(), pins_.end(), [&](const Pin& p) { return p.model == model; });
  if (it == pins_.end()) return false;
  pins_.erase(it);
  return true;
}

std::optional<InstanceId> ModelPins::instance_of(ModelId model) const {
  for (const auto& p : pins_) {
    if (p.model == model) return p.instance;
  }
  return std::nullopt;
}

bool ModelPins::allows(ModelId model, InstanceId instance) const {
  if (auto own = instance_of(model)) return *own == instance;
  return !taken(instance);
}

}  // namespace aegaeon::policy
