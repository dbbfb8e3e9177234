#include "actors/policy/serving_policy.hpp"

#include <limits>
#include <string>

namespace aegaeon::policy {

core::Result<ServingPolicy> parse_serving_policy(std::string_view name) {
  for (std::size_t i = 0; i < kServingPolicyNames.size(); ++i) {
    if (kServingPolicyNames[i] == name) return static_cast<ServingPolicy>(i);
  }
  std::string valid;
  for (auto n : kServingPolicyNames) valid += (valid.empty() ? "" : "|") + std::string(n);
  return core::error(core::ErrorCode::kInvalidArgument,
                     "unknown scheduling policy '" + std::string(name) + "' (expected one of " + valid + ")");
}

std::string_view to_string(ServingPolicy policy) { return kServingPolicyNames[static_cast<std::size_t>(policy)]; }

PrefillConfig prefill_config(ServingPolicy policy) {
  PrefillConfig config;
  if (policy != ServingPolicy::kAegaeon) {
    // A group never closes: an instance keeps its model until no request of it is queued
    // there, and loads the next model only on demand.
    config.max_group_size = std::numeric_limits<std::int32_t>::max();
    config.prefetch = false;
  }
  return config;
}

DecodeInstanceConfig decode_config(ServingPolicy policy, DecodeInstanceConfig base) {
  if (policy != ServingPolicy::kAegaeon) {
    base.preemptive = false;
    base.prefetch = false;
  }
  return base;
}

DecodeInstanceConfig elastic_decode_config(DecodeInstanceConfig base, double kv_bytes, std::int32_t weight_slots,
                                           double ttft_slo_s) {
  // The policy counts KV by the token; a device allocates 16-token blocks, and blocks of several
  // geometries fragment the space: leave a fifth of it for that.
  constexpr double kKvPlannedShare = 0.8;
  base.memory_bytes = kKvPlannedShare * kv_bytes;
  base.weight_slots = weight_slots;
  base.immediate_turns = true;
  base.round.max_round_s = 0.5 * ttft_slo_s;
  return base;
}

std::int32_t default_weight_slots(ServingPolicy policy) { return policy == ServingPolicy::kAegaeon ? 0 : 1; }

ModelPins initial_pins(ServingPolicy policy, std::int32_t models, std::int32_t instances) {
  if (policy == ServingPolicy::kStatic) return ModelPins::one_per_model(models, instances);
  return ModelPins(instances);
}

core::Result<void> check_devices(ServingPolicy policy, std::int32_t models, std::int32_t prefill_devices,
                                 std::int32_t decode_devices) {
  if (policy != ServingPolicy::kStatic || (prefill_devices >= models && decode_devices >= models)) {
    return core::ok();
  }
  return core::error(core::ErrorCode::kInvalidArgument,
                     "serve.policy=static pins each model to a prefill and a decode device of its own: " +
                         std::to_string(models) + " models need serve.prefill_devices and serve.decode_devices >= " +
                         std::to_string(models) + " (have " + std::to_string(prefill_devices) + " and " +
                         std::to_string(decode_devices) + "); add devices or choose another serve.policy");
}

}  // namespace aegaeon::policy
