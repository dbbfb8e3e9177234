#include "actors/policy/weight_cache.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace aegaeon::policy {
namespace {

ModelCosts model(double bytes, double load_s) {
  ModelCosts c;
  c.weight_bytes = bytes;
  c.model_switch_s = load_s;
  return c;
}

TEST(WeightCache, DemandHalvesEveryHalfLife) {
  WeightCache cache(10.0);
  cache.on_demand(0, 0.0);
  cache.on_demand(0, 0.0);
  EXPECT_DOUBLE_EQ(cache.demand(0, 0.0), 2.0);
  EXPECT_DOUBLE_EQ(cache.demand(0, 10.0), 1.0);
  cache.on_demand(0, 20.0);  // 0.5 left of the first two, plus one
  EXPECT_DOUBLE_EQ(cache.demand(0, 20.0), 1.5);
  EXPECT_DOUBLE_EQ(cache.demand(7, 20.0), 0.0);  // never asked for
}

// Evict the model whose absence costs least per byte freed, not the least recently used: the
// large model reloads in 2 s but is wanted 3× as often per byte as the small one.
TEST(WeightCache, EvictsTheCheapestLossPerByteFirst) {
  const std::vector<ModelCosts> costs{model(10.0, 1.0), model(40.0, 2.0), model(10.0, 1.0)};
  WeightCache cache(1e9);
  for (ModelId m : {0, 1, 2}) cache.insert(m);
  cache.on_demand(1, 0.0);  // hot large: 6 requests × 2 s / 40 = 0.3
  for (int k = 0; k < 5; ++k) cache.on_demand(1, 0.0);
  cache.on_demand(0, 0.0);  // small, once: 1 × 1 s / 10 = 0.1
  // Model 2 never asked for: 0 (an idle model goes first).
  EXPECT_EQ(cache.eviction_order(costs, 1.0), (std::vector<ModelId>{2, 0, 1}));
  EXPECT_DOUBLE_EQ(cache.bytes(costs), 60.0);
  cache.erase(2);
  EXPECT_FALSE(cache.contains(2));
  EXPECT_EQ(cache.models(), (std::vector<ModelId>{0, 1}));
}

}  // namespace
}  // namespace aegaeon::policy
