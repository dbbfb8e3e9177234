// ModelPins: models given a device of their own, for one role's instances (prefill or decode).
// A pinned model's new requests go only to its instance and no other model's new requests go
// there, so the pinned model never waits for a switch. Under serve.policy=static every model is
// pinned from the start; under the other policies an operator pins and unpins at run time
// (admin API), and one instance always stays unpinned for the models that are not.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "actors/policy/request.hpp"
#include "core/result.hpp"

namespace aegaeon::policy {

class ModelPins {
 public:
  /// No pins (every model may go anywhere).
  ModelPins() = default;
  /// No pins over `instances` instances.
  explicit ModelPins(std::int32_t instances) : instances_(instances) {}
  /// Model m pinned to instance m for every m < min(models, instances) (serve.policy=static).
  static ModelPins one_per_model(std::int32_t models, std::int32_t instances);

  /// Pins `model` to an instance of its own: the one already pinned to it; else, among the
  /// instances no model is pinned to, the first whose device holds the model now
  /// (`resident[i]`), else the first of them. kFailedPrecondition when that would leave no
  /// unpinned instance for the other models (the message says how many instances there are).
  core::Result<InstanceId> pin(ModelId model, std::span<const std::optional<ModelId>> resident = {});
  /// Removes `model`'s pin; false when it had none.
  bool unpin(ModelId model);

  /// The instance `model` is pinned to, if any.
  [[nodiscard]] std::optional<InstanceId> instance_of(ModelId model) const;
  /// Whether a new request of `model` may go to `instance`: its own instance when pinned,
  /// otherwise any instance no model is pinned to.
  [[nodiscard]] bool allows(ModelId model, InstanceId instance) const;
  /// The pins as (model, instance), in the order they were made.
  struct Pin {
    ModelId model = 0;
    InstanceId instance = 0;
  };
  [[nodiscard]] const std::vector<Pin>& pins() const { return pins_; }
  [[nodiscard]] std::int32_t instances() const { return instances_; }

 private:
  [[nodiscard]] bool taken(InstanceId instance) const;

  std::int32_t instances_ = 0;
  std::vector<Pin> pins_;
};

}  // namespace aegaeon::policy
