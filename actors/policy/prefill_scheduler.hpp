// Grouped-FCFS prefill: which prefill instance a request goes to, and what each instance runs
// next (PAPER-NOTES.md "Prefill dispatch").
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "actors/policy/model_pins.hpp"
#include "actors/policy/request.hpp"
#include "actors/policy/weight_cache.hpp"

namespace aegaeon::policy {

/// Knobs of the prefill policy.
struct PrefillConfig {
  /// Most requests a group ever admits; bounds how long a hot model can hold an instance.
  /// Unbounded (request-level baseline): an instance keeps its model while requests of it
  /// keep arriving.
  std::int32_t max_group_size = 8;
  /// Emit prefetch hints for the model of the next group that differs.
  bool prefetch = true;
  /// With several models resident per device (on_arrival given each instance's WeightCache): a
  /// new group goes where queued requests + this penalty (0 where the model is resident) is
  /// least. A load costs about as much as prefilling a group, hence the default.
  std::int32_t miss_penalty_requests = 8;
};

/// Where an arriving request was queued.
struct PrefillDispatch {
  InstanceId instance = 0;
  bool opened_group = false;  ///< false: joined an existing same-model group
};

/// What a prefill instance should do next.
struct PrefillAction {
  enum class Kind { kIdle, kSwitch, kRun };
  Kind kind = Kind::kIdle;
  ModelId model = 0;                      ///< kSwitch: model to load; kRun: model that runs
  RequestId request = 0;                  ///< kRun: the request to prefill (one per batch)
  std::optional<ModelId> prefetch_model;  ///< model of the next group that differs, if any
};

/// The grouped-FCFS state of every prefill instance of one model group.
class PrefillScheduler {
 public:
  /// A scheduler over `instances` prefill instances.
  PrefillScheduler(std::int32_t instances, PrefillConfig config = {});

  /// Queues an arriving request: joins the first instance holding a non-full group of its model,
  /// else opens a group on the instance with the fewest queued requests (ties: lowest index).
  /// Both choices are confined to the instances `pins` allows for the model.
  /// With `resident` (each instance's weight cache), a new group prefers an instance holding the
  /// model (PrefillConfig::miss_penalty_requests).
  PrefillDispatch on_arrival(const RequestInfo& request, const ModelPins& pins = {},
                             std::span<const WeightCache> resident = {});
  /// Where on_arrival would put `model`'s next request, without changing anything.
  [[nodiscard]] PrefillDispatch preview(ModelId model, const ModelPins& pins = {},
                                        std::span<const WeightCache> resident = {}) const;
  /// The instance's next step given the model resident on its device. Does not change state.
  [[nodiscard]] PrefillAction next_action(InstanceId instance, std::optional<ModelId> resident) const;
  /// The same for a device holding several models: a switch only when the head group's model
  /// is not among them.
  [[nodiscard]] PrefillAction next_action(InstanceId instance, const WeightCache& resident) const;
  /// Marks the request returned by kRun as prefilled: removes it from its group.
  void on_prefill_done(InstanceId instance, RequestId request);

  /// Requests queued (including the running one) on an instance.
  [[nodiscard]] std::int64_t queued(InstanceId instance) const { return instances_[instance].queued; }
  /// The instance's queued requests in execution order (for wait estimates in admission).
  [[nodiscard]] std::vector<RequestInfo> pending(InstanceId instance) const;
  /// Number of instances.
  [[nodiscard]] std::int32_t instances() const { return static_cast<std::int32_t>(instances_.size()); }

 private:
  struct Group {
    ModelId model = 0;
    std::int32_t joined = 0;  // requests ever admitted, capped at max_group_size
    std::deque<RequestInfo> requests;
  };
  struct Instance {
    std::deque<Group> groups;  // FIFO
    std::int64_t queued = 0;
  };
  [[nodiscard]] PrefillAction next_action_where(InstanceId instance, const std::function<bool(ModelId)>& resident) const;
  [[nodiscard]] std::optional<std::pair<InstanceId, std::size_t>> find_open_group(
      ModelId model, const ModelPins& pins) const;

  PrefillConfig config_;
  std::vector<Instance> instances_;
};

}  // namespace aegaeon::policy
