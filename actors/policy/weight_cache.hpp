// Device memory as a cost-aware cache of model weights: which models are resident on one device
// and, when room is needed, which to evict first. A model's value is how much losing it would
// cost per byte freed: its recent demand × the seconds a reload takes ÷ its bytes — the priority
// of GreedyDual-Size-Frequency (Cherkasova 1998), with demand decaying over time instead of
// GDSF's inflation clock. Plain LRU would evict a hot large model to keep a cold small one.
#pragma once

#include <span>
#include <vector>

#include "actors/policy/cost_model.hpp"
#include "actors/policy/request.hpp"

namespace aegaeon::policy {

class WeightCache {
 public:
  /// A cache whose demand counts halve every `half_life_s` seconds.
  explicit WeightCache(double half_life_s = 60.0) : half_life_s_(half_life_s) {}

  /// A request for `model` arrived at `now_s` (raises its demand by one).
  void on_demand(ModelId model, double now_s);
  /// `model`'s demand at `now_s`: requests seen, each weighted by 2^(−age / half-life).
  [[nodiscard]] double demand(ModelId model, double now_s) const;

  /// Whether `model`'s weights are on the device.
  [[nodiscard]] bool contains(ModelId model) const;
  /// Records that `model`'s weights are on the device / have left it.
  void insert(ModelId model);
  void erase(ModelId model);
  /// Records that no model is on the device (demand is kept).
  void clear() { resident_.clear(); }
  /// The resident models, in the order they arrived.
  [[nodiscard]] const std::vector<ModelId>& models() const { return resident_; }
  /// Bytes of the resident models' weights.
  [[nodiscard]] double bytes(std::span<const ModelCosts> costs) const;

  /// The resident models ordered by what evicting them loses, least first.
  [[nodiscard]] std::vector<ModelId> eviction_order(std::span<const ModelCosts> costs, double now_s) const;

 private:
  struct Demand {
    double count = 0.0;
    double at_s = 0.0;
  };
  double half_life_s_;
  std::vector<ModelId> resident_;
  std::vector<Demand> demand_;  // index = ModelId
};

}  // namespace aegaeon::policy
