#include "actors/policy/prefill_scheduler.hpp"

#include <gtest/gtest.h>

namespace aegaeon::policy {
namespace {

RequestInfo req(RequestId id, ModelId m) { return RequestInfo{id, m, 0.0, 100, 10}; }

// Two instances, groups of at most 2:
//   r1 m0 -> opens on inst0 (tie: lowest index)      inst0 [m0: r1]
//   r2 m1 -> opens on inst1 (fewest queued)          inst1 [m1: r2]
//   r3 m0 -> joins inst0's m0 group (now full)       inst0 [m0: r1 r3]
//   r4 m0 -> group full: opens on inst1 (1 < 2)      inst1 [m1: r2] [m0: r4]
//   r5 m1 -> joins inst1's m1 group                  inst1 [m1: r2 r5] [m0: r4]
TEST(PrefillScheduler, GroupsJoinUpToMaxThenOpenOnLeastLoaded) {
  PrefillScheduler s(2, PrefillConfig{2});
  EXPECT_EQ(s.on_arrival(req(1, 0)).instance, 0);
  EXPECT_EQ(s.on_arrival(req(2, 1)).instance, 1);
  auto d3 = s.on_arrival(req(3, 0));
  EXPECT_EQ(d3.instance, 0);
  EXPECT_FALSE(d3.opened_group);
  auto d4 = s.on_arrival(req(4, 0));
  EXPECT_EQ(d4.instance, 1);
  EXPECT_TRUE(d4.opened_group);
  EXPECT_EQ(s.on_arrival(req(5, 1)).instance, 1);
  EXPECT_EQ(s.queued(0), 2);
  EXPECT_EQ(s.queued(1), 3);
  const auto pending = s.pending(1);
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[0].id, 2);
  EXPECT_EQ(pending[1].id, 5);
  EXPECT_EQ(pending[2].id, 4);
}

TEST(PrefillScheduler, RunsGroupsFifoSwitchingOnlyBetweenGroupsAndPrefetchesNext) {
  PrefillScheduler s(2, PrefillConfig{2});
  for (auto [id, m] : {std::pair{1, 0}, {2, 1}, {3, 0}, {4, 0}, {5, 1}}) s.on_arrival(req(id, m));
  auto a = s.next_action(1, std::nullopt);
  EXPECT_EQ(a.kind, PrefillAction::Kind::kSwitch);
  EXPECT_EQ(a.model, 1);
  ASSERT_TRUE(a.prefetch_model.has_value());
  EXPECT_EQ(*a.prefetch_model, 0);
  a = s.next_action(1, 1);
  EXPECT_EQ(a.kind, PrefillAction::Kind::kRun);
  EXPECT_EQ(a.request, 2);
  s.on_prefill_done(1, 2);
  a = s.next_action(1, 1);
  EXPECT_EQ(a.kind, PrefillAction::Kind::kRun);  // same group: no switch
  EXPECT_EQ(a.request, 5);
  s.on_prefill_done(1, 5);
  a = s.next_action(1, 1);
  EXPECT_EQ(a.kind, PrefillAction::Kind::kSwitch);
  EXPECT_EQ(a.model, 0);
  EXPECT_FALSE(a.prefetch_model.has_value());
  s.on_prefill_done(1, 4);
  EXPECT_EQ(s.next_action(1, 0).kind, PrefillAction::Kind::kIdle);
}

TEST(PrefillScheduler, JoinsRunningGroupUntilItIsFull) {
  PrefillScheduler s(1);  // default max group 8
  for (RequestId id = 1; id <= 9; ++id) s.on_arrival(req(id, 3));
  // 8 in the first group, the 9th opens a second group of the same model: no switch between.
  EXPECT_EQ(s.queued(0), 9);
  EXPECT_EQ(s.preview(3).opened_group, false);  // the second group still has room
  for (RequestId id = 1; id <= 9; ++id) {
    auto a = s.next_action(0, 3);
    ASSERT_EQ(a.kind, PrefillAction::Kind::kRun);
    EXPECT_EQ(a.request, id);
    s.on_prefill_done(0, id);
  }
}

}  // namespace
}  // namespace aegaeon::policy
