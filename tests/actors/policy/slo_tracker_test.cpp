#include "actors/policy/slo_tracker.hpp"

#include <gtest/gtest.h>

namespace aegaeon::policy {
namespace {

// TTFT 1 s, TBT 0.1 s, arrival 0. Tokens at 0.5 (due 1.0, ok), 0.7 (due 1.1, ok), 1.5 (due 1.2,
// late: [0.7, 1.5] is bad and the schedule re-anchors at 1.5), 1.55 (due 1.6, ok).
// Good time = 0.5 + 0.2 + 0.05 = 0.75 of 1.55.
TEST(SloTracker, QosChargesLateIntervalOnceAndReanchors) {
  SloTracker t(Slo{1.0, 0.1}, 0.0);
  EXPECT_DOUBLE_EQ(t.next_deadline_s(), 1.0);
  t.on_token(0.5);
  EXPECT_DOUBLE_EQ(t.next_deadline_s(), 1.1);
  t.on_token(0.7);
  t.on_token(1.5);
  EXPECT_NEAR(t.next_deadline_s(), 1.6, 1e-12);
  t.on_token(1.55);
  EXPECT_NEAR(t.qos(), 0.75 / 1.55, 1e-12);
  EXPECT_DOUBLE_EQ(t.ttft_s(), 0.5);
  EXPECT_NEAR(t.tpot_s(), (1.55 - 0.5) / 3.0, 1e-12);
  EXPECT_NEAR(t.max_itl_s(), 0.8, 1e-12);
  EXPECT_FALSE(t.meets_request_slo());  // TPOT 0.35 s > 0.1 s
}

TEST(SloTracker, AllOnTimeIsFullQosAndMeetsRequestSlo) {
  SloTracker t(Slo{2.0, 0.1}, 10.0);
  for (int k = 0; k < 5; ++k) t.on_token(11.0 + 0.05 * k);
  EXPECT_DOUBLE_EQ(t.qos(), 1.0);
  EXPECT_TRUE(t.meets_request_slo());
}

TEST(SloTracker, LateFirstTokenFailsTtft) {
  SloTracker t(Slo{1.0, 0.1}, 0.0);
  t.on_token(3.0);  // due 1.0: the whole 3 s wait is bad
  t.on_token(3.1);  // due 3.1 after re-anchoring: ok
  EXPECT_NEAR(t.qos(), 0.1 / 3.1, 1e-12);
  EXPECT_FALSE(t.meets_request_slo());
}

TEST(AttainmentAccumulator, FailedRequestsCountZero) {
  AttainmentAccumulator acc;
  SloTracker good(Slo{1.0, 0.1}, 0.0);
  good.on_token(0.5);
  good.on_token(0.6);
  acc.add(good);
  acc.add_failed();
  EXPECT_EQ(acc.requests(), 2);
  EXPECT_DOUBLE_EQ(acc.mean_qos(), 0.5);
  EXPECT_DOUBLE_EQ(acc.request_attainment(), 0.5);
}

}  // namespace
}  // namespace aegaeon::policy
