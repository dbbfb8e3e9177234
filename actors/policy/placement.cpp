#include "actors/policy/placement.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace aegaeon::policy {

core::Result<Placement> plan_placement(std::span<const ModelDemand> demands, const PlacementConfig& config) {
  if (config.nodes < 1) {
    return core::error(core::ErrorCode::kInvalidArgument, "placement: nodes must be at least 1");
  }
  Placement p;
  std::vector<double> used_bytes(static_cast<std::size_t>(config.nodes), 0.0);
  for (std::int32_t n = 0; n < config.nodes; ++n) {
    p.groups.push_back(ModelGroup{n, {}, 0.0, config.prefill_per_node, config.decode_per_node});
  }
  std::vector<std::size_t> idx(demands.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    return demands[a].rate_rps * demands[a].service_s > demands[b].rate_rps * demands[b].service_s;
  });
  for (std::size_t i : idx) {
    const ModelDemand& d = demands[i];
    std::int32_t best = -1;
    for (std::int32_t n = 0; n < config.nodes; ++n) {
      if (used_bytes[static_cast<std::size_t>(n)] + d.weight_bytes > config.host_cache_bytes) continue;
      if (best < 0 || p.groups[static_cast<std::size_t>(n)].load < p.groups[static_cast<std::size_t>(best)].load) best = n;
    }
    if (best < 0) {
      return core::error(core::ErrorCode::kResourceExhausted,
                         "placement: model " + std::to_string(d.model) +
                             " fits no node's host cache (weight_bytes " +
                             std::to_string(static_cast<long long>(d.weight_bytes)) + ")");
    }
    auto& g = p.groups[static_cast<std::size_t>(best)];
    g.models.push_back(d.model);
    g.load += d.rate_rps * d.service_s;
    used_bytes[static_cast<std::size_t>(best)] += d.weight_bytes;
  }
  if (config.split_by_demand) {
    const std::int32_t devices = config.prefill_per_node + config.decode_per_node;
    for (auto& g : p.groups) {
      double prefill_load = 0.0;
      for (ModelId m : g.models) {
        auto it = std::find_if(demands.begin(), demands.end(), [&](const ModelDemand& d) { return d.model == m; });
        prefill_load += it->rate_rps * it->service_s * it->prefill_share;
      }
      if (devices < 2 || g.load <= 0.0) continue;
      const auto want = static_cast<std::int32_t>(std::lround(devices * prefill_load / g.load));
      g.prefill_instances = std::clamp(want, 1, devices - 1);
      g.decode_instances = devices - g.prefill_instances;
    }
  }
  return p;
}

bool needs_rebalance(const Placement& current, std::span<const ModelDemand> demands,
                     const PlacementConfig& config) {
  double total = 0.0;
  std::int32_t devices = 0;
  for (const auto& g : current.groups) devices += g.prefill_instances + g.decode_instances;
  for (const auto& d : demands) total += d.rate_rps * d.service_s;
  if (total <= 0.0 || devices <= 0) return false;
  for (const auto& g : current.groups) {
    double load = 0.0;
    for (ModelId m : g.models) {
      auto it = std::find_if(demands.begin(), demands.end(), [&](const ModelDemand& d) { return d.model == m; });
      if (it != demands.end()) load += it->rate_rps * it->service_s;
    }
    const double load_share = load / total;
    const double device_share = static_cast<double>(g.prefill_instances + g.decode_instances) / devices;
    if (std::fabs(load_share - device_share) > config.rebalance_threshold) return true;
  }
  for (const auto& d : demands) {
    bool placed = false;
    for (const auto& g : current.groups) {
      placed = placed || std::find(g.models.begin(), g.models.end(), d.model) != g.models.end();
    }
    if (!placed) return true;
  }
  return false;
}

}  // namespace aegaeon::policy
