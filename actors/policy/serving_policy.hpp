// Which scheduling policy a serving node runs: aegaeon's token-level preemptive switching, or
// one of the baselines it is measured against (PAPER-NOTES.md "Headline results"). A policy is
// only a choice of knobs and placement for the prefill and decode schedulers, so every policy
// runs the same scheduler code.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "actors/policy/decode_instance.hpp"
#include "actors/policy/model_pins.hpp"
#include "actors/policy/prefill_scheduler.hpp"
#include "actors/policy/request.hpp"
#include "core/result.hpp"

namespace aegaeon::policy {

/// The serving node's scheduling policy (config key serve.policy).
enum class ServingPolicy {
  /// Grouped FCFS prefill (groups ≤ 8, prefetch); decode in weighted round-robin rounds with
  /// a preemptive model switch between turns; devices keep several models resident and every
  /// batch's KV while they fit (elastic_decode_config).
  kAegaeon,
  /// ServerlessLLM-like request-level scaling: a device switches model only when it has no
  /// request of its current model left; a request runs to completion once it has the device.
  kRequestLevel,
  /// Model m pinned to prefill device m and decode device m; never switches.
  kStatic,
};

/// Every policy's name, in enum order (the values serve.policy accepts).
inline constexpr std::array<std::string_view, 3> kServingPolicyNames = {"aegaeon", "request-level", "static"};

/// The policy called `name`; the error lists the valid names.
core::Result<ServingPolicy> parse_serving_policy(std::string_view name);
/// The policy's name ("aegaeon", "request-level", "static").
std::string_view to_string(ServingPolicy policy);

/// The prefill scheduler's knobs under `policy`.
PrefillConfig prefill_config(ServingPolicy policy);
/// The decode instances' knobs under `policy`, starting from aegaeon's `base` (SLO, batch size).
DecodeInstanceConfig decode_config(ServingPolicy policy, DecodeInstanceConfig base);
/// aegaeon's decode knobs on a device with `kv_bytes` of KV space and `weight_slots` regions
/// for weights (the runtime's DeviceWorker): elastic memory (KV planned within a share of the KV
/// space, the rest left to block rounding and fragmentation, for models whose ModelCosts give KV
/// bytes; the runtime's decode role gives none and lets the device make room), new batches' turns
/// in the running round, rounds bounded to half the TTFT SLO: the simulator's defaults.
DecodeInstanceConfig elastic_decode_config(DecodeInstanceConfig base, double kv_bytes, std::int32_t weight_slots,
                                           double ttft_slo_s);
/// Weight slots per device under `policy` when serve.weight_slots is 0: aegaeon one per served
/// model (0), the baselines 1 (request-level scaling loads one model at a time; static never
/// switches).
std::int32_t default_weight_slots(ServingPolicy policy);
/// The pins a role's `instances` start with under `policy`: static pins model m to instance m
/// (in both roles); the others start with none.
ModelPins initial_pins(ServingPolicy policy, std::int32_t models, std::int32_t instances);
/// kInvalidArgument when the devices cannot carry the policy: static needs a prefill and a
/// decode device of its own for every model.
core::Result<void> check_devices(ServingPolicy policy, std::int32_t models, std::int32_t prefill_devices,
                                 std::int32_t decode_devices);

}  // namespace aegaeon::policy
