#include "actors/policy/weight_cache.hpp"

#include <algorithm>
#include <cmath>

namespace aegaeon::policy {

void WeightCache::on_demand(ModelId model, double now_s) {
  const auto m = static_cast<std::size_t>(model);
  if (demand_.size() <= m) demand_.resize(m + 1);
  demand_[m] = Demand{demand(model, now_s) + 1.0, now_s};
}

double WeightCache::demand(ModelId model, double now_s) const {
  const auto m = static_cast<std::size_t>(model);
  if (m >= demand_.size()) return 0.0;
  const double age_s = std::max(0.0, now_s - demand_[m].at_s);
  return demand_[m].count * std::exp2(-age_s / half_life_s_);
}

bool WeightCache::contains(ModelId model) const {
  return std::find(resident_.begin(), resident_.end(), model) != resident_.end();
}

void WeightCache::insert(ModelId model) {
  if (!contains(model)) resident_.push_back(model);
}

void WeightCache::erase(ModelId model) { std::erase(resident_, model); }

double WeightCache::bytes(std::span<const ModelCosts> costs) const {
  double sum = 0.0;
  for (ModelId m : resident_) sum += costs[static_cast<std::size_t>(m)].weight_bytes;
  return sum;
}

std::vector<ModelId> WeightCache::eviction_order(std::span<const ModelCosts> costs, double now_s) const {
  auto loss_per_byte = [&](ModelId m) {
    const ModelCosts& c = costs[static_cast<std::size_t>(m)];
    return demand(m, now_s) * c.model_switch_s / std::max(c.weight_bytes, 1.0);
  };
  std::vector<ModelId> order = resident_;
  std::stable_sort(order.begin(), order.end(), [&](ModelId a, ModelId b) { return loss_per_byte(a) < loss_per_byte(b); });
  return order;
}

}  // namespace aegaeon::policy
