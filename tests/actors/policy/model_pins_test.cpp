#include "actors/policy/model_pins.hpp"

#include <gtest/gtest.h>

#include "actors/policy/decode_instance.hpp"
#include "actors/policy/prefill_scheduler.hpp"

namespace aegaeon::policy {
namespace {

RequestInfo req(RequestId id, ModelId model) { return RequestInfo{id, model, 0.0, 100, 10}; }

TEST(ModelPins, APinnedModelGetsAnInstanceOfItsOwnAndTheOthersKeepTheRest) {
  ModelPins pins(3);
  auto pinned = pins.pin(/*model=*/2);
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(*pinned, 0);
  EXPECT_TRUE(pins.allows(2, 0));
  EXPECT_FALSE(pins.allows(2, 1));
  EXPECT_FALSE(pins.allows(0, 0));  // no other model's new requests on a pinned instance
  EXPECT_TRUE(pins.allows(0, 1));
  EXPECT_TRUE(pins.allows(0, 2));
  // Pinning again is a no-op; a second model takes the next free instance.
  EXPECT_EQ(*pins.pin(2), 0);
  EXPECT_EQ(*pins.pin(1), 1);
  EXPECT_EQ(pins.instance_of(1), 1);
  EXPECT_EQ(pins.pins().size(), 2U);
}

TEST(ModelPins, OneInstanceAlwaysStaysForTheModelsThatAreNotPinned) {
  ModelPins pins(2);
  ASSERT_TRUE(pins.pin(0).ok());
  auto refused = pins.pin(1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, core::ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("2 instance(s)"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(ModelPins(1).pin(0).ok());  // one device: nothing to give away

  EXPECT_TRUE(pins.unpin(0));
  EXPECT_FALSE(pins.unpin(0));
  EXPECT_TRUE(pins.allows(1, 0));
  EXPECT_TRUE(pins.pin(1).ok());
}

TEST(ModelPins, APinPrefersTheInstanceThatHoldsTheModelAlready) {
  ModelPins pins(3);
  std::vector<std::optional<ModelId>> resident = {0, std::nullopt, 4};
  EXPECT_EQ(*pins.pin(4, resident), 2);  // no switch: its weights are there
  EXPECT_EQ(*pins.pin(5, resident), 0);  // resident nowhere: the first free instance
}

TEST(ModelPins, DispatchFollowsThePins) {
  ModelPins pins(3);
  ASSERT_EQ(*pins.pin(7), 0);

  PrefillScheduler prefill(3);
  // Instance 0 is idle, yet model 1 goes to 1 or 2 and model 7 only to 0, even behind a queue.
  EXPECT_EQ(prefill.on_arrival(req(1, 1), pins).instance, 1);
  EXPECT_EQ(prefill.on_arrival(req(2, 3), pins).instance, 2);
  EXPECT_EQ(prefill.preview(5, pins).instance, 1);
  for (RequestId id = 3; id <= 20; ++id) EXPECT_EQ(prefill.on_arrival(req(id, 7), pins).instance, 0);
  EXPECT_EQ(prefill.queued(0), 18);

  std::vector<ModelCosts> costs(8);
  for (auto& c : costs) c.kv_capacity_tokens = 1000;
  std::vector<DecodeInstance> decode(3, DecodeInstance(DecodeInstanceConfig{}, costs));
  decode[1].add_request(req(30, 1), std::nullopt);
  decode[2].add_request(req(31, 3), std::nullopt);
  // Model 1 joins its batch on 1; model 3 its batch on 2; model 5 opens a batch on 1 or 2
  // (fewest batches among those it may use, lowest index), never on the empty instance 0.
  EXPECT_EQ(dispatch_decode(decode, 1, 10, pins).instance, 1);
  EXPECT_EQ(dispatch_decode(decode, 3, 10, pins).instance, 2);
  auto other = dispatch_decode(decode, 5, 10, pins);
  EXPECT_EQ(other.instance, 1);
  EXPECT_FALSE(other.batch.has_value());
  // Model 7 opens its batch on its own instance.
  EXPECT_EQ(dispatch_decode(decode, 7, 10, pins).instance, 0);
  // Without pins the empty instance is the choice for a new batch.
  EXPECT_EQ(dispatch_decode(decode, 5, 10).instance, 0);
}

}  // namespace
}  // namespace aegaeon::policy
