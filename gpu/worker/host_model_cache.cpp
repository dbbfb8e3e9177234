// HostModelCache: every served model loaded once into pinned host memory.
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "gpu/backend/cpu/cpu_backend.hpp"
#include "gpu/backend/cuda/cuda_backend.hpp"
#include "gpu/model/model_loader.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::worker {

namespace {

using core::ErrorCode;

// The cache's pinned buffers come from a tiny backend of their own: the cache outlives and is
// shared by many DeviceWorkers, so it cannot borrow one of theirs.
constexpr std::size_t kAllocatorArenaBytes = 4096;

// K and V rows of every layer, F32 as the paged cache stores them (backend::KvLayout).
std::uint64_t kv_bytes_per_token(const model::ModelConfig& c) {
  return std::uint64_t{2} * static_cast<std::uint64_t>(c.num_layers) *
         static_cast<std::uint64_t>(c.num_kv_heads) * static_cast<std::uint64_t>(c.head_dim) *
         sizeof(float);
}

class HostModelCacheImpl final : public HostModelCache {
 public:
  explicit HostModelCacheImpl(std::unique_ptr<backend::Backend> allocator)
      : allocator_(std::move(allocator)) {}

  void add(ModelInfo info, model::HostModel host) {
    infos_.push_back(std::move(info));
    models_.push_back(std::move(host));
  }

  [[nodiscard]] std::int32_t size() const override {
    return static_cast<std::int32_t>(infos_.size());
  }
  [[nodiscard]] const ModelInfo& info(ModelId model) const override {
    return infos_.at(static_cast<std::size_t>(model));
  }
  [[nodiscard]] std::optional<ModelId> find(std::string_view name) const override {
    for (std::size_t i = 0; i < infos_.size(); ++i) {
      if (infos_[i].name == name) return static_cast<ModelId>(i);
    }
    return std::nullopt;
  }
  [[nodiscard]] const model::HostModel& host_model(ModelId model) const override {
    return models_.at(static_cast<std::size_t>(model));
  }

  [[nodiscard]] core::Result<void> pin_for_cuda(backend::Backend& cuda_backend) const override {
    std::lock_guard lock(pin_mutex_);
    if (pinned_) return core::ok();
    std::vector<std::unique_ptr<backend::cuda::HostRegistration>> registrations;
    for (const auto& model : models_) {
      if (!model.buffer || model.buffer->bytes() == 0) continue;
      auto registered = backend::cuda::register_host_memory(cuda_backend, model.buffer->data(), model.buffer->bytes());
      if (!registered.ok()) return registered.error().with_context("host model cache");
      registrations.push_back(std::move(registered).value());
    }
    registrations_ = std::move(registrations);
    pinned_ = true;
    return core::ok();
  }

 private:
  // Declared first so it is destroyed last: buffers it allocated may depend on it (CUDA).
  std::unique_ptr<backend::Backend> allocator_;
  std::vector<ModelInfo> infos_;
  std::vector<model::HostModel> models_;
  // Declared last so they go first: the memory is unregistered before it is freed.
  mutable std::mutex pin_mutex_;
  mutable std::vector<std::unique_ptr<backend::cuda::HostRegistration>> registrations_;
  mutable bool pinned_ = false;
};

}  // namespace

core::Result<std::shared_ptr<const HostModelCache>> HostModelCache::load(
    std::span<const ModelSpec> models,
    const std::function<void(int index, int count, std::string_view name)>& progress) {
  if (models.empty()) {
    return core::error(ErrorCode::kInvalidArgument,
                       "host model cache: no models to serve (expected at least one)");
  }
  std::set<std::string> names;
  for (const ModelSpec& spec : models) {
    if (spec.name.empty()) {
      return core::error(ErrorCode::kInvalidArgument,
                         "host model cache: model at '" + spec.path.string() + "' has no name");
    }
    if (!names.insert(spec.name).second) {
      return core::error(ErrorCode::kAlreadyExists,
                         "host model cache: model name '" + spec.name + "' is listed twice");
    }
  }
  auto allocator = backend::cpu::CpuBackend::create({kAllocatorArenaBytes, 1});
  if (!allocator.ok()) return allocator.error();
  backend::Backend& pinned = **allocator;
  auto cache = std::make_shared<HostModelCacheImpl>(std::move(allocator).value());
  const auto count = static_cast<int>(models.size());
  for (int i = 0; i < count; ++i) {
    const ModelSpec& spec = models[static_cast<std::size_t>(i)];
    auto host = model::load_host_model(spec.path, pinned);
    if (!host.ok()) {
      return host.error().with_context("model '" + spec.name + "'");
    }
    const model::ModelConfig& c = host->config;
    ModelInfo info;
    info.name = spec.name;
    info.weight_bytes = host->weight_bytes;
    info.max_context_tokens = c.max_position_embeddings;
    info.kv_bytes_per_token = kv_bytes_per_token(c);
    info.vocab_size = c.vocab_size;
    cache->add(std::move(info), std::move(host).value());
    if (progress) progress(i, count, spec.name);
  }
  return std::shared_ptr<const HostModelCache>(std::move(cache));
}

}  // namespace aegaeon::worker
