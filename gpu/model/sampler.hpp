// Picks the next token from logits: logit bias, penalties, temperature, top-k, top-p, min-p and a seeded
// generator (the same seed and logits give the same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/generation.hpp"

namespace aegaeon::model {

/// Samples tokens for one sequence; owns its random generator, so one Sampler per request.
class Sampler {
 public:
  /// Seeds the generator from params.seed (0 when unset). `already_sampled`: tokens the request
  /// sampled before from the same seed (it resumes on another device or process); the generator
  /// skips their draws, so a seeded stream goes on where it was. `prompt`: the request's prompt,
  /// whose tokens the repetition penalty counts as well (kept only when it is set).
  explicit Sampler(core::SamplingParams params, std::uint64_t already_sampled = 0,
                   std::span<const std::int32_t> prompt = {});

  /// The next token given `logits` (vocab-sized) and the tokens generated so far (for the
  /// penalties; a resumed request's earlier tokens among them). `banned` tokens are never drawn
  /// (a sequence's stop tokens before its min_tokens).
  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> generated,
                      std::span<const std::int32_t> banned = {});

  /// The settings in use.
  [[nodiscard]] const core::SamplingParams& params() const { return params_; }

 private:
  core::SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::int32_t> prompt_tokens_;                // sorted, distinct; only for repetition_penalty
  std::vector<float> work_;                                // penalized logits
  std::vector<std::pair<float, std::int32_t>> candidates_;  // (probability, token)
};

}  // namespace aegaeon::model
