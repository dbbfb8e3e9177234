// Picks the next token from logits: a constraint's mask (structured outputs), logit bias,
// penalties, temperature, top-k, top-p, min-p and a seeded generator (the same seed and logits
// give the same tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "core/generation.hpp"
#include "core/token_constraint.hpp"

namespace aegaeon::model {

/// Samples tokens for one sequence; owns its random generator and its place in a constraint, so
/// one Sampler per request (a copy carries on independently).
class Sampler {
 public:
  /// Seeds the generator from params.seed (0 when unset). `generated`: tokens the request
  /// generated before (it resumes on another device or process); the generator skips their
  /// draws, so a seeded stream goes on where it was, and the constraint reads them. `prompt`: the
  /// request's prompt, whose tokens the repetition penalty counts as well (kept only when it is
  /// set). `constraint`: where the output must start (structured outputs), or null.
  explicit Sampler(core::SamplingParams params, std::span<const std::int32_t> generated = {},
                   std::span<const std::int32_t> prompt = {},
                   const std::shared_ptr<const core::TokenConstraint>& constraint = nullptr);
  Sampler(const Sampler& other);
  Sampler& operator=(const Sampler& other);
  Sampler(Sampler&&) noexcept = default;
  Sampler& operator=(Sampler&&) noexcept = default;
  ~Sampler();

  /// The next token given `logits` (vocab-sized) and the tokens generated so far (for the
  /// penalties; a resumed request's earlier tokens among them). `stop_tokens` end the sequence:
  /// they are drawn only when `may_stop` (a sequence's min_tokens is reached) and, under a
  /// constraint, only once its text is complete (then regardless of `may_stop`: nothing else
  /// may follow a whole JSON value). Under a constraint only the tokens it allows are drawn, and
  /// the drawn one advances it.
  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> generated,
                      std::span<const std::int32_t> stop_tokens = {}, bool may_stop = true);

  /// The settings in use.
  [[nodiscard]] const core::SamplingParams& params() const { return params_; }

 private:
  // Sets the logits of tokens that may not come next to -inf.
  void mask(std::span<const std::int32_t> stop_tokens, bool may_stop);
  // Draws from the masked, penalized logits in work_.
  std::int32_t draw();

  core::SamplingParams params_;
  std::mt19937_64 rng_;
  std::unique_ptr<core::TokenConstraint> constraint_;      // null: any text
  std::vector<std::int32_t> prompt_tokens_;                // sorted, distinct; only for repetition_penalty
  std::vector<float> work_;                                // penalized logits
  std::vector<std::pair<float, std::int32_t>> candidates_;  // (probability, token)
};

}  // namespace aegaeon::model
