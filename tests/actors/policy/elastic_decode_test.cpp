// DecodeInstance with elastic device memory: several resident models, KV that stays on the
// device while it fits, switches only on a miss, prefill on the decode device, and placement
// with admission (the default policy's decode side).
#include <gtest/gtest.h>

#include <vector>

#include "actors/policy/decode_instance.hpp"

namespace aegaeon::policy {
namespace {

// Step 0.01 s (n = 10), load 0.1 s, weights 10 bytes, KV 1 byte per token, memory 100 bytes.
std::vector<ModelCosts> costs(int models) {
  ModelCosts c{DecodeCost{0.01, 0.0, 0.0}, 0.1, 0.0, 0, 10.0, 1.0};
  return std::vector<ModelCosts>(static_cast<std::size_t>(models), c);
}

DecodeInstanceConfig elastic(double memory_bytes) {
  DecodeInstanceConfig c;
  c.memory_bytes = memory_bytes;
  c.immediate_turns = true;
  return c;
}

RequestInfo req(RequestId id, ModelId m, std::int32_t in, std::int32_t out, double at = 0.0) {
  return RequestInfo{id, m, at, in, out};
}

// Runs `d` until it asks for a step, carrying out switches and loads; returns the step.
DecodeAction until_step(DecodeInstance& d, double now) {
  for (int k = 0; k < 8; ++k) {
    DecodeAction a = d.next_action(now, std::nullopt);
    if (a.kind == DecodeAction::Kind::kSwitch) {
      d.on_switched(a.batch);
    } else if (a.kind == DecodeAction::Kind::kLoad) {
      d.on_loaded();
    } else {
      return a;
    }
  }
  return DecodeAction{};
}

TEST(ElasticDecode, ResidentModelsInterleaveWithoutSwitching) {
  auto table = costs(2);
  DecodeInstance d(elastic(1000.0), table);
  const BatchId b0 = d.add_request(req(1, 0, 9, 100), std::nullopt);
  const BatchId b1 = d.add_request(req(2, 1, 9, 100), std::nullopt);
  // First visit to each: a switch that loads the model and brings its KV in, evicting nothing.
  DecodeAction a = d.next_action(0.0, std::nullopt);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_TRUE(a.load_model);
  EXPECT_TRUE(a.evict.empty());
  EXPECT_TRUE(a.swap_out.empty());
  d.on_switched(a.batch);
  // Both fit (2 × 10 weights + 2 × 109 KV at full length ≤ 1000). The first round pays the loads
  // (quotas of 1/15 s, 7 steps a turn); from the second on it costs nothing, so a round lasts one
  // TBT SLO (0.1 s) and no batch's KV ever leaves.
  std::vector<BatchId> steps;
  for (int k = 0; k < 30; ++k) {
    a = until_step(d, 0.1 + 0.01 * k);
    ASSERT_EQ(a.kind, DecodeAction::Kind::kStep);
    steps.push_back(a.batch);
    d.on_step_done();
  }
  EXPECT_TRUE(d.holds_model(0) && d.holds_model(1));
  EXPECT_DOUBLE_EQ(d.round().switch_s, 0.0);
  // Steps are 0.01 s apart here: after the first round the batches alternate every few steps.
  int changes = 0;
  for (std::size_t k = 12; k < steps.size(); ++k) changes += steps[k] != steps[k - 1] ? 1 : 0;
  EXPECT_GE(changes, 3);
  EXPECT_LE(changes, 9);
  EXPECT_TRUE((steps.back() == b0 || steps.back() == b1));
}

// Memory 40: two models' weights (20) and their batches' KV (5 + 5, growing); once model 0's
// batch has ended, the third model (10 + 5 of KV) evicts the idle model 0, never model 1, whose
// batch still runs.
TEST(ElasticDecode, AMissEvictsAnIdleModelFirst) {
  auto table = costs(3);
  DecodeInstance d(elastic(40.0), table);
  d.add_request(req(1, 0, 4, 3), std::nullopt);  // 2 decode tokens: ends soon
  d.add_request(req(2, 1, 4, 100), std::nullopt);
  for (int k = 0; k < 10 && !(d.batches().size() == 1 && d.holds_model(1)); ++k) {
    until_step(d, 0.01 * k);
    d.on_step_done();
  }
  ASSERT_EQ(d.batches().size(), 1u);  // model 0's batch finished; model 0 stays resident, idle
  ASSERT_TRUE(d.holds_model(0));
  d.add_request(req(3, 2, 4, 100, 1.0), std::nullopt);
  DecodeAction a;
  for (int k = 0; k < 4; ++k) {
    a = d.next_action(1.0 + 0.01 * k, std::nullopt);
    if (a.kind == DecodeAction::Kind::kSwitch) break;
    d.on_step_done();
  }
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.model, 2);
  EXPECT_EQ(a.evict, (std::vector<ModelId>{0}));
  EXPECT_TRUE(a.swap_out.empty());
  d.on_switched(a.batch);
  EXPECT_FALSE(d.holds_model(0));
  EXPECT_TRUE(d.holds_model(1) && d.holds_model(2));
}

// Weight slots (the runtime's worker): weights do not take KV bytes, at most 2 models are
// resident, and a third batch's model takes the slot of a model whose batch waits, while that
// batch's KV stays on the device (the slots and the KV space are separate memory).
TEST(ElasticDecode, WeightSlotsBoundResidentModelsButNotKv) {
  auto table = costs(3);
  DecodeInstanceConfig config = elastic(1000.0);
  config.weight_slots = 2;
  DecodeInstance d(config, table);
  const BatchId b0 = d.add_request(req(1, 0, 9, 100), std::nullopt);
  d.add_request(req(2, 1, 9, 100), std::nullopt);
  d.add_request(req(3, 2, 9, 100), std::nullopt);
  EXPECT_DOUBLE_EQ(d.free_bytes(), 1000.0);  // weights live in their slots
  std::vector<ModelId> loaded;
  for (int k = 0; k < 120; ++k) {
    DecodeAction a = d.next_action(0.01 * k, std::nullopt);
    if (a.kind == DecodeAction::Kind::kSwitch) {
      EXPECT_TRUE(a.swap_out.empty());  // 3 × 110 tokens of KV fit in 1000 bytes
      if (a.load_model) loaded.push_back(a.model);
      d.on_switched(a.batch);
      EXPECT_LE(d.holds_model(0) + d.holds_model(1) + d.holds_model(2), 2);
    } else {
      ASSERT_EQ(a.kind, DecodeAction::Kind::kStep);
      d.on_step_done();
    }
  }
  EXPECT_GE(loaded.size(), 5u);  // three models cycle through two slots, round after round
  EXPECT_TRUE(d.holds_kv(b0));
  EXPECT_DOUBLE_EQ(d.free_bytes(), 1000.0 - static_cast<double>(d.batches()[0].context_tokens +
                                                                 d.batches()[1].context_tokens +
                                                                 d.batches()[2].context_tokens));
}

// A prompt queued on the decode device loads its model (kLoad), is prefilled there (kPrefill)
// and joins a batch whose KV is already on the device.
TEST(ElasticDecode, PromptsArePrefilledOnTheDeviceAndJoinItsBatch) {
  auto table = costs(1);
  DecodeInstance d(elastic(100.0), table);
  d.add_prefill(req(1, 0, 9, 5));
  DecodeAction a = d.next_action(0.0, std::nullopt);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kLoad);
  d.on_loaded();
  a = d.next_action(0.1, std::nullopt);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kPrefill);
  EXPECT_EQ(a.request, 1);
  const auto batch = d.on_prefilled(1);
  ASSERT_TRUE(batch.has_value());
  d.add_prefill(req(2, 0, 9, 5));
  EXPECT_EQ(d.next_action(0.2, std::nullopt).kind, DecodeAction::Kind::kStep);  // a step between prefills
  d.on_step_done();
  a = d.next_action(0.21, std::nullopt);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kPrefill);
  EXPECT_EQ(d.on_prefilled(2), batch);
  EXPECT_EQ(d.batch(*batch)->requests.size(), 2u);
  EXPECT_EQ(until_step(d, 0.3).kind, DecodeAction::Kind::kStep);  // no switch: its KV is here
  // A one-token request is done at prefill and joins nothing.
  d.add_prefill(req(3, 0, 9, 1));
  d.on_step_done();
  ASSERT_EQ(d.next_action(0.4, std::nullopt).kind, DecodeAction::Kind::kPrefill);
  EXPECT_FALSE(d.on_prefilled(3).has_value());
}

// A new batch runs in the round under way instead of waiting for the next one.
TEST(ElasticDecode, ANewBatchGetsATurnInTheRunningRound) {
  auto table = costs(2);
  DecodeInstanceConfig config;  // the paper's device, but with immediate turns
  config.immediate_turns = true;
  table[0].kv_capacity_tokens = table[1].kv_capacity_tokens = 1000;
  DecodeInstance d(config, table);
  const BatchId b0 = d.add_request(req(1, 0, 9, 100), std::nullopt);
  d.on_switched(d.next_action(0.0, std::nullopt).batch);
  ASSERT_EQ(d.next_action(0.1, 0).kind, DecodeAction::Kind::kStep);
  d.on_step_done();
  const BatchId b1 = d.add_request(req(2, 1, 9, 100), std::nullopt);
  // The lone batch's turn (quota 0) ends after its step; b1 is next in this round.
  DecodeAction a = d.next_action(0.11, 0);
  if (a.kind == DecodeAction::Kind::kStep) {
    EXPECT_EQ(a.batch, b0);
    d.on_step_done();
    a = d.next_action(0.12, 0);
  }
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b1);
}

// Placement admits only where α stays ≤ 1: a 0.04 s step (n = 2.5) takes 0.4 of the TBT, so a
// device holds two such batches and refuses a third model; a same-model request still joins.
TEST(ElasticDecode, PlacementRefusesWhatWouldBreakTheTbtSlo) {
  ModelCosts c{DecodeCost{0.04, 0.0, 0.0}, 0.1, 0.0, 0, 10.0, 1.0};
  const std::vector<ModelCosts> table(3, c);
  std::vector<DecodeInstance> inst(1, DecodeInstance(elastic(1000.0), table));
  ASSERT_TRUE(place_decode(inst, req(1, 0, 9, 10)).has_value());
  inst[0].add_request(req(1, 0, 9, 10), std::nullopt);
  ASSERT_TRUE(place_decode(inst, req(2, 1, 9, 10)).has_value());
  inst[0].add_request(req(2, 1, 9, 10), std::nullopt);
  EXPECT_NEAR(inst[0].what_if_alpha(2, 10, std::nullopt, 10), 1.2, 1e-9);
  EXPECT_FALSE(place_decode(inst, req(3, 2, 9, 10)).has_value());
  const auto join = place_decode(inst, req(4, 0, 9, 10));
  ASSERT_TRUE(join.has_value());
  EXPECT_TRUE(join->batch.has_value());
  // A resident model with room prefills on the decode device.
  EXPECT_EQ(resident_prefill_site(inst, req(5, 0, 9, 10)), std::nullopt);  // not loaded yet
}

// A step costs 0.01 s per request (n = 10 / B at TBT 0.1 s), so a device keeps its SLO for ten
// requests in all. Device 0 holds models 0 and 1 with ten requests (1,000 tokens still to go);
// device 1 is empty. Model 0 gets a second copy only when its own batch fills most of device 0
// (8 of the 10 requests), or when device 0 frees no room within a newcomer's patience (rounds
// bounded to 0.5 s: its first request ends in 100 s). Otherwise, with 3 requests there, the next
// one waits for device 0 rather than load model 0 again (evicting someone else's model there).
TEST(ElasticDecode, PlacementCopiesAModelOnlyWhenItsOwnLoadFillsItsDevice) {
  ModelCosts c{DecodeCost{0.0, 0.0, 0.01}, 0.1, 0.0, 0, 10.0, 1.0};
  const std::vector<ModelCosts> table(3, c);
  struct Case {
    int own;
    double max_round_s;
    bool copies;
  };
  for (const Case& k : {Case{3, 0.0, false}, Case{8, 0.0, true}, Case{3, 0.5, true}}) {
    SCOPED_TRACE(testing::Message() << k.own << " requests, rounds within " << k.max_round_s << " s");
    DecodeInstanceConfig config = elastic(1e6);
    config.round.max_round_s = k.max_round_s;
    std::vector<DecodeInstance> inst(2, DecodeInstance(config, table));
    RequestId id = 1;
    for (int r = 0; r < 10; ++r) {
      const ModelId m = r < k.own ? 0 : 1;
      inst[0].add_request(req(id++, m, 9, 1000), inst[0].joinable_batch(m, 10));
    }
    for (int step = 0; step < 200 && !(inst[0].holds_model(0) && inst[0].holds_model(1)); ++step) {
      ASSERT_EQ(until_step(inst[0], 0.01 * step).kind, DecodeAction::Kind::kStep);
      inst[0].on_step_done();
    }
    ASSERT_TRUE(inst[0].holds_model(0) && inst[0].holds_model(1));
    EXPECT_GT(inst[0].what_if_alpha(0, 10, std::nullopt, 10), 1.0);
    const auto placed = place_decode(inst, req(id, 0, 9, 10));
    if (k.copies) {
      ASSERT_TRUE(placed.has_value());
      EXPECT_EQ(placed->instance, 1);
    } else {
      EXPECT_FALSE(placed.has_value());
    }
    // A model no device holds goes where it fits.
    const auto fresh = place_decode(inst, req(id + 1, 2, 9, 10));
    ASSERT_TRUE(fresh.has_value());
    EXPECT_EQ(fresh->instance, 1);
  }
}

}  // namespace
}  // namespace aegaeon::policy
