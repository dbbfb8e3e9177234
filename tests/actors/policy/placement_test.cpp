#include "actors/policy/placement.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace aegaeon::policy {
namespace {

// Loads 4, 3, 2, 1 on 2 nodes: 4 -> node0, 3 -> node1, 2 -> node1 (3 < 4), 1 -> node0 (4 < 5).
TEST(Placement, GreedyHeaviestFirstOntoLeastLoadedNode) {
  std::vector<ModelDemand> d{{0, 1.0, 1.0, 1.0}, {1, 4.0, 1.0, 1.0}, {2, 2.0, 1.0, 1.0}, {3, 3.0, 1.0, 1.0}};
  PlacementConfig cfg;
  cfg.nodes = 2;
  auto p = plan_placement(d, cfg);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->groups[0].models, (std::vector<ModelId>{1, 0}));
  EXPECT_EQ(p->groups[1].models, (std::vector<ModelId>{3, 2}));
  EXPECT_DOUBLE_EQ(p->groups[0].load, 5.0);
  EXPECT_FALSE(needs_rebalance(*p, d, cfg));
  // Model 1 becomes 10x hotter: node0 carries 41/46 of the load on half the devices.
  d[1].rate_rps = 40.0;
  EXPECT_TRUE(needs_rebalance(*p, d, cfg));
}

// 8 devices per node. Node0 holds model 0 (load 2, prefill share 0.5 -> prefill load 1) and
// model 1 is on node1 (load 1, share 0.1). Node0: 8 · 1/2 = 4 prefill; node1: 8 · 0.1 = 0.8 -> 1.
TEST(Placement, SplitsDevicesByPrefillShare) {
  std::vector<ModelDemand> d{{0, 2.0, 1.0, 1.0, 0.5}, {1, 1.0, 1.0, 1.0, 0.1}};
  PlacementConfig cfg;
  cfg.nodes = 2;
  cfg.prefill_per_node = 3;
  cfg.decode_per_node = 5;
  cfg.split_by_demand = true;
  auto p = plan_placement(d, cfg);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->groups[0].prefill_instances, 4);
  EXPECT_EQ(p->groups[0].decode_instances, 4);
  EXPECT_EQ(p->groups[1].prefill_instances, 1);
  EXPECT_EQ(p->groups[1].decode_instances, 7);
}

TEST(Placement, HostCacheLimitIsRespectedAndNamed) {
  std::vector<ModelDemand> d{{0, 1.0, 1.0, 10.0}, {1, 1.0, 1.0, 10.0}, {2, 1.0, 1.0, 10.0}};
  PlacementConfig cfg;
  cfg.nodes = 2;
  cfg.host_cache_bytes = 15.0;
  auto p = plan_placement(d, cfg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("model 2"), std::string::npos);
}

}  // namespace
}  // namespace aegaeon::policy
