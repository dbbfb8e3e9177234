// Loads a Hugging Face model folder (config.json + model.safetensors or a sharded
// model.safetensors.index.json) into one aligned pinned host buffer: the host model cache
// entry a switch copies to the device in one transfer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"
#include "gpu/model/model_config.hpp"

namespace aegaeon::model {

/// One weight tensor inside a HostModel's buffer.
struct HostTensor {
  std::string name;
  backend::DType dtype = backend::DType::kF32;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;  ///< bytes from the buffer start (256-byte aligned)
  std::size_t bytes = 0;

  bool operator==(const HostTensor&) const = default;
};

/// A validated model resident in pinned host memory, ready to be copied to a device region of
/// the same size.
struct HostModel {
  ModelConfig config;
  std::unique_ptr<backend::PinnedBuffer> buffer;
  std::vector<HostTensor> tensors;
  std::unordered_map<std::string, std::size_t> index;  ///< name → position in tensors
  std::size_t weight_bytes = 0;                         ///< bytes used in buffer

  /// The tensor called `name`, or nullptr.
  [[nodiscard]] const HostTensor* find(const std::string& name) const;
};

/// A tensor the forward pass needs, with the shape config.json implies.
struct ExpectedTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  bool optional = false;  ///< lm_head.weight when embeddings are tied
};

/// Every tensor `config` requires, in HF naming (model.layers.N.self_attn.q_proj.weight, ...).
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

/// Loads and validates `dir`. Errors name the file and the tensor or key: unknown architecture,
/// missing tensor, a tensor config.json does not imply (old checkpoints' rotary_emb.inv_freq
/// buffers excepted), wrong shape, unsupported dtype, bad header, truncated file, a shard listed
/// in the index that does not exist. With `read_weights` false only config.json and the
/// headers are read and checked: the model's layout, with no buffer (what a host cache holds
/// for a model it may load later).
core::Result<HostModel> load_host_model(const std::filesystem::path& dir,
                                        backend::Backend& backend, bool read_weights = true);

}  // namespace aegaeon::model
