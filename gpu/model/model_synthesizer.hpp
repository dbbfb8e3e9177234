// Writes real Hugging Face model folders (config.json + model.safetensors) with seeded random
// weights of a chosen shape: the models the tests, benchmarks and the embedded demo run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/dtype.hpp"
#include "gpu/model/model_config.hpp"

namespace aegaeon::model {

/// What to synthesize.
struct SynthSpec {
  ModelConfig config;
  backend::DType dtype = backend::DType::kF32;  ///< F32, BF16 or F16
  std::uint64_t seed = 1;
  int num_shards = 1;  ///< > 1 writes model-0000N-of-0000M.safetensors + index.json
  /// Called after each tensor is generated with (bytes so far, total bytes): progress output
  /// for large models. Optional.
  std::function<void(std::size_t done_bytes, std::size_t total_bytes)> progress;
};

/// A small config of `architecture` (Llama: untied GQA; Qwen2: tied with q/k/v biases;
/// Mistral: untied GQA), sized by hidden size, layers and vocab.
ModelConfig synth_config(Architecture architecture, int hidden_size, int num_layers,
                         int vocab_size);

/// The values of tensor `name` (shape from expected_tensors) as the synthesized model stores
/// them, already rounded to spec.dtype: lets tests build an independent reference.
std::vector<float> synth_tensor_values(const SynthSpec& spec, const std::string& name,
                                       std::size_t count);

/// Writes `dir`/config.json and the safetensors file(s); creates `dir` if needed.
core::Result<void> write_synthetic_model(const std::filesystem::path& dir, const SynthSpec& spec);

}  // namespace aegaeon::model
