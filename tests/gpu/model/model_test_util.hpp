// Shared setup for the engine tests: a temporary folder, a synthesized model loaded onto a CPU
// backend with a KV cache and a runner.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>

#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/memory/kv_cache.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/model/model_runner.hpp"
#include "gpu/model/model_synthesizer.hpp"
#include "gpu/model/model_weights.hpp"

namespace aegaeon::model::testing {

/// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("aegaeon_") + tag + "_" + std::to_string(::getpid());
    if (info != nullptr) name += std::string("_") + info->test_suite_name() + "_" + info->name();
    for (char& ch : name) {
      if (ch == '/') ch = '_';
    }
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A model resident on a CPU backend, ready to run.
struct TestEngine {
  std::unique_ptr<backend::cpu::CpuBackend> backend;
  HostModel host;
  ModelWeights weights;
  std::unique_ptr<memory::KvCache> kv;
  std::unique_ptr<ModelRunner> runner;
};

/// Loads `dir` with `kv_blocks` device KV blocks and `host_blocks` swap blocks.
inline std::unique_ptr<TestEngine> load_engine(const std::filesystem::path& dir, int kv_blocks = 32,
                                               int host_blocks = 32) {
  auto engine = std::make_unique<TestEngine>();
  auto backend = backend::cpu::CpuBackend::create({std::size_t{256} << 20, 2});
  EXPECT_TRUE(backend.ok());
  engine->backend = std::move(backend).value();
  auto host = load_host_model(dir, *engine->backend);
  EXPECT_TRUE(host.ok()) << host.error().message;
  if (!host.ok()) return nullptr;
  engine->host = std::move(host).value();
  const ModelConfig& c = engine->host.config;
  memory::KvShape shape{c.num_layers, c.num_kv_heads, c.head_dim};
  backend::KvLayout probe{nullptr, shape.num_layers, shape.kv_heads, shape.head_dim, 16};
  auto& arena = engine->backend->arena();
  auto kv_region = arena.carve(probe.block_bytes() * static_cast<std::size_t>(kv_blocks), "kv");
  auto weight_region = arena.carve(engine->host.weight_bytes, "weights");
  RunnerLimits limits{128, 8};
  auto scratch = arena.carve(ModelRunner::scratch_bytes(c, limits), "scratch");
  EXPECT_TRUE(kv_region.ok() && weight_region.ok() && scratch.ok());
  auto done = engine->backend->create_event();
  auto weights = upload_weights(engine->host, *engine->backend, *weight_region, *done);
  EXPECT_TRUE(weights.ok());
  engine->weights = std::move(weights).value();
  engine->backend->wait(backend::Queue::kCompute, *done);
  auto kv = memory::KvCache::create(*engine->backend, shape, *kv_region, host_blocks);
  EXPECT_TRUE(kv.ok());
  engine->kv = std::move(kv).value();
  auto runner = ModelRunner::create(*engine->backend, engine->weights, *engine->kv, *scratch, limits);
  EXPECT_TRUE(runner.ok()) << runner.error().message;
  engine->runner = std::move(runner).value();
  return engine;
}

}  // namespace aegaeon::model::testing
