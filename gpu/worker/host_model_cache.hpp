// The host model cache: every served model loaded once into pinned host memory, shared by the
// process's devices (what a switch copies from), with unload and load for the admin API.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/generation.hpp"
#include "core/result.hpp"

namespace aegaeon::model {
struct HostModel;
}  // namespace aegaeon::model
namespace aegaeon::backend {
class Backend;
}  // namespace aegaeon::backend

namespace aegaeon::worker {

using core::ModelId;

/// One model to serve: its name (the API's "model") and its Hugging Face folder.
struct ModelSpec {
  std::string name;
  std::filesystem::path path;
};

/// Facts about a cached model the schedulers need.
struct ModelInfo {
  std::string name;
  std::uint64_t weight_bytes = 0;
  std::int32_t max_context_tokens = 0;    ///< config max_position_embeddings
  std::uint64_t kv_bytes_per_token = 0;
  std::int32_t vocab_size = 0;
};

/// Every served model, loaded once into pinned host memory (the host model cache) and shared by
/// all DeviceWorkers of the process. What each model is (its info, config and tensor layout) is
/// fixed at load; its weights' host memory can be freed and read again while serving (the admin
/// API's unload and load). Safe to share across threads.
class HostModelCache {
 public:
  /// Loads and validates every model; an error names the model and the file/tensor.
  /// `progress` (optional) is called after each model with (index, count, name). With
  /// `read_weights` false every model starts unloaded: only its config and tensor headers are
  /// read and checked, and load_weights reads the weights when they are wanted (a cluster
  /// worker whose host cache holds what the controller places on it).
  static core::Result<std::shared_ptr<HostModelCache>> load(
      std::span<const ModelSpec> models,
      const std::function<void(int index, int count, std::string_view name)>& progress = {},
      bool read_weights = true);
  virtual ~HostModelCache() = default;
  [[nodiscard]] virtual std::int32_t size() const = 0;
  [[nodiscard]] virtual const ModelInfo& info(ModelId model) const = 0;
  /// The id of the model called `name`, if served.
  [[nodiscard]] virtual std::optional<ModelId> find(std::string_view name) const = 0;
  /// The model's tensors in pinned host memory (what a switch copies; benchmarks read it too).
  /// While the model is unloaded its buffer is null; config, tensors and sizes stay.
  [[nodiscard]] virtual const model::HostModel& host_model(ModelId model) const = 0;
  /// Page-locks every model's host memory for the CUDA devices of this process, through
  /// `cuda_backend` (any of them): switches then copy at the full host-to-device bandwidth
  /// instead of being staged through driver buffers. Once per cache: later calls return at
  /// once; the memory stays registered until the cache goes (or the model is unloaded; a model
  /// loaded again is registered again). Thread-safe.
  [[nodiscard]] virtual core::Result<void> pin_for_cuda(backend::Backend& cuda_backend) const = 0;

  // ---- unload and load (admin API) ----------------------------------------------------------
  /// Whether the model's weights are in host memory. Devices refuse to switch to or prefetch a
  /// model that is not (DeviceWorker::switch_model). Thread-safe.
  [[nodiscard]] virtual bool loaded(ModelId model) const = 0;
  /// Unload, step 1: from now on devices refuse to start copying the model's weights.
  virtual void begin_unload(ModelId model) = 0;
  /// Unload, step 2: frees the model's host memory. Call it only after begin_unload and once
  /// every device has forgotten the model (DeviceWorker::forget_model): until then a copy
  /// started earlier may still read it.
  virtual void free_weights(ModelId model) = 0;
  /// Reads an unloaded model's files again (its Hugging Face folder as given at load) and makes
  /// it loaded. The weights may have changed; the layout may not: config.json and every
  /// tensor's name, dtype, shape and offset must be what was loaded at start, since the devices'
  /// regions and runners were built for it — kFailedPrecondition naming what differs (restart
  /// to serve a different model). File errors name the file. One load at a time; blocks for as
  /// long as reading the files takes.
  virtual core::Result<void> load_weights(ModelId model) = 0;
};

}  // namespace aegaeon::worker
