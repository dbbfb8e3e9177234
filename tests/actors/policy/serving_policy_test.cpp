#include "actors/policy/serving_policy.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "core/config.hpp"

namespace aegaeon::policy {
namespace {

RequestInfo req(RequestId id, ModelId m, std::int32_t out = 10) { return RequestInfo{id, m, 0.0, 9, out}; }

// Two models, 10 ms steps, 0.1 s loads: under aegaeon a turn would last 1/15 s.
std::vector<ModelCosts> costs() {
  ModelCosts c{DecodeCost{0.01, 0.0, 0.0}, 0.1, 0.0, 1000};
  return {c, c};
}

TEST(ServingPolicy, NamesRoundTripAndMatchTheConfigKey) {
  for (auto name : kServingPolicyNames) {
    auto parsed = parse_serving_policy(name);
    ASSERT_TRUE(parsed.ok()) << name;
    EXPECT_EQ(to_string(*parsed), name);
    core::Config config;  // serve.policy accepts exactly the names the policy layer parses
    EXPECT_TRUE(core::apply_override(config, "serve.policy=" + std::string(name)).ok()) << name;
    EXPECT_EQ(config.serve.policy, name);
  }
  core::Config config;
  EXPECT_EQ(config.serve.policy, "aegaeon");
  auto bad = core::apply_override(config, "serve.policy=fifo");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("serve.policy"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("aegaeon|request-level|static"), std::string::npos) << bad.error().message;
  auto unknown = parse_serving_policy("fifo");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("aegaeon|request-level|static"), std::string::npos);
}

// Request-level prefill: the instance keeps its model while requests of it keep coming, loads
// the next model only when none is queued, and never prefetches. Aegaeon's groups close at 8.
TEST(ServingPolicy, RequestLevelPrefillSwitchesOnlyWhenItsModelDrained) {
  PrefillScheduler s(1, prefill_config(ServingPolicy::kRequestLevel));
  s.on_arrival(req(1, 0));
  s.on_arrival(req(2, 1));
  for (RequestId id = 3; id <= 12; ++id) s.on_arrival(req(id, 0));
  std::vector<RequestId> order;
  for (;;) {
    auto a = s.next_action(0, 0);
    EXPECT_FALSE(a.prefetch_model.has_value());
    if (a.kind != PrefillAction::Kind::kRun) {
      EXPECT_EQ(a.kind, PrefillAction::Kind::kSwitch);
      EXPECT_EQ(a.model, 1);
      break;
    }
    order.push_back(a.request);
    s.on_prefill_done(0, a.request);
  }
  EXPECT_EQ(order.size(), 11u);  // every model-0 request, including those that came after r2

  PrefillScheduler aegaeon(1, prefill_config(ServingPolicy::kAegaeon));
  aegaeon.on_arrival(req(1, 0));
  aegaeon.on_arrival(req(2, 1));
  for (RequestId id = 3; id <= 12; ++id) aegaeon.on_arrival(req(id, 0));
  auto a = aegaeon.next_action(0, 0);
  ASSERT_TRUE(a.prefetch_model.has_value());
  EXPECT_EQ(*a.prefetch_model, 1);
  for (int k = 0; k < 8; ++k) aegaeon.on_prefill_done(0, aegaeon.next_action(0, 0).request);
  EXPECT_EQ(aegaeon.next_action(0, 0).kind, PrefillAction::Kind::kSwitch);  // r2's group is next
}

// Request-level decode: the batch on the device is never preempted, however long it runs;
// newcomers of its model join it; then a batch of the resident model goes before an older one.
TEST(ServingPolicy, RequestLevelDecodeRunsBatchesToCompletion) {
  auto table = costs();
  DecodeInstanceConfig base;
  base.max_batch_size = 2;
  DecodeInstance d(decode_config(ServingPolicy::kRequestLevel, base), table);
  const BatchId b1 = d.add_request(req(1, 0, 4), std::nullopt);  // 3 decode steps
  const BatchId b2 = d.add_request(req(2, 1, 4), std::nullopt);
  auto a = d.next_action(0.0, std::nullopt);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b1);
  EXPECT_FALSE(a.prefetch_model.has_value());
  d.on_switched(b1);
  ASSERT_EQ(d.next_action(0.1, 0).kind, DecodeAction::Kind::kStep);
  d.on_step_done();
  // A newcomer of model 0 joins the running batch; a third one finds it full: new batch b3.
  EXPECT_EQ(d.add_request(req(3, 0, 4), d.joinable_batch(0, 10)), b1);
  const BatchId b3 = d.add_request(req(4, 0, 2), d.joinable_batch(0, 10));
  EXPECT_NE(b3, b1);
  int steps = 0;
  for (double now = 50.0;; now += 10.0) {  // far past any quota aegaeon would give
    a = d.next_action(now, 0);
    if (a.kind != DecodeAction::Kind::kStep) break;
    EXPECT_EQ(a.batch, b1);
    d.on_step_done();
    ++steps;
  }
  EXPECT_EQ(steps, 3);  // r1's last 2 steps overlap r3's 3
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b3);  // resident model first, although b2 is older
  EXPECT_FALSE(a.load_model);
  EXPECT_TRUE(a.swap_out.empty());
  d.on_switched(b3);
  d.on_step_done();  // r4 is done after one step
  a = d.next_action(100.0, 0);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b2);
  EXPECT_TRUE(a.load_model);
}

TEST(ServingPolicy, AegaeonDecodePreemptsTheSameWorkload) {
  auto table = costs();
  DecodeInstance d(decode_config(ServingPolicy::kAegaeon, DecodeInstanceConfig{}), table);
  const BatchId b1 = d.add_request(req(1, 0, 100), std::nullopt);
  const BatchId b2 = d.add_request(req(2, 1, 100), std::nullopt);
  d.next_action(0.0, std::nullopt);
  d.on_switched(b1);
  ASSERT_EQ(d.next_action(0.1, 0).kind, DecodeAction::Kind::kStep);
  d.on_step_done();
  auto a = d.next_action(50.0, 0);
  ASSERT_EQ(a.kind, DecodeAction::Kind::kSwitch);
  EXPECT_EQ(a.batch, b2);
  ASSERT_EQ(a.swap_out.size(), 1u);
  EXPECT_EQ(a.swap_out[0], b1);
}

// Static: model m runs only on instance m of either role, even when another instance is idle.
TEST(ServingPolicy, StaticPinsEachModelToItsInstance) {
  PrefillScheduler s(3, prefill_config(ServingPolicy::kStatic));
  const auto pins = initial_pins(ServingPolicy::kStatic, 3, 3);
  for (RequestId id = 1; id <= 4; ++id) {
    auto d = s.on_arrival(req(id, 1), pins);
    EXPECT_EQ(d.instance, 1);
  }
  EXPECT_EQ(s.on_arrival(req(5, 2), pins).instance, 2);
  EXPECT_EQ(s.queued(0), 0);
  EXPECT_EQ(s.preview(0, pins).instance, 0);
  EXPECT_TRUE(initial_pins(ServingPolicy::kAegaeon, 3, 3).pins().empty());
  EXPECT_TRUE(initial_pins(ServingPolicy::kRequestLevel, 3, 3).pins().empty());

  std::vector<ModelCosts> table(3, costs()[0]);
  auto config = decode_config(ServingPolicy::kStatic, DecodeInstanceConfig{});
  std::vector<DecodeInstance> instances(3, DecodeInstance(config, table));
  instances[2].add_request(req(6, 2), std::nullopt);  // instance 2 busy, 0 and 1 idle
  auto d = dispatch_decode(instances, 2, 10, pins);
  EXPECT_EQ(d.instance, 2);
  EXPECT_TRUE(d.batch.has_value());
  d = dispatch_decode(instances, 0, 10, pins);
  EXPECT_EQ(d.instance, 0);
  EXPECT_FALSE(d.batch.has_value());
}

TEST(ServingPolicy, StaticNeedsADeviceOfEachRolePerModel) {
  EXPECT_TRUE(check_devices(ServingPolicy::kStatic, 3, 3, 4).ok());
  EXPECT_TRUE(check_devices(ServingPolicy::kAegaeon, 3, 1, 1).ok());
  EXPECT_TRUE(check_devices(ServingPolicy::kRequestLevel, 3, 1, 1).ok());
  auto bad = check_devices(ServingPolicy::kStatic, 3, 3, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, core::ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message,
            "serve.policy=static pins each model to a prefill and a decode device of its own: 3 models need "
            "serve.prefill_devices and serve.decode_devices >= 3 (have 3 and 1); add devices or choose "
            "another serve.policy");
}

// The runtime's aegaeon devices get the simulator's elastic knobs: a KV budget below the KV
// region (block rounding, fragmentation), weights in their slots, immediate turns, rounds of at
// most half the TTFT SLO; the baselines load one model at a time.
TEST(ServingPolicy, ElasticKnobsForTheRuntime) {
  DecodeInstanceConfig base;
  base.round.tbt_slo_s = 0.05;
  const auto c = elastic_decode_config(base, 1000.0, 4, 8.0);
  EXPECT_GT(c.memory_bytes, 0.0);
  EXPECT_LT(c.memory_bytes, 1000.0);
  EXPECT_EQ(c.weight_slots, 4);
  EXPECT_TRUE(c.immediate_turns);
  EXPECT_DOUBLE_EQ(c.round.max_round_s, 4.0);
  EXPECT_DOUBLE_EQ(c.round.tbt_slo_s, 0.05);
  EXPECT_TRUE(c.preemptive);
  EXPECT_EQ(default_weight_slots(ServingPolicy::kAegaeon), 0);
  EXPECT_EQ(default_weight_slots(ServingPolicy::kRequestLevel), 1);
  EXPECT_EQ(default_weight_slots(ServingPolicy::kStatic), 1);
}

}  // namespace
}  // namespace aegaeon::policy
