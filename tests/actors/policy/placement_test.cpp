#include "actors/policy/placement.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
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

// ---- host caches of a cluster's workers --------------------------------------------------------

CacheNode cache_node(std::uint64_t id, std::uint64_t bytes, std::set<std::string> on_disk,
                     std::set<std::string> held = {}) {
  return CacheNode{id, bytes, std::move(on_disk), std::move(held)};
}

using Models = std::set<std::string>;

TEST(HostCachePlacement, AWorkerWithoutALimitHoldsEveryModelItHasOnDisk) {
  std::vector<CacheNode> nodes{cache_node(1, 0, {"a", "b"}), cache_node(2, 0, {"b", "c"})};
  std::vector<CacheModel> models{{"a", 10, 5.0}, {"b", 10, 0.0}, {"c", 10, 0.0}};
  auto out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"a", "b"}));
  EXPECT_EQ(out[2], (Models{"b", "c"}));
}

// Room for one model each: the busy model stays where it is, and the other busy model takes the
// second cache before any model gets a second copy, although "a" has 8 times its demand.
TEST(HostCachePlacement, EveryBusyModelGetsACacheBeforeAnyGetsTwo) {
  std::vector<CacheNode> nodes{cache_node(1, 10, {"a", "b"}, {"a"}), cache_node(2, 10, {"a", "b"}, {"a"})};
  std::vector<CacheModel> models{{"a", 10, 8.0}, {"b", 10, 1.0}};
  auto out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"a"}));
  EXPECT_EQ(out[2], (Models{"b"}));
}

// Three workers with room for two models each: "a" has 90% of the demand, so ceil(0.9 · 3) = 3
// copies (27 requests would fill 4); "b" one; the idle "c" takes the room left, on the least
// loaded worker (a tie: the lower id).
TEST(HostCachePlacement, HeavyModelsGetCopiesInProportionToTheirDemand) {
  const Models all{"a", "b", "c"};
  std::vector<CacheNode> nodes{cache_node(1, 20, all), cache_node(2, 20, all), cache_node(3, 20, all)};
  std::vector<CacheModel> models{{"a", 10, 27.0}, {"b", 10, 3.0}, {"c", 10, 0.0}};
  auto out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"a", "c"}));
  EXPECT_EQ(out[2], (Models{"a", "b"}));
  EXPECT_EQ(out[3], (Models{"a"}));
  // A few requests do not justify a second copy, however large their share.
  models[0].demand = 2.0;
  models[1].demand = 0.0;
  out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"a"}));
  EXPECT_EQ(out[2], (Models{"b"}));  // idle models spread over the emptiest caches
  EXPECT_EQ(out[3], (Models{"c"}));
}

TEST(HostCachePlacement, IdleCachesStayAsTheyAre) {
  const Models all{"a", "b", "c"};
  std::vector<CacheNode> nodes{cache_node(1, 10, all, {"c"}), cache_node(2, 10, all, {"b"})};
  std::vector<CacheModel> models{{"a", 10, 0.0}, {"b", 10, 0.0}, {"c", 10, 0.0}};
  auto out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"c"}));
  EXPECT_EQ(out[2], (Models{"b"}));
  // Work for "a": it takes the cache of an idle model (the lower id on a tie), the other stays.
  models[0].demand = 1.0;
  out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"a"}));
  EXPECT_EQ(out[2], (Models{"b"}));
}

TEST(HostCachePlacement, ModelsGoOnlyWhereTheyAreOnDiskAndFit) {
  std::vector<CacheNode> nodes{cache_node(1, 15, {"small", "big"}), cache_node(2, 100, {"other"})};
  std::vector<CacheModel> models{{"big", 20, 5.0}, {"small", 10, 1.0}, {"other", 30, 0.0}};
  auto out = assign_host_caches(nodes, models);
  EXPECT_EQ(out[1], (Models{"small"}));  // "big" fits nowhere: left out
  EXPECT_EQ(out[2], (Models{"other"}));
}

TEST(HostCachePlacement, CachedModelsThatNoLongerFitMakeRoom) {
  // Node 1 holds "a" and "b" but now has room for one; "b" has the work.
  std::vector<CacheNode> nodes{cache_node(1, 10, {"a", "b"}, {"a", "b"})};
  std::vector<CacheModel> models{{"a", 10, 0.0}, {"b", 10, 2.0}};
  EXPECT_EQ(assign_host_caches(nodes, models)[1], (Models{"b"}));
}

// 100 bytes of memory: a prefill device pays once the models in demand and their KV exceed it, and
// stays until they fall 5% below (no flapping at the boundary).
TEST(Placement, OnlineSplitPrefillsOnlyWhileDemandOutgrowsMemory) {
  EXPECT_FALSE(wants_prefill_device({80.0, 15.0, 100.0}, false));
  EXPECT_TRUE(wants_prefill_device({90.0, 15.0, 100.0}, false));
  EXPECT_TRUE(wants_prefill_device({85.0, 12.0, 100.0}, true));   // 97%: within the hysteresis
  EXPECT_FALSE(wants_prefill_device({85.0, 12.0, 100.0}, false));
  EXPECT_FALSE(wants_prefill_device({80.0, 10.0, 100.0}, true));  // 90%: decodes again
}

}  // namespace
}  // namespace aegaeon::policy
