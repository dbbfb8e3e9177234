#include "gpu/model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <utility>

namespace aegaeon::model {

Sampler::Sampler(core::SamplingParams params, std::span<const std::int32_t> generated,
                 std::span<const std::int32_t> prompt, const std::shared_ptr<const core::TokenConstraint>& constraint)
    : params_(std::move(params)), rng_(params_.seed.value_or(0)) {
  // sample() draws once per token unless it is greedy.
  if (!(params_.temperature <= 0.0f || params_.top_k == 1)) rng_.discard(generated.size());
  if (constraint) {
    constraint_ = constraint->clone();
    // Tokens generated under the same constraint before: each is allowed (a stop token never
    // is, and none is among them).
    for (std::int32_t token : generated) constraint_->advance(token);
  }
  if (params_.repetition_penalty != 1.0f) {
    prompt_tokens_.assign(prompt.begin(), prompt.end());
    std::sort(prompt_tokens_.begin(), prompt_tokens_.end());
    prompt_tokens_.erase(std::unique(prompt_tokens_.begin(), prompt_tokens_.end()), prompt_tokens_.end());
  }
}

Sampler::Sampler(const Sampler& other)
    : params_(other.params_),
      rng_(other.rng_),
      constraint_(other.constraint_ ? other.constraint_->clone() : nullptr),
      prompt_tokens_(other.prompt_tokens_) {}

Sampler& Sampler::operator=(const Sampler& other) {
  if (this != &other) *this = Sampler(other);
  return *this;
}

Sampler::~Sampler() = default;

void Sampler::mask(std::span<const std::int32_t> stop_tokens, bool may_stop) {
  constexpr float kNever = -std::numeric_limits<float>::infinity();
  const auto vocab = static_cast<std::int32_t>(work_.size());
  if (!constraint_) {
    if (may_stop) return;
    for (std::int32_t token : stop_tokens) {
      if (token >= 0 && token < vocab) work_[static_cast<std::size_t>(token)] = kNever;
    }
    return;
  }
  const auto allowed = constraint_->allowed();
  // A complete text may end (min_tokens or not); an incomplete one may not. A vocabulary that
  // cannot spell any continuation ends it too rather than draw from nothing.
  const bool may_end = constraint_->complete() || std::all_of(allowed.begin(), allowed.end(),
                                                              [](std::uint64_t word) { return word == 0; });
  std::vector<float> stop_logits;
  for (std::int32_t token : stop_tokens) {
    stop_logits.push_back(token >= 0 && token < vocab ? work_[static_cast<std::size_t>(token)] : kNever);
  }
  for (std::int32_t base = 0; base < vocab; base += 64) {
    const auto word = static_cast<std::size_t>(base / 64);
    const std::uint64_t bits = word < allowed.size() ? allowed[word] : 0;
    if (bits == ~std::uint64_t{0}) continue;
    for (std::int32_t t = base; t < std::min(base + 64, vocab); ++t) {
      if (((bits >> (t - base)) & 1U) == 0) work_[static_cast<std::size_t>(t)] = kNever;
    }
  }
  for (std::size_t i = 0; i < stop_tokens.size(); ++i) {
    const std::int32_t token = stop_tokens[i];
    if (token >= 0 && token < vocab) work_[static_cast<std::size_t>(token)] = may_end ? stop_logits[i] : kNever;
  }
}

std::int32_t Sampler::sample(std::span<const float> logits, std::span<const std::int32_t> generated,
                             std::span<const std::int32_t> stop_tokens, bool may_stop) {
  work_.assign(logits.begin(), logits.end());
  const auto vocab = static_cast<std::int32_t>(work_.size());
  if (vocab == 0) return -1;
  for (const auto& [token, bias] : params_.logit_bias) {
    if (token >= 0 && token < vocab) work_[static_cast<std::size_t>(token)] += bias;
  }
  // vLLM's order and scope: the repetition penalty once per token seen in the prompt or the
  // output, then the presence and frequency penalties of the output's tokens.
  const auto repeat = [&](std::int32_t token) {
    float& logit = work_[static_cast<std::size_t>(token)];
    logit = logit > 0 ? logit / params_.repetition_penalty : logit * params_.repetition_penalty;
  };
  if (params_.repetition_penalty != 1.0f) {
    for (std::int32_t token : prompt_tokens_) {
      if (token >= 0 && token < vocab) repeat(token);
    }
  }
  if (!generated.empty() && (params_.presence_penalty != 0.0f ||
                             params_.frequency_penalty != 0.0f ||
                             params_.repetition_penalty != 1.0f)) {
    std::unordered_map<std::int32_t, int> counts;
    for (std::int32_t token : generated) {
      if (token >= 0 && token < vocab) ++counts[token];
    }
    for (const auto& [token, count] : counts) {
      if (params_.repetition_penalty != 1.0f &&
          !std::binary_search(prompt_tokens_.begin(), prompt_tokens_.end(), token)) {
        repeat(token);
      }
      work_[static_cast<std::size_t>(token)] -= params_.frequency_penalty * static_cast<float>(count) +
                                                params_.presence_penalty;
    }
  }
  mask(stop_tokens, may_stop);
  const std::int32_t token = draw();
  if (constraint_ && std::find(stop_tokens.begin(), stop_tokens.end(), token) == stop_tokens.end()) {
    constraint_->advance(token);
  }
  return token;
}

std::int32_t Sampler::draw() {
  const auto vocab = static_cast<std::int32_t>(work_.size());
  if (params_.temperature <= 0.0f || params_.top_k == 1) {
    return static_cast<std::int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
  }
  // Probabilities at temperature of the tokens not masked out (-inf), in id order.
  const float max_logit = *std::max_element(work_.begin(), work_.end());
  candidates_.clear();
  double total = 0.0;
  for (std::int32_t t = 0; t < vocab; ++t) {
    const float logit = work_[static_cast<std::size_t>(t)];
    if (logit == -std::numeric_limits<float>::infinity()) continue;
    const float p = std::exp((logit - max_logit) / params_.temperature);
    candidates_.emplace_back(p, t);
    total += p;
  }
  if (candidates_.empty()) return 0;  // every token masked (a constraint with no way on and no stop token)
  // Truncated by top-k / top-p / min-p, the draw follows descending probability (ties by id,
  // so it is deterministic); sorted only as far as the truncation needs (a full sort of a 150k
  // vocabulary costs most of a decode step). Untruncated, it follows id order and sorts nothing.
  const auto by_prob = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  const auto at = [this](std::size_t n) { return candidates_.begin() + static_cast<std::ptrdiff_t>(n); };
  if (params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < candidates_.size()) {
    std::nth_element(candidates_.begin(), at(static_cast<std::size_t>(params_.top_k) - 1), candidates_.end(), by_prob);
    candidates_.resize(static_cast<std::size_t>(params_.top_k));
  }
  if (params_.min_p > 0.0f) {
    const float top = std::max_element(candidates_.begin(), candidates_.end(), [](const auto& a, const auto& b) {
                        return a.first < b.first;
                      })->first;
    const float threshold = top * params_.min_p;
    std::erase_if(candidates_, [&](const auto& c) { return c.first < threshold; });
  }
  if (params_.top_p < 1.0f) {
    // The smallest prefix by probability holding top_p of the mass: sort a growing prefix.
    std::size_t sorted = 0;
    std::size_t cut = candidates_.size();
    double mass = 0.0;
    for (std::size_t prefix = 64; sorted < candidates_.size(); prefix *= 8) {
      const std::size_t end = std::min(prefix, candidates_.size());
      std::partial_sort(at(sorted), at(end), candidates_.end(), by_prob);
      for (; sorted < end; ++sorted) {
        mass += candidates_[sorted].first / total;
        if (mass >= params_.top_p) break;
      }
      if (sorted < end) {
        cut = sorted + 1;
        break;
      }
    }
    candidates_.resize(cut);
  } else if (params_.top_k > 0 || params_.min_p > 0.0f) {
    std::sort(candidates_.begin(), candidates_.end(), by_prob);
  }
  double kept = 0.0;
  for (const auto& c : candidates_) kept += c.first;
  // 53 random bits → [0, 1): the same on every platform, unlike uniform_real_distribution.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * kept;
  double acc = 0.0;
  for (const auto& c : candidates_) {
    acc += c.first;
    if (u < acc) return c.second;
  }
  return candidates_.back().second;
}

}  // namespace aegaeon::model
