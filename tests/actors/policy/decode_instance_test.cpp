#include "actors/policy/decode_instance.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace aegaeon::policy {
namespace {

// Two models; step 0.01 s (n = 10), model load 0.1 s each, KV swaps free: with two batches
// c = 0.2, α = 0.5 (floor), q = 0.2/(10·(0.5 − 0.2)) = 1/15 s per batch.
std::vector<ModelCosts> costs(std::int64_t capacity = 1000) {
  ModelCosts c{DecodeCost{0.01, 0.0, 0.0}, 0.1, 0.0, capacity};
  return {c, c};
}

RequestInfo req(RequestId id, ModelId m, std::int32_t in, std::int32_t out) {
  return RequestInfo{id, m, 0.0, in, out};
}

TEST(DecodeInstance, TurnsLastTheirQuotaThenSwapOutAndSwitch) {
  auto table = costs();
  DecodeInstance d(DecodeInstanceConfig{}, table);
  const BatchId b1 = d.add_request(req(1, 0, 9, 100), std::nullopt);
  const BatchId b2 = d.add_request(req(2, 1, 9, 100), std::nullopt);
  auto a = d.next_action(0.0, std::nullopt);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b1);
  EXPECT_TRUE(a.load_model);
  EXPECT_TRUE(a.swap_out.empty());
  ASSERT_TRUE(a.prefetch_model.has_value());
  EXPECT_EQ(*a.prefetch_model, 1);
  EXPECT_NEAR(d.round().quota_s[0], 1.0 / 15.0, 1e-12);
  d.on_switched(b1);
  // Turn starts at 0.1; steps start at 0.10 .. 0.16 (elapsed 0.06 < 1/15), at 0.17 it is over.
  int steps = 0;
  for (int k = 0;; ++k) {
    a = d.next_action(0.1 + 0.01 * k, 0);
    if (a.kind != DecodeAction::Kind::kStep) break;
    EXPECT_EQ(a.batch, b1);
    d.on_step_done();
    ++steps;
  }
  EXPECT_EQ(steps, 7);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b2);
  EXPECT_TRUE(a.load_model);
  ASSERT_EQ(a.swap_out.size(), 1u);
  EXPECT_EQ(a.swap_out[0], b1);
  EXPECT_EQ(a.swap_out_tokens, 10 + 7);  // prompt 9 + first token + 7 steps
  EXPECT_EQ(a.swap_in_tokens, 10);
}

TEST(DecodeInstance, FinishedBatchLeavesWithoutSwapOut) {
  auto table = costs();
  DecodeInstance d(DecodeInstanceConfig{}, table);
  const BatchId b1 = d.add_request(req(1, 0, 9, 3), std::nullopt);  // 2 decode tokens left
  const BatchId b2 = d.add_request(req(2, 1, 9, 100), std::nullopt);
  d.next_action(0.0, std::nullopt);
  d.on_switched(b1);
  ASSERT_EQ(d.next_action(0.1, 0).kind, DecodeAction::Kind::kStep);
  EXPECT_TRUE(d.on_step_done().finished.empty());
  ASSERT_EQ(d.next_action(0.11, 0).kind, DecodeAction::Kind::kStep);
  auto out = d.on_step_done();
  ASSERT_EQ(out.finished.size(), 1u);
  EXPECT_EQ(out.finished[0], 1);
  auto a = d.next_action(0.12, 0);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b2);
  EXPECT_TRUE(a.swap_out.empty());  // b1's KV was freed
}

TEST(DecodeInstance, LoneBatchKeepsRunningAndNewcomerIsPlannedNextRound) {
  auto table = costs();
  DecodeInstance d(DecodeInstanceConfig{}, table);
  const BatchId b1 = d.add_request(req(1, 0, 9, 100), std::nullopt);
  d.next_action(0.0, std::nullopt);
  d.on_switched(b1);
  for (int k = 0; k < 50; ++k) {
    ASSERT_EQ(d.next_action(0.1 + 0.01 * k, 0).kind, DecodeAction::Kind::kStep);
    d.on_step_done();
  }
  const BatchId b2 = d.add_request(req(2, 1, 9, 100), std::nullopt);
  // The lone batch's quota is 0, so its turn ends after the running step: b1 starts the new round
  // (it is on the device), runs its 1/15 s quota, then b2 gets the device.
  auto a = d.next_action(0.6, 0);
  EXPECT_EQ(a.kind, DecodeAction::Kind::kStep);
  EXPECT_EQ(a.batch, b1);
  EXPECT_EQ(d.round().quota_s.size(), 2u);
  d.on_step_done();
  a = d.next_action(0.7, 0);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b2);
}

TEST(DecodeInstance, TruncatesBatchWhenKvOutgrowsDevice) {
  auto table = costs(30);
  DecodeInstance d(DecodeInstanceConfig{}, table);
  const BatchId b1 = d.add_request(req(1, 0, 9, 100), std::nullopt);
  ASSERT_EQ(d.joinable_batch(0, 10), b1);  // 10 + 10 <= 30
  d.add_request(req(2, 0, 9, 100), b1);
  EXPECT_FALSE(d.joinable_batch(0, 11).has_value());  // 20 + 11 > 30
  d.next_action(0.0, std::nullopt);
  d.on_switched(b1);
  // Each step adds 2 tokens: 22, 24, 26, 28, 30 fit; the 6th step makes 32 > 30.
  for (int k = 0; k < 5; ++k) {
    d.next_action(0.1 + 0.01 * k, 0);
    EXPECT_FALSE(d.on_step_done().split_batch.has_value());
  }
  d.next_action(0.15, 0);
  auto out = d.on_step_done();
  ASSERT_TRUE(out.split_batch.has_value());
  EXPECT_EQ(out.split_tokens, 16);  // request 2 moved out with its 16 tokens
  EXPECT_EQ(d.batch(b1)->requests.size(), 1u);
  EXPECT_EQ(d.batch(*out.split_batch)->requests[0].info.id, 2);
}

TEST(DispatchDecode, JoinsFittingBatchElseFewestBatches) {
  auto table = costs(100);
  std::vector<DecodeInstance> inst(2, DecodeInstance(DecodeInstanceConfig{}, table));
  inst[0].add_request(req(1, 0, 49, 10), std::nullopt);  // 50 tokens of model 0 on inst0
  auto d = dispatch_decode(inst, 0, 40);
  EXPECT_EQ(d.instance, 0);
  EXPECT_TRUE(d.batch.has_value());
  d = dispatch_decode(inst, 0, 60);  // 50 + 60 > 100: new batch on the emptier instance
  EXPECT_EQ(d.instance, 1);
  EXPECT_FALSE(d.batch.has_value());
  d = dispatch_decode(inst, 1, 10);
  EXPECT_EQ(d.instance, 1);
  EXPECT_FALSE(d.batch.has_value());
}

TEST(DecodeInstance, WhatIfAlphaGrowsWithAnotherModel) {
  std::vector<ModelCosts> table(2, ModelCosts{DecodeCost{0.04, 0.0, 0.0}, 1.0, 0.0, 1000});
  DecodeInstance d(DecodeInstanceConfig{}, table);
  d.add_request(req(1, 0, 9, 100), std::nullopt);
  // Joining model 0: one batch, α = max(0.4, 0.5) = 0.5. Model 1: two batches, n = 2.5 each,
  // c = 2: α = 2/(2.5·4) + 0.8 = 1.0.
  EXPECT_NEAR(d.what_if_alpha(0, 10, 0), 0.5, 1e-12);
  EXPECT_NEAR(d.what_if_alpha(1, 10, 0), 1.0, 1e-12);
}

}  // namespace
}  // namespace aegaeon::policy
