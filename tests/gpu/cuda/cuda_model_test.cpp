// Whole-model parity of the CUDA backend with the CPU backend on synthesized models: identical
// greedy continuations in F32 (prefill of two prompts, then batched decode), close logits in
// BF16 under teacher forcing. Skips without a CUDA device.
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "gpu/memory/kv_cache.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_runner.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "gpu/model/model_weights.hpp"
#include "tests/gpu/cuda/cuda_test_util.hpp"

namespace aegaeon::backend::cuda {
namespace {

using model::Architecture;
using model::SequenceChunk;

// A fresh folder for one synthesized model, removed afterwards.
class ModelDir {
 public:
  explicit ModelDir(const std::string& tag)
      : path_(std::filesystem::temp_directory_path() /
              ("aegaeon_cuda_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
  }
  ~ModelDir() { std::filesystem::remove_all(path_); }
  ModelDir(const ModelDir&) = delete;
  ModelDir& operator=(const ModelDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One model resident on one backend with a KV cache and a runner.
struct Engine {
  model::HostModel host;
  model::ModelWeights weights;
  std::unique_ptr<memory::KvCache> kv;
  std::unique_ptr<model::ModelRunner> runner;
};

std::unique_ptr<Engine> load(Backend& backend, const std::filesystem::path& dir) {
  auto engine = std::make_unique<Engine>();
  auto host = model::load_host_model(dir, backend);
  EXPECT_TRUE(host.ok()) << host.error().message;
  if (!host.ok()) return nullptr;
  engine->host = std::move(host).value();
  const model::ModelConfig& c = engine->host.config;
  memory::KvShape shape{c.num_layers, c.num_kv_heads, c.head_dim};
  KvLayout probe{nullptr, shape.num_layers, shape.kv_heads, shape.head_dim, 16};
  auto kv_region = backend.arena().carve(probe.block_bytes() * 32, "kv");
  auto weight_region = backend.arena().carve(engine->host.weight_bytes, "weights");
  model::RunnerLimits limits{128, 8};
  auto scratch = backend.arena().carve(model::ModelRunner::scratch_bytes(c, limits), "scratch");
  EXPECT_TRUE(kv_region.ok() && weight_region.ok() && scratch.ok());
  if (!kv_region.ok() || !weight_region.ok() || !scratch.ok()) return nullptr;
  auto done = backend.create_event();
  auto weights = model::upload_weights(engine->host, backend, *weight_region, *done);
  EXPECT_TRUE(weights.ok());
  engine->weights = std::move(weights).value();
  backend.wait(Queue::kCompute, *done);
  auto kv = memory::KvCache::create(backend, shape, *kv_region, 32);
  EXPECT_TRUE(kv.ok());
  engine->kv = std::move(kv).value();
  auto runner = model::ModelRunner::create(backend, engine->weights, *engine->kv, *scratch, limits);
  EXPECT_TRUE(runner.ok()) << runner.error().message;
  if (!runner.ok()) return nullptr;
  engine->runner = std::move(runner).value();
  return engine;
}

std::int32_t greedy(std::span<const float> row) {
  return static_cast<std::int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

class CudaModelTest : public ::testing::TestWithParam<Architecture> {
 protected:
  void SetUp() override {
    AEGAEON_SKIP_WITHOUT_CUDA();
    pair_ = std::make_unique<testing::BackendPair>(std::size_t{512} << 20);
    ASSERT_TRUE(pair_->ok());
  }

  // Prefills two prompts in one batch, then decodes `steps` tokens for both. With
  // `forced` non-empty, feeds those tokens instead of the engine's own choice (teacher forcing)
  // and records every logits row in `logits`.
  static std::vector<std::vector<std::int32_t>> generate(
      Engine& e, int steps, const std::vector<std::vector<std::int32_t>>& forced,
      std::vector<std::vector<float>>* logits) {
    const std::vector<std::int32_t> a = {1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53,
                                         57, 61, 65, 69, 73, 77, 81};
    const std::vector<std::int32_t> b = {1, 100, 7, 300, 42};
    EXPECT_TRUE(e.kv->add_sequence(1).ok());
    EXPECT_TRUE(e.kv->add_sequence(2).ok());
    std::vector<SequenceChunk> prompts = {{1, a}, {2, b}};
    auto out = e.runner->prefill(prompts);
    EXPECT_TRUE(out.ok()) << out.error().message;
    std::vector<std::vector<std::int32_t>> tokens(2);
    for (int step = 0; step <= steps && out.ok(); ++step) {
      std::vector<std::int32_t> next;
      for (std::size_t s = 0; s < 2; ++s) {
        if (logits != nullptr) logits->emplace_back(out->row(s).begin(), out->row(s).end());
        const std::int32_t own = greedy(out->row(s));
        tokens[s].push_back(own);
        next.push_back(forced.empty() ? own : forced[s][static_cast<std::size_t>(step)]);
      }
      if (step == steps) break;
      const std::vector<memory::SeqId> seqs = {1, 2};
      out = e.runner->decode_step(seqs, next);
      EXPECT_TRUE(out.ok()) << out.error().message;
    }
    return tokens;
  }

  std::unique_ptr<testing::BackendPair> pair_;
};

TEST_P(CudaModelTest, GreedyContinuationsMatchCpuInF32) {
  ModelDir dir("f32");
  model::SynthSpec spec{model::synth_config(GetParam(), 512, 2, 1000), DType::kF32, 21, 1};
  ASSERT_TRUE(model::write_synthetic_model(dir.path(), spec).ok());
  auto cpu = load(pair_->cpu(), dir.path());
  auto gpu = load(pair_->gpu(), dir.path());
  ASSERT_TRUE(cpu && gpu);
  const auto want = generate(*cpu, 12, {}, nullptr);
  const auto got = generate(*gpu, 12, {}, nullptr);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(pair_->gpu().status().ok()) << pair_->gpu().status().error().message;
}

TEST_P(CudaModelTest, LogitsCloseToCpuInBf16) {
  ModelDir dir("bf16");
  model::SynthSpec spec{model::synth_config(GetParam(), 512, 2, 1000), DType::kBF16, 22, 1};
  ASSERT_TRUE(model::write_synthetic_model(dir.path(), spec).ok());
  auto cpu = load(pair_->cpu(), dir.path());
  auto gpu = load(pair_->gpu(), dir.path());
  ASSERT_TRUE(cpu && gpu);
  std::vector<std::vector<float>> want_logits, got_logits;
  const auto forced = generate(*cpu, 8, {}, &want_logits);
  generate(*gpu, 8, forced, &got_logits);
  ASSERT_EQ(got_logits.size(), want_logits.size());
  for (std::size_t i = 0; i < want_logits.size(); ++i) {
    float range = 0.0f;
    float worst = 0.0f;
    for (std::size_t j = 0; j < want_logits[i].size(); ++j) {
      range = std::max(range, std::fabs(want_logits[i][j]));
      worst = std::max(worst, std::fabs(got_logits[i][j] - want_logits[i][j]));
    }
    // The prefill's cuBLAS GEMMs round activations to BF16: a few percent of the logit range.
    EXPECT_LE(worst, 0.05f * range + 1e-3f) << "logits row " << i;
  }
  EXPECT_TRUE(pair_->gpu().status().ok()) << pair_->gpu().status().error().message;
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaModelTest,
                         ::testing::Values(Architecture::kLlama, Architecture::kQwen2),
                         [](const auto& info) {
                           return std::string(info.param == Architecture::kLlama ? "Llama" : "Qwen2");
                         });

}  // namespace
}  // namespace aegaeon::backend::cuda
