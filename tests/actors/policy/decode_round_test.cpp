#include "actors/policy/decode_round.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace aegaeon::policy {
namespace {

// TBT 0.1 s. Batch A: d = 0.02 s -> n = 5; batch B: d = 0.05 s -> n = 2. Model loads 0.5 s each,
// no KV swap cost: c = 1.0. Σ1/n = 0.7, min n = 2: α = 1/(2·4) + 0.7 = 0.825; α − Σ1/n = 0.125.
// q_A = 1/(5·0.125) = 1.6 s, q_B = 1/(2·0.125) = 4.0 s (= Q_max for the slowest batch).
// Round = 1.6 + 4 + 1 = 6.6 s; A gets 1.6/0.02 = 80 tokens per round: mean TBT 0.0825 = α·TBT.
TEST(PlanRound, QuotasFollowThePaperFormula) {
  std::vector<BatchLoad> b{{0, 0.02, 0.5, 0.0}, {1, 0.05, 0.5, 0.0}};
  RoundPlan p = plan_round(b, DecodeRoundConfig{});
  EXPECT_NEAR(p.switch_s, 1.0, 1e-12);
  EXPECT_NEAR(p.alpha, 0.825, 1e-12);
  EXPECT_NEAR(p.quota_s[0], 1.6, 1e-9);
  EXPECT_NEAR(p.quota_s[1], 4.0, 1e-9);
  EXPECT_NEAR(p.round_s, 6.6, 1e-9);
  EXPECT_NEAR(p.round_s / (p.quota_s[0] / 0.02), 0.825 * 0.1, 1e-12);
  EXPECT_TRUE(p.tbt_feasible());
}

// Light load: d = 0.01 (n = 10) twice, c = 0.2. Σ1/n = 0.2; 0.2/(10·4) + 0.2 = 0.205 < 0.5, so
// α = 0.5 (floor); q = 0.2/(10·0.3) = 1/15 s each.
TEST(PlanRound, AlphaFloorAppliesAtLightLoad) {
  std::vector<BatchLoad> b{{0, 0.01, 0.1, 0.0}, {1, 0.01, 0.1, 0.0}};
  RoundPlan p = plan_round(b, DecodeRoundConfig{});
  EXPECT_DOUBLE_EQ(p.alpha, 0.5);
  EXPECT_NEAR(p.quota_s[0], 1.0 / 15.0, 1e-12);
  EXPECT_NEAR(p.quota_s[1], 1.0 / 15.0, 1e-12);
}

// Overload: d = 0.06 (n = 5/3) twice, c = 1: α = 1/((5/3)·4) + 1.2 = 1.35 > 1.
TEST(PlanRound, OverloadIsReportedInfeasible) {
  std::vector<BatchLoad> b{{0, 0.06, 0.5, 0.0}, {1, 0.06, 0.5, 0.0}};
  RoundPlan p = plan_round(b, DecodeRoundConfig{});
  EXPECT_NEAR(p.alpha, 1.35, 1e-12);
  EXPECT_FALSE(p.tbt_feasible());
}

// Same-model batches share one model load; KV swaps count when enabled. Models [B, A, B] with
// A resident: order A first, then B's two batches: [1, 0, 2]. c = load(A) + load(B) + 3 swaps.
TEST(PlanRound, OrdersResidentModelFirstAndCountsEachModelOnce) {
  std::vector<BatchLoad> b{{7, 0.01, 0.3, 0.01}, {4, 0.01, 0.2, 0.02}, {7, 0.01, 0.3, 0.03}};
  RoundPlan p = plan_round(b, DecodeRoundConfig{}, ModelId{4});
  ASSERT_EQ(p.order.size(), 3u);
  EXPECT_EQ(p.order[0], 1u);
  EXPECT_EQ(p.order[1], 0u);
  EXPECT_EQ(p.order[2], 2u);
  EXPECT_NEAR(p.switch_s, 0.3 + 0.2 + 0.06, 1e-12);
  DecodeRoundConfig paper;
  paper.count_kv_swap = false;
  EXPECT_NEAR(plan_round(b, paper, ModelId{4}).switch_s, 0.5, 1e-12);
}

// One batch: nothing to switch, c = 0, quota 0 (it runs one step per round, so a newcomer is
// planned at once); α = max(d/TBT, 0.5).
TEST(PlanRound, SingleBatchHasNoSwitchCost) {
  std::vector<BatchLoad> b{{0, 0.08, 0.5, 0.1}};
  RoundPlan p = plan_round(b, DecodeRoundConfig{});
  EXPECT_DOUBLE_EQ(p.switch_s, 0.0);
  EXPECT_DOUBLE_EQ(p.quota_s[0], 0.0);
  EXPECT_NEAR(p.alpha, 0.8, 1e-12);
}

}  // namespace
}  // namespace aegaeon::policy

namespace aegaeon::policy {
namespace {

// Bounding the round to R = 2 s with c = 1 s and Σ1/n = 0.7: α = 0.7 · 2/(2 − 1) = 1.4 > 1, so the
// round is overloaded; its quotas keep the paper's amortization (α = 0.825) rather than spend the
// device on switches. With R = 10 s: α = 0.7 · 10/9 = 0.778 < 0.825, the paper's α holds.
TEST(PlanRound, ABoundedRoundRaisesAlphaWhenSwitchesCannotBeAmortized) {
  std::vector<BatchLoad> b{{0, 0.02, 0.5, 0.0}, {1, 0.05, 0.5, 0.0}};
  DecodeRoundConfig config;
  config.max_round_s = 2.0;
  RoundPlan p = plan_round(b, config);
  EXPECT_NEAR(p.alpha, 1.4, 1e-12);
  EXPECT_FALSE(p.tbt_feasible());
  EXPECT_NEAR(p.quota_s[0], 1.6, 1e-9);
  config.max_round_s = 10.0;
  EXPECT_NEAR(plan_round(b, config).alpha, 0.825, 1e-12);
  // R = 8 s: α = 0.7 · 8/7 = 0.8 < 0.825 still; R = 5 s: α = 0.7 · 5/4 = 0.875, round = 5 s.
  config.max_round_s = 5.0;
  p = plan_round(b, config);
  EXPECT_NEAR(p.alpha, 0.875, 1e-12);
  EXPECT_NEAR(p.round_s, 5.0, 1e-9);
}

// Models and KV that stay on the device cost the round nothing.
TEST(PlanRound, WhatStaysResidentIsNotCharged) {
  BatchLoad a{0, 0.02, 0.5, 0.2};
  BatchLoad b{1, 0.05, 0.5, 0.2};
  b.model_stays = true;
  b.kv_stays = true;
  RoundPlan p = plan_round(std::vector<BatchLoad>{a, b}, DecodeRoundConfig{});
  EXPECT_NEAR(p.switch_s, 0.7, 1e-12);  // a's load and KV only
  a.model_stays = a.kv_stays = true;
  p = plan_round(std::vector<BatchLoad>{a, b}, DecodeRoundConfig{});
  EXPECT_DOUBLE_EQ(p.switch_s, 0.0);
  // Nothing to amortize: the round lasts one TBT SLO (0.1 s), each batch taking the same number
  // of steps a turn, 1/Σ(1/n) = 1/(0.02/0.1 + 0.05/0.1).
  EXPECT_NEAR(p.round_s, 0.1, 1e-12);
  EXPECT_NEAR(p.quota_s[0] / 0.02, 1.0 / 0.7, 1e-9);
  EXPECT_NEAR(p.quota_s[1] / 0.05, 1.0 / 0.7, 1e-9);
}

}  // namespace
}  // namespace aegaeon::policy
