// Picks the next token from logits: penalties, temperature, top-k, top-p, min-p and a seeded
// generator (the same seed and logits give the same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace aegaeon::model {

/// OpenAI/vLLM-style sampling settings of one request.
struct SamplingParams {
  float temperature = 0.0f;         ///< 0: greedy (argmax)
  int top_k = 0;                    ///< 0: all tokens
  float top_p = 1.0f;               ///< nucleus mass kept, (0, 1]
  float min_p = 0.0f;               ///< drop tokens below min_p × the top probability
  float presence_penalty = 0.0f;    ///< subtracted once from every token already generated
  float frequency_penalty = 0.0f;   ///< subtracted per occurrence in the generated tokens
  float repetition_penalty = 1.0f;  ///< HF/CTRL: divide positive, multiply negative logits
  std::uint64_t seed = 0;
  int top_logprobs = 0;             ///< most likely tokens to report per step (never sampled by)
};

/// Samples tokens for one sequence; owns its random generator, so one Sampler per request.
class Sampler {
 public:
  /// Seeds the generator from params.seed. `already_sampled`: tokens the request sampled before
  /// from the same seed (it resumes on another device or process); the generator skips their
  /// draws, so a seeded stream goes on where it was.
  explicit Sampler(SamplingParams params, std::uint64_t already_sampled = 0);

  /// The next token given `logits` (vocab-sized) and the tokens generated so far (for the
  /// penalties).
  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> generated);

  /// The settings in use.
  [[nodiscard]] const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> work_;                                // penalized logits
  std::vector<std::pair<float, std::int32_t>> candidates_;  // (probability, token)
};

}  // namespace aegaeon::model
