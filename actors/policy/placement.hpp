// Placement: which models a node's host cache holds and how many prefill/decode instances each
// model group gets, rebalanced as rates change. Pure and simple: greedy bin packing by load.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "actors/policy/request.hpp"
#include "core/result.hpp"

namespace aegaeon::policy {

/// Demand of one model, as measured (or forecast) by the caller.
struct ModelDemand {
  ModelId model = 0;
  double rate_rps = 0.0;      ///< arrivals per second
  double service_s = 1.0;     ///< mean device-seconds one request needs (prefill + decode share)
  double weight_bytes = 0.0;  ///< host cache footprint
  double prefill_share = 0.0; ///< share of service_s spent in prefill (0: keep the configured split)
};

/// The cluster placement works on.
struct PlacementConfig {
  std::int32_t nodes = 1;
  std::int32_t prefill_per_node = 1;
  std::int32_t decode_per_node = 1;
  double host_cache_bytes = 64.0 * 1024 * 1024 * 1024;  ///< per node
  /// Split each node's devices between prefill and decode in proportion to its group's prefill
  /// share of the load (at least one of each), instead of the fixed per-node counts.
  bool split_by_demand = false;
  /// Rebalance only when some group's load share differs from its device share by more than this.
  double rebalance_threshold = 0.25;
};

/// One model group: the models one node caches and serves, and its instances.
struct ModelGroup {
  std::int32_t node = 0;
  std::vector<ModelId> models;
  double load = 0.0;  ///< Σ rate · service_s (busy devices needed)
  std::int32_t prefill_instances = 0;
  std::int32_t decode_instances = 0;
};

/// A placement: one group per node.
struct Placement {
  std::vector<ModelGroup> groups;
};

/// Places models on nodes: heaviest model first onto the least loaded node whose host cache
/// still has room. Each node keeps its devices; with split_by_demand their prefill/decode split
/// follows the group's prefill share. Fails naming the first model
/// that fits no node.
core::Result<Placement> plan_placement(std::span<const ModelDemand> demands, const PlacementConfig& config);

/// True when the current placement is off from the demand by more than the threshold (some
/// group's share of the load differs from its share of devices), or a model is missing.
bool needs_rebalance(const Placement& current, std::span<const ModelDemand> demands,
                     const PlacementConfig& config);

// ---- host caches of a cluster's workers (the controller's placement) -----------------------

/// A worker's host model cache, as placement sees it.
struct CacheNode {
  std::uint64_t node_id = 0;
  /// Host memory for model weights; 0: no limit (the worker holds every model it has on disk).
  std::uint64_t cache_bytes = 0;
  std::set<std::string> on_disk;  ///< models it can load
  std::set<std::string> held;     ///< models its cache holds now (kept where room allows)
};

/// A model and how much work it has now.
struct CacheModel {
  std::string name;
  std::uint64_t weight_bytes = 0;
  double demand = 0.0;  ///< requests in flight or waiting for it (any unit; only ratios count)
};

/// Which models each worker's cache should hold, by node id.
using CacheAssignment = std::map<std::uint64_t, std::set<std::string>>;

/// Requests in flight that justify one more copy of a model: a worker batches many requests of
/// one model at little extra cost, while a copy costs a load and the room of other models.
inline constexpr double kDemandPerCopy = 8.0;

/// Assigns models to the workers' host caches by demand and memory, moving as little as it can:
///   1. a worker without a limit holds every model it has on disk;
///   2. every model with demand gets one cache (heaviest first), then the heavy ones more: a
///      model with share s of the demand wants ceil(s · workers) caches, but no more than one
///      per `demand_per_copy` requests; so no model waits for another's second copy;
///   3. every model without demand that no cache holds yet gets one where room is left;
///   4. what caches hold now stays where room is left (a reload costs a disk read).
/// Each copy goes to a worker that has the model on disk and room for it: one that holds it
/// already if any, else the one with the least demand assigned, then the fewest bytes, then the
/// lowest id. A model
/// that fits nowhere is left out (its requests wait until a worker with room joins).
CacheAssignment assign_host_caches(std::span<const CacheNode> nodes, std::span<const CacheModel> models,
                                   double demand_per_copy = kDemandPerCopy);

// ---- the prefill/decode split, online ----------------------------------------------------------

/// What the split decision measures across the devices that may decode.
struct SplitPressure {
  double demanded_weight_bytes = 0.0;  ///< weights of the models requested recently
  double kv_bytes = 0.0;               ///< KV the running requests will hold by their last token
  double device_bytes = 0.0;           ///< memory of every device that may decode
};

/// Whether one device should prefill prompts (rather than decode): while the models in demand and
/// their KV exceed the devices' memory, prompts keep arriving for models no decode device holds,
/// and loading those on decode devices evicts models in use there; a prefill device takes them.
/// Otherwise every prompt finds a decode device that holds its model and a prefill device would
/// idle. `hysteresis` (a share of memory) keeps the answer from flapping around the boundary.
bool wants_prefill_device(const SplitPressure& pressure, bool prefilling_now, double hysteresis = 0.05);

}  // namespace aegaeon::policy
