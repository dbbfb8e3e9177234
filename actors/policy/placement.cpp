#include "actors/policy/placement.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

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

namespace {

// Placement's working state: what each worker is assigned so far.
struct CacheFill {
  const CacheNode* node = nullptr;
  std::uint64_t used_bytes = 0;
  double demand = 0.0;
  std::set<std::string> models;

  [[nodiscard]] bool unlimited() const { return node->cache_bytes == 0; }
  [[nodiscard]] bool can_take(const CacheModel& m) const {
    return !unlimited() && node->on_disk.count(m.name) != 0 && models.count(m.name) == 0 &&
           used_bytes + m.weight_bytes <= node->cache_bytes;
  }
  void take(const CacheModel& m) {
    models.insert(m.name);
    used_bytes += m.weight_bytes;
    demand += m.demand;
  }
};

// Caches `m` on one more worker: one holding it now, else the least demand assigned, then the
// fewest bytes, then the lowest id. False when no worker has room for it.
bool add_copy(std::vector<CacheFill>& fills, const CacheModel& m) {
  CacheFill* best = nullptr;
  auto better = [&](const CacheFill& a, const CacheFill& b) {
    const bool a_holds = a.node->held.count(m.name) != 0;
    const bool b_holds = b.node->held.count(m.name) != 0;
    if (a_holds != b_holds) return a_holds;
    if (a.demand != b.demand) return a.demand < b.demand;
    if (a.used_bytes != b.used_bytes) return a.used_bytes < b.used_bytes;
    return a.node->node_id < b.node->node_id;
  };
  for (auto& fill : fills) {
    if (fill.can_take(m) && (best == nullptr || better(fill, *best))) best = &fill;
  }
  if (best == nullptr) return false;
  best->take(m);
  return true;
}

std::size_t copies(const std::vector<CacheFill>& fills, const std::string& model) {
  return static_cast<std::size_t>(
      std::count_if(fills.begin(), fills.end(), [&](const CacheFill& f) { return f.models.count(model) != 0; }));
}

}  // namespace

CacheAssignment assign_host_caches(std::span<const CacheNode> nodes, std::span<const CacheModel> models,
                                   double demand_per_copy) {
  std::vector<CacheFill> fills;
  for (const auto& node : nodes) {
    CacheFill fill{&node};
    if (fill.unlimited()) {
      for (const auto& m : models) {
        if (node.on_disk.count(m.name) != 0) fill.take(m);
      }
    }
    fills.push_back(std::move(fill));
  }
  std::vector<const CacheModel*> by_demand;
  double total_demand = 0.0;
  for (const auto& m : models) {
    if (m.demand <= 0.0) continue;
    by_demand.push_back(&m);
    total_demand += m.demand;
  }
  std::stable_sort(by_demand.begin(), by_demand.end(), [](const CacheModel* a, const CacheModel* b) {
    return a->demand != b->demand ? a->demand > b->demand : a->name < b->name;
  });
  // 2. One copy of each model with work, then more of the heavy ones.
  for (const CacheModel* m : by_demand) {
    if (copies(fills, m->name) == 0) add_copy(fills, *m);
  }
  for (const CacheModel* m : by_demand) {
    const double by_share = std::ceil(m->demand / total_demand * static_cast<double>(fills.size()));
    const double by_demand_per_copy = std::ceil(m->demand / demand_per_copy);
    const auto wanted = static_cast<std::size_t>(std::min(by_share, by_demand_per_copy));
    while (copies(fills, m->name) < wanted && add_copy(fills, *m)) {
    }
  }
  // 3. One copy of each idle model nobody caches, those cached now first.
  std::vector<const CacheModel*> idle;
  for (const auto& m : models) {
    if (m.demand <= 0.0 && copies(fills, m.name) == 0) idle.push_back(&m);
  }
  auto held_somewhere = [&](const CacheModel* m) {
    return std::any_of(nodes.begin(), nodes.end(), [&](const CacheNode& n) { return n.held.count(m->name) != 0; });
  };
  std::stable_sort(idle.begin(), idle.end(), [&](const CacheModel* a, const CacheModel* b) {
    const bool a_held = held_somewhere(a);
    const bool b_held = held_somewhere(b);
    return a_held != b_held ? a_held : a->name < b->name;
  });
  for (const CacheModel* m : idle) add_copy(fills, *m);
  // 4. What is cached now stays where it still fits.
  for (auto& fill : fills) {
    for (const auto& m : models) {
      if (fill.node->held.count(m.name) != 0 && fill.can_take(m)) fill.take(m);
    }
  }
  CacheAssignment out;
  for (const auto& fill : fills) out[fill.node->node_id] = fill.models;
  return out;
}

bool wants_prefill_device(const SplitPressure& pressure, bool prefilling_now, double hysteresis) {
  if (pressure.device_bytes <= 0.0) return prefilling_now;
  const double share = (pressure.demanded_weight_bytes + pressure.kv_bytes) / pressure.device_bytes;
  return prefilling_now ? share >= 1.0 - hysteresis : share > 1.0;
}

}  // namespace aegaeon::policy
