// Sampling rules on hand-made logits.
#include "gpu/model/sampler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

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
  EXPECT_EQ(Sampler(r, 0, prompt).sample(kLogits, {}), 2);
  EXPECT_EQ(Sampler(r).sample(kLogits, {}), 1) << "no prompt given, nothing seen";
  r.repetition_penalty = 1.1f;  // once: 3.0 / 1.1 = 2.73 > 2.5; twice it would be 2.48
  EXPECT_EQ(Sampler(r, 0, prompt).sample(kLogits, std::vector<std::int32_t>{1, 1}), 1);
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

TEST(SamplerTest, BannedTokensAreNeverDrawn) {
  EXPECT_EQ(Sampler(SamplingParams::greedy()).sample(kLogits, {}, std::vector<std::int32_t>{1}), 2);
  SamplingParams p;
  p.seed = 11;
  Sampler sampler(p);
  const std::vector<std::int32_t> banned = {1, 2};
  for (int i = 0; i < 200; ++i) {
    const auto t = sampler.sample(kLogits, {}, banned);
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
// sampled before draws exactly what the original would have drawn next.
TEST(SamplerTest, AResumedSamplerContinuesTheSeededStream) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 2024;
  Sampler original(p);
  std::vector<std::int32_t> all;
  for (int i = 0; i < 40; ++i) all.push_back(original.sample(kLogits, {}));
  Sampler resumed(p, /*already_sampled=*/15);
  std::vector<std::int32_t> rest;
  for (int i = 15; i < 40; ++i) rest.push_back(resumed.sample(kLogits, {}));
  EXPECT_EQ(rest, std::vector<std::int32_t>(all.begin() + 15, all.end()));
  // Restarting the stream instead gives other tokens.
  Sampler restarted(p);
  std::vector<std::int32_t> again;
  for (int i = 15; i < 40; ++i) again.push_back(restarted.sample(kLogits, {}));
  EXPECT_NE(again, rest);
  // Greedy draws nothing, so there is nothing to skip.
  Sampler greedy(SamplingParams::greedy(), 15);
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

}  // namespace
}  // namespace aegaeon::model
