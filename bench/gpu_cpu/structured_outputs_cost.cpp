#include "bench/gpu_cpu/structured_outputs_cost.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "gpu/model/sampler.hpp"
#include "text/constrained_decoding.hpp"
#include "text/tokenizer_synthesizer.hpp"

namespace aegaeon::bench {
namespace {

using Clock = std::chrono::steady_clock;

// A typical extraction schema: bounded strings (each code point a new grammar state, the
// worst case for the mask cache), an integer, an enum, an array and a boolean.
constexpr const char* kSchema = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 24}, "age": {"type": "integer"},
    "email": {"type": "string", "maxLength": 40}, "plan": {"enum": ["free", "pro", "team"]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
    "active": {"type": "boolean"}},
  "required": ["name", "age", "email", "plan", "tags", "active"], "additionalProperties": false})";

struct Walk {
  int tokens = 0;
  double mask_s = 0;         // the constraint's masks: computed, or found in the schema's cache
  double slowest_mask_s = 0;
  double advance_s = 0;      // reading each drawn token's bytes
  double constrained_s = 0;  // the sampler with the constraint (its mask already at hand)
  double plain_s = 0;        // the same sampler and logits without it
};

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// One generation: logits drawn at random per step (a model's would be no easier), sampled with
// and without the constraint; the constrained token is the one generated. A second copy of the
// constraint, kept in step, times the mask (the sampler's then comes from the shared cache)
// and the advance.
Walk walk(const std::shared_ptr<const core::TokenConstraint>& start, const std::vector<std::int32_t>& eos,
          int vocab, std::uint64_t seed) {
  core::SamplingParams params;
  params.temperature = 0.8f;
  params.seed = seed;
  model::Sampler constrained(params, {}, {}, start);
  model::Sampler plain(params);
  auto probe = start->clone();
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  std::vector<std::int32_t> generated;
  Walk w;
  for (; w.tokens < 400; ++w.tokens) {
    for (auto& l : logits) l = normal(rng);
    auto t = Clock::now();
    (void)probe->allowed();
    w.slowest_mask_s = std::max(w.slowest_mask_s, since(t));
    w.mask_s += since(t);
    t = Clock::now();
    const std::int32_t token = constrained.sample(logits, generated, eos);
    w.constrained_s += since(t);
    t = Clock::now();
    (void)plain.sample(logits, generated, eos);
    w.plain_s += since(t);
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) break;
    t = Clock::now();
    probe->advance(token);
    w.advance_s += since(t);
    generated.push_back(token);
  }
  return w;
}

}  // namespace

void report_structured_outputs_cost(int vocab, double decode_step_s) {
  auto synth = text::synth_tokenizer(text::TokenizerLayout::kQwen2, vocab);
  if (!synth.ok()) {
    std::printf("structured outputs: %s\n", synth.error().message.c_str());
    return;
  }
  auto tokenizer = text::Tokenizer::from_json(synth->tokenizer_json, "synthesized tokenizer.json",
                                              synth->tokenizer_config_json);
  if (!tokenizer.ok()) {
    std::printf("structured outputs: %s\n", tokenizer.error().message.c_str());
    return;
  }
  text::StructuredOutputs outputs(*tokenizer);
  const auto index_start = Clock::now();
  auto start = outputs.start({kSchema});
  const double index_s = std::chrono::duration<double>(Clock::now() - index_start).count();
  if (!start.ok()) {
    std::printf("structured outputs: %s\n", start.error().message.c_str());
    return;
  }
  std::printf("structured outputs (vocabulary %d, indexed and schema compiled in %.0f ms):\n", vocab, index_s * 1e3);
  // The first generations compute masks; later ones with the same schema find most cached.
  for (int round = 0; round < 3; ++round) {
    const Walk w = walk(*start, synth->eos_ids, vocab, static_cast<std::uint64_t>(round + 1));
    const double n = std::max(1, w.tokens);
    // What the constraint adds: its mask and advance, and sampling with the mask where that is
    // slower than without (it is usually faster: masked tokens are skipped).
    const double extra = (w.mask_s + w.advance_s + std::max(0.0, w.constrained_s - w.plain_s)) / n;
    std::printf("  generation %d (%s): %d tokens; per token: mask %.3f ms (slowest %.1f ms), advance %.3f ms, masked sampling %.3f ms "
                "vs plain %.3f ms; added %.3f ms = %.4f × decode step (%.1f ms)  [target < 0.1]\n",
                round + 1, round == 0 ? "masks computed" : "same schema again", w.tokens, w.mask_s / n * 1e3, w.slowest_mask_s * 1e3,
                w.advance_s / n * 1e3, w.constrained_s / n * 1e3, w.plain_s / n * 1e3, extra * 1e3,
                extra / decode_step_s, decode_step_s * 1e3);
  }
}

}  // namespace aegaeon::bench
