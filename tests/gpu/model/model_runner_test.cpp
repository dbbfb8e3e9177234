// The whole engine against a naive reference forward pass written here independently (dense,
// double precision, no KV cache, recomputed from scratch every step): prefill logits, greedy
// decode with continuous batching, chunked prefill, and KV swap out/in in the middle.
#include "gpu/model/model_runner.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "gpu/model/sampler.hpp"
#include "model_test_util.hpp"

namespace aegaeon::model {
namespace {

using core::SamplingParams;
using testing::TempDir;
using testing::TestEngine;

// Straightforward Llama/Qwen2/Mistral forward over a whole token sequence.
class ReferenceModel {
 public:
  explicit ReferenceModel(const SynthSpec& spec) : c_(spec.config) {
    for (const auto& e : expected_tensors(c_)) {
      if (e.optional) continue;
      std::size_t count = 1;
      for (auto d : e.shape) count *= static_cast<std::size_t>(d);
      const auto values = synth_tensor_values(spec, e.name, count);
      w_[e.name] = std::vector<double>(values.begin(), values.end());
    }
    if (c_.tie_word_embeddings) w_["lm_head.weight"] = w_["model.embed_tokens.weight"];
  }

  // Logits after the last token of `tokens`.
  std::vector<double> last_logits(const std::vector<std::int32_t>& tokens) const {
    const int n = static_cast<int>(tokens.size());
    const int h = c_.hidden_size;
    const int d = c_.head_dim;
    const int nq = c_.num_heads * d;
    const int nkv = c_.num_kv_heads * d;
    Matrix x(n, std::vector<double>(static_cast<std::size_t>(h)));
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < h; ++i) x[t][i] = at("model.embed_tokens.weight")[tokens[t] * h + i];
    }
    for (int l = 0; l < c_.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      Matrix xn = rms_norm(x, at(p + "input_layernorm.weight"));
      Matrix q = linear(xn, p + "self_attn.q_proj", nq, h);
      Matrix k = linear(xn, p + "self_attn.k_proj", nkv, h);
      Matrix v = linear(xn, p + "self_attn.v_proj", nkv, h);
      rope(q, c_.num_heads);
      rope(k, c_.num_kv_heads);
      Matrix attn(n, std::vector<double>(static_cast<std::size_t>(nq)));
      const int group = c_.num_heads / c_.num_kv_heads;
      for (int t = 0; t < n; ++t) {
        for (int head = 0; head < c_.num_heads; ++head) {
          const int g = head / group;
          std::vector<double> scores(static_cast<std::size_t>(t + 1));
          double max_score = -1e300;
          for (int j = 0; j <= t; ++j) {
            double dot = 0;
            for (int i = 0; i < d; ++i) dot += q[t][head * d + i] * k[j][g * d + i];
            scores[j] = dot / std::sqrt(double(d));
            max_score = std::max(max_score, scores[j]);
          }
          double total = 0;
          for (double& s : scores) total += (s = std::exp(s - max_score));
          for (int i = 0; i < d; ++i) {
            double acc = 0;
            for (int j = 0; j <= t; ++j) acc += scores[j] / total * v[j][g * d + i];
            attn[t][head * d + i] = acc;
          }
        }
      }
      add_into(x, linear(attn, p + "self_attn.o_proj", h, nq));
      xn = rms_norm(x, at(p + "post_attention_layernorm.weight"));
      Matrix gate = linear(xn, p + "mlp.gate_proj", c_.intermediate_size, h);
      const Matrix up = linear(xn, p + "mlp.up_proj", c_.intermediate_size, h);
      for (int t = 0; t < n; ++t) {
        for (int i = 0; i < c_.intermediate_size; ++i) {
          gate[t][i] = gate[t][i] / (1 + std::exp(-gate[t][i])) * up[t][i];
        }
      }
      add_into(x, linear(gate, p + "mlp.down_proj", h, c_.intermediate_size));
    }
    Matrix last = rms_norm(Matrix{x.back()}, at("model.norm.weight"));
    return linear(last, "lm_head", c_.vocab_size, h)[0];
  }

 private:
  using Matrix = std::vector<std::vector<double>>;

  const std::vector<double>& at(const std::string& name) const { return w_.at(name); }

  Matrix rms_norm(const Matrix& x, const std::vector<double>& weight) const {
    Matrix out = x;
    for (auto& row : out) {
      double sum = 0;
      for (double v : row) sum += v * v;
      const double inv = 1 / std::sqrt(sum / row.size() + c_.rms_norm_eps);
      for (std::size_t i = 0; i < row.size(); ++i) row[i] = row[i] * inv * weight[i];
    }
    return out;
  }

  Matrix linear(const Matrix& x, const std::string& name, int out_dim, int in_dim) const {
    const auto& w = at(name + ".weight");
    const auto bias = w_.find(name + ".bias");
    Matrix y(x.size(), std::vector<double>(static_cast<std::size_t>(out_dim)));
    for (std::size_t t = 0; t < x.size(); ++t) {
      for (int o = 0; o < out_dim; ++o) {
        double acc = bias == w_.end() ? 0.0 : bias->second[o];
        for (int i = 0; i < in_dim; ++i) acc += x[t][i] * w[o * in_dim + i];
        y[t][o] = acc;
      }
    }
    return y;
  }

  void rope(Matrix& x, int heads) const {
    const int d = c_.head_dim;
    for (std::size_t t = 0; t < x.size(); ++t) {
      for (int head = 0; head < heads; ++head) {
        for (int i = 0; i < d / 2; ++i) {
          const double freq = 1.0 / std::pow(double(c_.rope.theta), 2.0 * i / d);
          const double angle = double(t) * freq;
          double& a = x[t][head * d + i];
          double& b = x[t][head * d + i + d / 2];
          const double a0 = a;
          a = a0 * std::cos(angle) - b * std::sin(angle);
          b = b * std::cos(angle) + a0 * std::sin(angle);
        }
      }
    }
  }

  static void add_into(Matrix& x, const Matrix& y) {
    for (std::size_t t = 0; t < x.size(); ++t) {
      for (std::size_t i = 0; i < x[t].size(); ++i) x[t][i] += y[t][i];
    }
  }

  ModelConfig c_;
  std::map<std::string, std::vector<double>> w_;
};

std::vector<std::int32_t> prompt(int length, int salt, int vocab) {
  std::vector<std::int32_t> out;
  for (int i = 0; i < length; ++i) out.push_back((i * 31 + salt * 17 + 3) % vocab);
  return out;
}

std::int32_t argmax(std::span<const float> logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) -
                                   logits.begin());
}

void expect_logits_near(std::span<const float> got, const std::vector<double>& want,
                        double tolerance, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_LT(worst, tolerance) << what;
}

struct Case {
  Architecture arch;
  backend::DType dtype;
};

class ModelRunnerTest : public ::testing::TestWithParam<Case> {};

// Runs 3 prompts (5, 17 and 33 tokens: 1, 2 and 3 KV blocks) as one prefill batch, then greedy
// decode steps of the whole batch; a fourth prompt joins mid-way in the same forward call as
// the others' decode tokens. With `swap`, sequence 1 is swapped out after step 2 while a
// filler sequence takes its blocks, then swapped back in. Returns every step's logits.
std::vector<std::vector<float>> run_scenario(TestEngine& e, bool swap,
                                             const ReferenceModel* reference) {
  const int vocab = e.host.config.vocab_size;
  std::vector<std::vector<std::int32_t>> tokens = {prompt(5, 1, vocab), prompt(17, 2, vocab),
                                                   prompt(33, 3, vocab)};
  std::vector<memory::SeqId> seqs = {10, 11, 12};
  for (auto s : seqs) EXPECT_TRUE(e.kv->add_sequence(s).ok());
  std::vector<SequenceChunk> chunks;
  for (std::size_t i = 0; i < seqs.size(); ++i) chunks.push_back({seqs[i], tokens[i]});
  auto logits = e.runner->prefill(chunks);
  EXPECT_TRUE(logits.ok()) << logits.error().message;
  std::vector<std::vector<float>> trace;
  trace.push_back(logits->values);
  const double tolerance = 2e-3;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    if (reference != nullptr) {
      expect_logits_near(logits->row(i), reference->last_logits(tokens[i]), tolerance,
                         "prefill seq " + std::to_string(i));
    }
    tokens[i].push_back(argmax(logits->row(i)));
  }
  for (int step = 0; step < 5; ++step) {
    if (swap && step == 2) {
      EXPECT_TRUE(e.kv->swap_out(11).ok());
      EXPECT_TRUE(e.kv->add_sequence(99).ok());
      const auto filler = prompt(40, 9, vocab);
      const std::vector<SequenceChunk> filler_chunk = {{99, filler}};
      EXPECT_TRUE(e.runner->prefill(filler_chunk).ok());  // reuses 11's freed blocks
      EXPECT_TRUE(e.kv->swap_in(11).ok());
      e.kv->remove_sequence(99);
    }
    chunks.clear();
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      chunks.push_back({seqs[i], std::span<const std::int32_t>(tokens[i]).last(1)});
    }
    if (step == 3) {  // a new request's prefill joins the decode batch
      seqs.push_back(13);
      tokens.push_back(prompt(20, 4, vocab));
      EXPECT_TRUE(e.kv->add_sequence(13).ok());
      chunks.push_back({13, tokens.back()});
    }
    auto step_logits = e.runner->forward(chunks);
    EXPECT_TRUE(step_logits.ok()) << step_logits.error().message;
    trace.push_back(step_logits->values);
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      if (reference != nullptr) {
        expect_logits_near(step_logits->row(i), reference->last_logits(tokens[i]), tolerance,
                           "step " + std::to_string(step) + " seq " + std::to_string(i));
      }
      tokens[i].push_back(argmax(step_logits->row(i)));
    }
  }
  // Random weights must not collapse onto one token.
  std::set<std::int32_t> distinct(tokens[2].begin() + 33, tokens[2].end());
  EXPECT_GE(distinct.size(), 3u);
  return trace;
}

TEST_P(ModelRunnerTest, PrefillAndBatchedDecodeMatchReference) {
  TempDir dir("runner");
  const SynthSpec spec{synth_config(GetParam().arch, 64, 2, 97), GetParam().dtype, 42, 1};
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  const ReferenceModel reference(spec);
  auto engine = testing::load_engine(dir.path());
  ASSERT_NE(engine, nullptr);
  run_scenario(*engine, /*swap=*/false, &reference);
}

TEST_P(ModelRunnerTest, SwapOutAndInMidDecodeGivesIdenticalResults) {
  TempDir dir("swap");
  const SynthSpec spec{synth_config(GetParam().arch, 64, 2, 97), GetParam().dtype, 43, 1};
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  auto plain = testing::load_engine(dir.path());
  auto swapped = testing::load_engine(dir.path(), /*kv_blocks=*/14);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(swapped, nullptr);
  const auto a = run_scenario(*plain, false, nullptr);
  const auto b = run_scenario(*swapped, true, nullptr);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, ModelRunnerTest,
    ::testing::Values(Case{Architecture::kLlama, backend::DType::kF32},
                      Case{Architecture::kQwen2, backend::DType::kF32},
                      Case{Architecture::kMistral, backend::DType::kBF16},
                      Case{Architecture::kLlama, backend::DType::kF16}),
    [](const auto& info) {
      return std::string(to_string(info.param.arch)).substr(0, 5) +
             std::string(backend::to_string(info.param.dtype));
    });

TEST(ModelRunnerEdgeTest, ChunkedPrefillEqualsOneShotAndErrorsAreClean) {
  TempDir dir("chunk");
  const SynthSpec spec{synth_config(Architecture::kLlama, 64, 2, 97), backend::DType::kF32, 5, 1};
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  auto e = testing::load_engine(dir.path(), /*kv_blocks=*/4);
  ASSERT_NE(e, nullptr);
  const auto tokens = prompt(30, 1, 97);
  ASSERT_TRUE(e->kv->add_sequence(1).ok());
  ASSERT_TRUE(e->kv->add_sequence(2).ok());
  const std::vector<SequenceChunk> whole = {{1, tokens}};
  auto one = e->runner->prefill(whole);
  ASSERT_TRUE(one.ok());
  const std::span<const std::int32_t> all(tokens);
  const std::vector<SequenceChunk> first = {{2, all.first(13)}};
  const std::vector<SequenceChunk> second = {{2, all.subspan(13)}};
  ASSERT_TRUE(e->runner->prefill(first).ok());
  auto two = e->runner->prefill(second);
  ASSERT_TRUE(two.ok());
  expect_logits_near(two->row(0), std::vector<double>(one->values.begin(), one->values.end()),
                     1e-4, "chunked vs one-shot");
  EXPECT_EQ(e->kv->num_tokens(2), 30);
  // Out-of-vocab token, unknown sequence, and KV exhaustion are errors, not crashes.
  const std::vector<std::int32_t> bad = {97};
  const std::vector<SequenceChunk> bad_chunk = {{1, bad}};
  EXPECT_EQ(e->runner->forward(bad_chunk).error().code, core::ErrorCode::kInvalidArgument);
  const std::vector<std::int32_t> ok_token = {5};
  const std::vector<SequenceChunk> twice = {{1, ok_token}, {1, ok_token}};
  EXPECT_EQ(e->runner->forward(twice).error().code, core::ErrorCode::kInvalidArgument);
  const std::vector<SequenceChunk> unknown = {{77, bad}};
  EXPECT_EQ(e->runner->forward(unknown).error().code, core::ErrorCode::kNotFound);
  ASSERT_TRUE(e->kv->add_sequence(3).ok());
  const auto long_prompt = prompt(40, 2, 97);  // 3 blocks, none left
  const std::vector<SequenceChunk> too_long = {{3, long_prompt}};
  EXPECT_EQ(e->runner->forward(too_long).error().code, core::ErrorCode::kResourceExhausted);
}

TEST(ModelRunnerEdgeTest, SampledGenerationIsReproducibleWithSeed) {
  TempDir dir("sample");
  const SynthSpec spec{synth_config(Architecture::kQwen2, 64, 1, 97), backend::DType::kBF16, 9, 1};
  ASSERT_TRUE(write_synthetic_model(dir.path(), spec).ok());
  auto e = testing::load_engine(dir.path());
  ASSERT_NE(e, nullptr);
  // Sequences 1 and 2 (same prompt, same seed) decode together in one batch with
  // sample_batch; sequence 3 uses another seed.
  const auto p = prompt(7, 3, 97);
  std::vector<memory::SeqId> seqs = {1, 2, 3};
  std::vector<Sampler> samplers;
  for (std::uint64_t seed : {1234u, 1234u, 999u}) {
    samplers.emplace_back(SamplingParams{.temperature = 0.9f, .top_p = 0.95f, .top_k = 40, .presence_penalty = 0.1f,
                                         .frequency_penalty = 0.1f, .seed = seed});
  }
  std::vector<SequenceChunk> chunks;
  for (auto s : seqs) {
    ASSERT_TRUE(e->kv->add_sequence(s).ok());
    chunks.push_back({s, p});
  }
  auto logits = e->runner->prefill(chunks);
  ASSERT_TRUE(logits.ok());
  std::vector<std::vector<std::int32_t>> out(3);
  std::vector<Sampler*> sampler_ptrs = {&samplers[0], &samplers[1], &samplers[2]};
  for (int i = 0; i < 12; ++i) {
    std::vector<std::span<const std::int32_t>> history(out.begin(), out.end());
    const auto next = sample_batch(*logits, sampler_ptrs, history);
    for (std::size_t s = 0; s < 3; ++s) out[s].push_back(next[s]);
    logits = e->runner->decode_step(seqs, next);
    ASSERT_TRUE(logits.ok());
  }
  EXPECT_EQ(out[0], out[1]);
  EXPECT_NE(out[0], out[2]);
}

}  // namespace
}  // namespace aegaeon::model
