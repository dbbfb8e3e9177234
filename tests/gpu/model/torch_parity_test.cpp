// Our engine against an independent PyTorch forward pass (tests/parity/torch/reference.py,
// written from the transformers modeling code) on synthesized Llama (with and without
// attention_bias), Qwen2 and Mistral models: logits at every position through prefill and
// batched decode, and greedy continuations, for F32 and BF16 weights. Needs /usr/bin/python3
// with torch and numpy (scripts/install-deps); AEGAEON_SKIP_TORCH_PARITY=1 skips it where they
// cannot be installed.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gpu/model/sampler.hpp"
#include "model_test_util.hpp"
#include "tests/support/child_process.hpp"

namespace aegaeon::model {
namespace {

using core::SamplingParams;

using nlohmann::json;
using testing::TempDir;
using testing::TestEngine;
using Tokens = std::vector<std::int32_t>;

const std::filesystem::path kReference = std::filesystem::path(__FILE__).parent_path() / ".." /
                                         ".." / "parity" / "torch" / "reference.py";
constexpr int kVocab = 128;
constexpr int kNewTokens = 32;
constexpr int kWindow = 11;  // below the prompt lengths, and not a multiple of the KV block
// Prompts of different lengths, prefilled together and then decoded as one batch.
constexpr int kPromptLengths[] = {24, 9, 17};
// Prefixes of the longest prompt per prefill call: 4 × 24 tokens fit load_engine's runner.
constexpr std::size_t kPrefixesPerCall = 4;
// The bound for F32. Both sides compute in F32, in different summation orders; the
// largest difference measured here is 1.7e-5, on logits up to ~35 in magnitude.
constexpr double kF32Tolerance = 1e-4;

struct ParityModel {
  const char* name;
  ModelConfig config;
};

// gtest names a failing parameter with this rather than its bytes.
void PrintTo(const ParityModel& model, std::ostream* os) { *os << model.name; }

// Llama: untied embeddings, GQA (4 query heads on 2 KV heads), llama3 rope scaling with an
// original context of 32, so head_dim 16's frequencies fall in all three of its bands.
ModelConfig llama_config() {
  ModelConfig c = synth_config(Architecture::kLlama, 64, 2, kVocab);
  c.rope.scaling = backend::RopeScaling::kLlama3;
  c.rope.factor = 8.0f;
  c.rope.low_freq_factor = 1.0f;
  c.rope.high_freq_factor = 4.0f;
  c.rope.original_max_position = 32;
  return c;
}

// Llama with attention_bias: biases on q/k/v and on o_proj, which Qwen2 lacks.
ModelConfig llama_attention_bias_config() {
  ModelConfig c = synth_config(Architecture::kLlama, 64, 2, kVocab);
  c.attention_bias = true;
  return c;
}

// Qwen2: tied embeddings, q/k/v biases, a sliding window from layer 1 on (max_window_layers).
ModelConfig qwen2_config() {
  ModelConfig c = synth_config(Architecture::kQwen2, 64, 3, kVocab);
  c.sliding_window = kWindow;
  c.max_window_layers = 1;
  return c;
}

// Qwen3: per-head q/k RMSNorm, head_dim wider than hidden / heads (as Qwen3-0.6B's 128
// against 1024 / 16), attention_bias on all four projections, untied embeddings (as Qwen3-8B).
ModelConfig qwen3_config() {
  ModelConfig c = synth_config(Architecture::kQwen3, 64, 2, kVocab);
  c.head_dim = 2 * c.hidden_size / c.num_heads;
  c.attention_bias = true;
  c.tie_word_embeddings = false;
  return c;
}

// Phi-3: fused qkv_proj and gate_up_proj, a sliding window on every layer (as Phi-3-mini-4k's
// 2047).
ModelConfig phi3_config() {
  ModelConfig c = synth_config(Architecture::kPhi3, 64, 2, kVocab);
  c.sliding_window = kWindow;
  return c;
}

// Mistral: a sliding window on every layer and linear rope scaling.
ModelConfig mistral_config() {
  ModelConfig c = synth_config(Architecture::kMistral, 64, 2, kVocab);
  c.sliding_window = kWindow;
  c.rope.scaling = backend::RopeScaling::kLinear;
  c.rope.factor = 2.0f;
  return c;
}

std::vector<Tokens> make_prompts() {
  std::vector<Tokens> prompts;
  int salt = 0;
  for (int length : kPromptLengths) {
    Tokens p;
    for (int i = 0; i < length; ++i) p.push_back((i * 37 + salt * 101 + 11) % kVocab);
    prompts.push_back(p);
    ++salt;
  }
  return prompts;
}

double max_abs_diff(std::span<const float> got, const json& want) {
  if (!want.is_array() || want.size() != got.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::fabs(double(got[i]) - want[i].get<double>()));
  }
  return worst;
}

// Runs reference.py on `request`; the result, or nullopt after reporting why it failed.
std::optional<json> run_reference(const json& request, const std::filesystem::path& out) {
  const auto [code, output] = aegaeon::testing::run_command(
      {"/usr/bin/python3", kReference.string(), "--out", out.string()}, request.dump(),
      std::chrono::seconds(120));
  if (code != 0) {
    ADD_FAILURE() << kReference << " failed (exit " << code << "):\n"
                  << output
                  << "\nIt needs /usr/bin/python3 with torch and numpy: run scripts/install-deps "
                     "(Debian python3-torch, python3-numpy), or set AEGAEON_SKIP_TORCH_PARITY=1 "
                     "to skip this test.";
    return std::nullopt;
  }
  std::ifstream in(out);
  return json::parse(in);
}

// Every prompt position through the prefill path: prefix i is a sequence of its own, so its
// chunk's logits are those at position i. Returns the worst difference of each position.
std::vector<double> prefill_diffs(TestEngine& e, const Tokens& prompt, const json& want_rows) {
  std::vector<double> diffs;
  memory::SeqId next_seq = 100;
  std::size_t length = 1;
  while (length <= prompt.size()) {
    std::vector<SequenceChunk> chunks;
    for (; length <= prompt.size() && chunks.size() < kPrefixesPerCall; ++length) {
      EXPECT_TRUE(e.kv->add_sequence(next_seq).ok());
      chunks.push_back({next_seq++, std::span<const std::int32_t>(prompt).first(length)});
    }
    auto logits = e.runner->prefill(chunks);
    EXPECT_TRUE(logits.ok()) << logits.error().message;
    if (!logits.ok()) return diffs;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      diffs.push_back(max_abs_diff(logits->row(i), want_rows[chunks[i].tokens.size() - 1]));
      e.kv->remove_sequence(chunks[i].seq);
    }
  }
  return diffs;
}

void expect_prefill_matches(TestEngine& e, const Tokens& prompt, const json& want_rows) {
  const auto diffs = prefill_diffs(e, prompt, want_rows);
  ASSERT_EQ(diffs.size(), prompt.size());
  for (std::size_t pos = 0; pos < diffs.size(); ++pos) {
    EXPECT_LT(diffs[pos], kF32Tolerance) << "prefill logits at position " << pos;
  }
}

// The prompts prefilled together in one forward call, then kNewTokens greedy decode steps of
// the whole batch: each step's logits and the greedy tokens match the reference's.
void expect_batched_greedy_matches(TestEngine& e, const std::vector<Tokens>& prompts,
                                   const json& want) {
  std::vector<memory::SeqId> seqs;
  std::vector<SequenceChunk> chunks;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    seqs.push_back(static_cast<memory::SeqId>(i + 1));
    ASSERT_TRUE(e.kv->add_sequence(seqs.back()).ok());
    chunks.push_back({seqs.back(), prompts[i]});
  }
  auto logits = e.runner->prefill(chunks);
  ASSERT_TRUE(logits.ok()) << logits.error().message;
  std::vector<Sampler> samplers(prompts.size(), Sampler(SamplingParams::greedy()));
  std::vector<Sampler*> sampler_ptrs;
  for (auto& s : samplers) sampler_ptrs.push_back(&s);
  std::vector<Tokens> generated(prompts.size());
  std::vector<double> worst(prompts.size());
  for (int step = 0;; ++step) {
    std::vector<std::span<const std::int32_t>> history(generated.begin(), generated.end());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const std::size_t position = prompts[i].size() - 1 + static_cast<std::size_t>(step);
      worst[i] = std::max(worst[i], max_abs_diff(logits->row(i), want[i]["logits"][position]));
    }
    const Tokens next = sample_batch(*logits, sampler_ptrs, history);
    for (std::size_t i = 0; i < prompts.size(); ++i) generated[i].push_back(next[i]);
    if (step + 1 == kNewTokens) break;
    logits = e.runner->decode_step(seqs, next);
    ASSERT_TRUE(logits.ok()) << logits.error().message;
  }
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(generated[i], want[i]["tokens"].get<Tokens>()) << "greedy continuation " << i;
    EXPECT_LT(worst[i], kF32Tolerance) << "decode logits of prompt " << i;
    // Random weights must not collapse onto one token, or identical continuations prove little.
    EXPECT_GE(std::set<std::int32_t>(generated[i].begin(), generated[i].end()).size(), 4u);
  }
}

// transformers runs a BF16 checkpoint in bfloat16: every activation is rounded to 8
// significant bits after each op (RMSNorm statistics and the softmax excepted), while our engine
// keeps activations in F32. The logits then differ by the error those roundings accumulate. We
// bound it without assuming any cancellation: each of the ~20 sequential roundings along a
// layer's path (norm, q/k/v, rope, scores, softmax, attention output, o_proj, residual add,
// norm, gate/up, SiLU, product, down_proj, residual add) and 3 at the end (final norm, lm_head)
// adds at most one bf16 spacing, 2^-8, relative to the logits' scale (their RMS). Measured:
// ≤ 0.04 × RMS for both Llamas and Mistral (bound 0.17), ≤ 0.10 × RMS for Qwen2 (bound 0.25).
double bf16_compute_tolerance(const ModelConfig& c, const json& logits_row) {
  double sum_squares = 0;
  for (const auto& v : logits_row) sum_squares += v.get<double>() * v.get<double>();
  const double rms = std::sqrt(sum_squares / static_cast<double>(logits_row.size()));
  const int roundings = 20 * c.num_layers + 3;
  return roundings * std::ldexp(1.0, -8) * rms;
}

class TorchParityTest : public ::testing::TestWithParam<ParityModel> {};

TEST_P(TorchParityTest, LogitsAndGreedyContinuationsMatchPyTorch) {
  if (const char* skip = std::getenv("AEGAEON_SKIP_TORCH_PARITY");
      skip != nullptr && std::string(skip) == "1") {
    GTEST_SKIP() << "AEGAEON_SKIP_TORCH_PARITY=1";
  }
  const ModelConfig& config = GetParam().config;
  TempDir dir("torch_parity");
  const auto f32_dir = dir.path() / "f32";
  const auto bf16_dir = dir.path() / "bf16";
  ASSERT_TRUE(write_synthetic_model(f32_dir, {config, backend::DType::kF32, 7, 1}).ok());
  ASSERT_TRUE(write_synthetic_model(bf16_dir, {config, backend::DType::kBF16, 7, 1}).ok());
  const std::vector<Tokens> prompts = make_prompts();
  const json request = json::array(
      {{{"model", f32_dir.string()}, {"prompts", prompts}, {"max_new_tokens", kNewTokens}},
       {{"model", bf16_dir.string()}, {"prompts", prompts}, {"max_new_tokens", kNewTokens}},
       {{"model", bf16_dir.string()},
        {"prompts", json::array({prompts[0]})},
        {"compute_dtype", "bfloat16"}}});
  const auto reference = run_reference(request, dir.path() / "reference.json");
  ASSERT_TRUE(reference.has_value());
  // BF16 weights: our engine widens them to F32 and computes every activation in F32 with F32
  // accumulation, which is exactly what the reference does in float32 on the same BF16 values,
  // so the F32 bound holds for them too.
  for (const auto& [model_dir, results] : std::vector<std::pair<std::filesystem::path, json>>{
           {f32_dir, (*reference)[0]["results"]}, {bf16_dir, (*reference)[1]["results"]}}) {
    SCOPED_TRACE(model_dir.filename().string() + " weights");
    auto engine = testing::load_engine(model_dir);
    ASSERT_NE(engine, nullptr);
    expect_prefill_matches(*engine, prompts[0], results[0]["logits"]);
    expect_batched_greedy_matches(*engine, prompts, results);
  }
  {
    SCOPED_TRACE("bf16 weights, reference computing in bfloat16");
    auto engine = testing::load_engine(bf16_dir);
    ASSERT_NE(engine, nullptr);
    const json& rows = (*reference)[2]["results"][0]["logits"];
    const auto diffs = prefill_diffs(*engine, prompts[0], rows);
    ASSERT_EQ(diffs.size(), prompts[0].size());
    for (std::size_t pos = 0; pos < diffs.size(); ++pos) {
      EXPECT_LT(diffs[pos], bf16_compute_tolerance(config, rows[pos])) << "position " << pos;
    }
  }
  // The window must change the result, or this test would not test it: the same weights with
  // full attention give other logits once a prompt is longer than the window.
  if (config.sliding_window > 0) {
    ModelConfig full = config;
    full.sliding_window = 0;
    const auto full_dir = dir.path() / "full_attention";
    ASSERT_TRUE(write_synthetic_model(full_dir, {full, backend::DType::kF32, 7, 1}).ok());
    auto engine = testing::load_engine(full_dir);
    ASSERT_NE(engine, nullptr);
    ASSERT_TRUE(engine->kv->add_sequence(1).ok());
    const std::vector<SequenceChunk> chunk = {{1, prompts[0]}};
    auto logits = engine->runner->prefill(chunk);
    ASSERT_TRUE(logits.ok()) << logits.error().message;
    const json& windowed = (*reference)[0]["results"][0]["logits"][prompts[0].size() - 1];
    EXPECT_GT(max_abs_diff(logits->row(0), windowed), 100 * kF32Tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TorchParityTest,
                         ::testing::Values(ParityModel{"LlamaUntiedGqa", llama_config()},
                                           ParityModel{"LlamaAttentionBias",
                                                       llama_attention_bias_config()},
                                           ParityModel{"Qwen2TiedBiases", qwen2_config()},
                                           ParityModel{"Qwen3QkNorm", qwen3_config()},
                                           ParityModel{"Phi3FusedSlidingWindow", phi3_config()},
                                           ParityModel{"MistralSlidingWindow", mistral_config()}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace aegaeon::model
