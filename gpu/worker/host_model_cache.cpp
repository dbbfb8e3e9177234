#include "gpu/worker/host_model_cache.hpp"

#include <atomic>
#include <mutex>
#include <stdexcept>
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

// What a reload must keep for the devices' regions and runners to stay valid.
std::string layout_difference(const model::HostModel& before, const model::HostModel& after) {
  if (!(before.config == after.config)) return "config.json differs";
  if (before.weight_bytes != after.weight_bytes) {
    return "the weights take " + std::to_string(after.weight_bytes) + " bytes instead of " +
           std::to_string(before.weight_bytes);
  }
  if (before.tensors.size() != after.tensors.size()) {
    return std::to_string(after.tensors.size()) + " tensors instead of " + std::to_string(before.tensors.size());
  }
  for (std::size_t i = 0; i < before.tensors.size(); ++i) {
    if (!(before.tensors[i] == after.tensors[i])) {
      return "tensor '" + after.tensors[i].name + "' differs in name, dtype, shape or place";
    }
  }
  return {};
}

class HostModelCacheImpl final : public HostModelCache {
 public:
  explicit HostModelCacheImpl(std::unique_ptr<backend::Backend> allocator)
      : allocator_(std::move(allocator)) {}

  void add(ModelSpec spec, ModelInfo info, model::HostModel host) {
    specs_.push_back(std::move(spec));
    infos_.push_back(std::move(info));
    models_.push_back(std::move(host));
  }
  // Once every model is added: all of them start loaded, or all unloaded (layouts only).
  void seal(bool loaded) {
    loaded_ = std::make_unique<std::atomic<bool>[]>(models_.size());
    for (std::size_t i = 0; i < models_.size(); ++i) loaded_[i].store(loaded);
    registrations_.resize(models_.size());
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
    if (cuda_device_) return core::ok();
    auto device = backend::cuda::parse_cuda_device(cuda_backend.name());  // "cuda:N"
    if (!device.ok()) return device.error().with_context("host model cache: pin_for_cuda");
    for (std::size_t m = 0; m < models_.size(); ++m) AEGAEON_TRY(register_for_cuda(m, *device));
    cuda_device_ = *device;
    return core::ok();
  }

  [[nodiscard]] bool loaded(ModelId model) const override { return loaded_[index(model)].load(); }

  void begin_unload(ModelId model) override { loaded_[index(model)].store(false); }

  void free_weights(ModelId model) override {
    const std::size_t m = index(model);
    if (loaded_[m].load()) return;  // begin_unload first: a device may be about to copy it
    std::lock_guard lock(pin_mutex_);
    registrations_[m].reset();  // unregistered before it is freed
    models_[m].buffer.reset();
  }

  core::Result<void> load_weights(ModelId model) override {
    const std::size_t m = index(model);
    std::lock_guard load_lock(load_mutex_);
    if (loaded_[m].load()) return core::ok();
    const ModelSpec& spec = specs_[m];
    auto host = model::load_host_model(spec.path, *allocator_);
    if (!host.ok()) return host.error().with_context("model '" + spec.name + "'");
    if (auto difference = layout_difference(models_[m], *host); !difference.empty()) {
      return core::error(ErrorCode::kFailedPrecondition,
                         "model '" + spec.name + "' at '" + spec.path.string() + "' changed since start: " +
                             difference + " (a reload keeps the layout; restart to serve a different model)");
    }
    {
      std::lock_guard lock(pin_mutex_);
      models_[m].buffer = std::move(host->buffer);
      if (cuda_device_) AEGAEON_TRY(register_for_cuda(m, *cuda_device_));
    }
    loaded_[m].store(true);
    return core::ok();
  }

 private:
  [[nodiscard]] std::size_t index(ModelId model) const {
    if (model < 0 || model >= size()) throw std::out_of_range("host model cache: no model id " + std::to_string(model));
    return static_cast<std::size_t>(model);
  }

  // Page-locks model m's buffer on the CUDA device `device` (pin_mutex_ held).
  core::Result<void> register_for_cuda(std::size_t m, int device) const {
    const auto& buffer = models_[m].buffer;
    if (!buffer || buffer->bytes() == 0) return core::ok();
    auto registered = backend::cuda::register_host_memory(device, buffer->data(), buffer->bytes());
    if (!registered.ok()) return registered.error().with_context("host model cache, model '" + infos_[m].name + "'");
    registrations_[m] = std::move(registered).value();
    return core::ok();
  }

  // Declared first so it is destroyed last: buffers it allocated may depend on it (CUDA).
  std::unique_ptr<backend::Backend> allocator_;
  std::vector<ModelSpec> specs_;
  std::vector<ModelInfo> infos_;
  // The layout of each model is fixed; only its buffer comes and goes (load_weights,
  // free_weights), while devices cannot copy it (loaded_ false).
  std::vector<model::HostModel> models_;
  std::unique_ptr<std::atomic<bool>[]> loaded_;
  std::mutex load_mutex_;
  // Declared last so they go first: the memory is unregistered before it is freed.
  mutable std::mutex pin_mutex_;
  mutable std::vector<std::unique_ptr<backend::cuda::HostRegistration>> registrations_;
  mutable std::optional<int> cuda_device_;  ///< set once pinned: a reload registers there too
};

}  // namespace

core::Result<std::shared_ptr<HostModelCache>> HostModelCache::load(
    std::span<const ModelSpec> models,
    const std::function<void(int index, int count, std::string_view name)>& progress, bool read_weights) {
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
    auto host = model::load_host_model(spec.path, pinned, read_weights);
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
    cache->add(spec, std::move(info), std::move(host).value());
    if (progress) progress(i, count, spec.name);
  }
  cache->seal(read_weights);
  return std::shared_ptr<HostModelCache>(std::move(cache));
}

}  // namespace aegaeon::worker
