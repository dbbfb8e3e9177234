// Sampling rules on hand-made logits.
#include "gpu/model/sampler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

namespace aegaeon::model {
namespace {

using core::SamplingParams;

const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f};

TEST(SamplerTest, GreedyPicksArgmax) {
  Sampler sampler(SamplingParams::greedy());
  EXPECT_EQ(sampler.sample(kLogits, {}), 1);
}

TEST(SamplerTest, PenaltiesDemoteGeneratedTokens) {
  SamplingParams p = SamplingParams::greedy();
  p.presence_penalty = 0.6f;  // 3.0 - 0.6 = 2.4 < 2.5
  Sampler presence(p);
  const std::vector<std::int32_t> seen = {1};
  EXPECT_EQ(presence.sample(kLogits, seen), 2);
  SamplingParams q = SamplingParams::greedy();
  q.frequency_penalty = 0.3f;  // two occurrences: 3.0 - 0.6 < 2.5
  Sampler frequency(q);
  EXPECT_EQ(frequency.sample(kLogits, std::vector<std::int32_t>{1}), 1);
  EXPECT_EQ(frequency.sample(kLogits, std::vector<std::int32_t>{1, 1}), 2);
  SamplingParams r = SamplingParams::greedy();
  r.repetition_penalty = 1.5f;  // 3.0 / 1.5 = 2.0 < 2.5
  Sampler repetition(r);
  EXPECT_EQ(repetition.sample(kLogits, seen), 2);
}

// vLLM's repetition penalty: once per token seen in the prompt or the output.
TEST(SamplerTest, RepetitionPenaltyCountsThePromptOnce) {
  SamplingParams r = SamplingParams::greedy();
  r.repetition_penalty = 1.5f;  // 3.0 / 1.5 = 2.0 < 2.5
  const std::vector<std::int32_t> prompt = {1, 1, 4};
  EXPECT_EQ(Sampler(r, {}, prompt).sample(kLogits, {}), 2);
  EXPECT_EQ(Sampler(r).sample(kLogits, {}), 1) << "no prompt given, nothing seen";
  r.repetition_penalty = 1.1f;  // once: 3.0 / 1.1 = 2.73 > 2.5; twice it would be 2.48
  EXPECT_EQ(Sampler(r, {}, prompt).sample(kLogits, std::vector<std::int32_t>{1, 1}), 1);
}

TEST(SamplerTest, LogitBiasShiftsTokensBeforeSampling) {
  SamplingParams p = SamplingParams::greedy();
  p.logit_bias = {{2, 1.0f}};  // 2.5 + 1 > 3.0
  EXPECT_EQ(Sampler(p).sample(kLogits, {}), 2);
  p.logit_bias = {{1, -100.0f}, {2, -100.0f}, {99, 5.0f}};  // out of the vocabulary: ignored
  EXPECT_EQ(Sampler(p).sample(kLogits, {}), 0);
  p.temperature = 1.0f;
  p.seed = 5;
  p.logit_bias = {{3, 100.0f}};
  Sampler forced(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(forced.sample(kLogits, {}), 3);
}

TEST(SamplerTest, StopTokensAreNeverDrawnBeforeTheSequenceMayStop) {
  EXPECT_EQ(Sampler(SamplingParams::greedy()).sample(kLogits, {}, std::vector<std::int32_t>{1}, false), 2);
  EXPECT_EQ(Sampler(SamplingParams::greedy()).sample(kLogits, {}, std::vector<std::int32_t>{1}, true), 1);
  SamplingParams p;
  p.seed = 11;
  Sampler sampler(p);
  const std::vector<std::int32_t> banned = {1, 2};
  for (int i = 0; i < 200; ++i) {
    const auto t = sampler.sample(kLogits, {}, banned, false);
    EXPECT_TRUE(t != 1 && t != 2) << t;
  }
}

TEST(SamplerTest, SameSeedSameTokensAndTopKTopPRestrict) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 77;
  Sampler a(p);
  Sampler b(p);
  std::vector<std::int32_t> xs, ys;
  for (int i = 0; i < 50; ++i) {
    xs.push_back(a.sample(kLogits, {}));
    ys.push_back(b.sample(kLogits, {}));
  }
  EXPECT_EQ(xs, ys);
  p.top_k = 2;
  Sampler top_k(p);
  for (int i = 0; i < 200; ++i) {
    const auto t = top_k.sample(kLogits, {});
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
  p.top_k = 0;
  p.top_p = 0.5f;  // token 1 alone holds 0.553 of the mass at T=1
  Sampler top_p(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(top_p.sample(kLogits, {}), 1);
  p.top_p = 0.8f;  // 1 and 2 hold 0.888
  Sampler top_p2(p);
  std::map<std::int32_t, int> seen;
  for (int i = 0; i < 200; ++i) ++seen[top_p2.sample(kLogits, {})];
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[2], 0);
  p.top_p = 1.0f;
  p.min_p = 0.7f;  // p(2)/p(1) = e^-0.5 ≈ 0.61 < 0.7: only token 1 survives
  Sampler min_p(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(min_p.sample(kLogits, {}), 1);
}

// A request resumed elsewhere continues its seeded stream: a sampler told how many tokens were
// generated before draws exactly what the original would have drawn next.
TEST(SamplerTest, AResumedSamplerContinuesTheSeededStream) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 2024;
  Sampler original(p);
  std::vector<std::int32_t> all;
  for (int i = 0; i < 40; ++i) all.push_back(original.sample(kLogits, {}));
  Sampler resumed(p, std::span<const std::int32_t>(all).first(15));
  std::vector<std::int32_t> rest;
  for (int i = 15; i < 40; ++i) rest.push_back(resumed.sample(kLogits, {}));
  EXPECT_EQ(rest, std::vector<std::int32_t>(all.begin() + 15, all.end()));
  // Restarting the stream instead gives other tokens.
  Sampler restarted(p);
  std::vector<std::int32_t> again;
  for (int i = 15; i < 40; ++i) again.push_back(restarted.sample(kLogits, {}));
  EXPECT_NE(again, rest);
  // Greedy draws nothing, so there is nothing to skip.
  Sampler greedy(SamplingParams::greedy(), std::span<const std::int32_t>(all).first(15));
  EXPECT_EQ(greedy.sample(kLogits, {}), 1);
}

TEST(SamplerTest, TemperatureSamplingFollowsSoftmax) {
  SamplingParams p;
  p.temperature = 2.0f;
  p.seed = 3;
  Sampler sampler(p);
  std::map<std::int32_t, int> counts;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) ++counts[sampler.sample(kLogits, {})];
  double total = 0;
  for (float l : kLogits) total += std::exp(l / 2.0);
  for (std::size_t t = 0; t < kLogits.size(); ++t) {
    const double expected = std::exp(kLogits[t] / 2.0) / total;
    EXPECT_NEAR(counts[static_cast<std::int32_t>(t)] / double(draws), expected, 0.015) << t;
  }
}

// A constraint over the 5-token vocabulary: tokens 1 and 4 alternate ("14" repeated), and the
// text is complete after two tokens.
class Alternating final : public core::TokenConstraint {
 public:
  [[nodiscard]] std::unique_ptr<core::TokenConstraint> clone() const override {
    return std::make_unique<Alternating>(*this);
  }
  std::span<const std::uint64_t> allowed() override {
    mask_ = std::uint64_t{1} << (taken_ % 2 == 0 ? 1 : 4);
    return {&mask_, 1};
  }
  [[nodiscard]] bool complete() const override { return taken_ >= 2; }
  bool advance(std::int32_t token) override {
    if (token != (taken_ % 2 == 0 ? 1 : 4)) return false;
    ++taken_;
    return true;
  }

 private:
  int taken_ = 0;
  std::uint64_t mask_ = 0;
};

TEST(SamplerTest, AConstraintAllowsItsTokensAndStopsOnlyOnceComplete) {
  const auto start = std::make_shared<const Alternating>();
  const std::vector<std::int32_t> stop = {2};  // the most likely token after 1
  SamplingParams p;
  p.seed = 3;
  for (int run = 0; run < 20; ++run) {
    p.seed = static_cast<std::uint64_t>(run);
    Sampler sampler(p, {}, {}, start);
    EXPECT_EQ(sampler.sample(kLogits, {}, stop), 1);
    EXPECT_EQ(sampler.sample(kLogits, {}, stop), 4) << "token 2 stops, and the text is not complete";
    const auto third = sampler.sample(kLogits, {}, stop, /*may_stop=*/false);
    EXPECT_TRUE(third == 1 || third == 2) << "complete: the stop token is allowed even before min_tokens";
  }
  // A resumed sequence reads what it generated before; a copy goes on by itself.
  Sampler resumed(SamplingParams::greedy(), std::vector<std::int32_t>{1}, {}, start);
  Sampler copy = resumed;
  EXPECT_EQ(resumed.sample(kLogits, {}, stop), 4);
  EXPECT_EQ(copy.sample(kLogits, {}, stop), 4);
  const std::vector<float> stop_likeliest = {0.0f, 1.0f, 5.0f, 0.0f, 0.0f};
  EXPECT_EQ(resumed.sample(stop_likeliest, {}, stop), 2) << "complete: the stop token may end it";
  EXPECT_EQ(Sampler(SamplingParams::greedy()).sample(kLogits, {}, stop), 1) << "no constraint: plain argmax";
}

}  // namespace
}  // namespace aegaeon::model
