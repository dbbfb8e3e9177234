// Shapes of real models (from their Hugging Face configs) and of the devices they run on, so
// the simulator derives weight bytes, KV bytes per token and switch times from first principles.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::sim {

/// The config.json numbers that decide a decoder-only model's memory footprint.
struct ModelShape {
  std::string name;          ///< profile name, e.g. "qwen2_5_7b"
  std::int64_t layers = 0;
  std::int64_t hidden = 0;
  std::int64_t heads = 0;
  std::int64_t kv_heads = 0;
  std::int64_t intermediate = 0;
  std::int64_t vocab = 0;
  bool tied_embeddings = false;
  bool qkv_bias = false;
  std::int64_t dtype_bytes = 2;  ///< bf16/fp16

  /// Parameters: embeddings (+ untied head) + per layer attention, SwiGLU MLP and norms.
  [[nodiscard]] std::int64_t parameters() const;
  /// Weight bytes at dtype_bytes per parameter.
  [[nodiscard]] std::int64_t weight_bytes() const { return parameters() * dtype_bytes; }
  /// KV cache bytes one token occupies: 2 (K and V) · layers · kv_heads · head_dim · dtype.
  [[nodiscard]] std::int64_t kv_bytes_per_token() const;
};

/// A device kind: memory and host→device bandwidth.
struct DeviceSpec {
  std::string name;
  double memory_bytes = 0.0;
  double h2d_bytes_per_s = 0.0;
};

/// Every model shape the simulator knows.
const std::vector<ModelShape>& model_shapes();
/// The shape with this profile name (e.g. "llama2_13b_chat").
core::Result<ModelShape> find_model_shape(std::string_view name);
/// Every device kind the simulator knows (H100, H800, H20, A10, A100).
const std::vector<DeviceSpec>& device_specs();
/// The device with this name (case-sensitive, e.g. "H800").
core::Result<DeviceSpec> find_device(std::string_view name);
/// The real model a trace's model name stands for: `synth_model_i` → the artifact's alias by
/// i % 10 (0–5 qwen2_5_7b, 6–7 yi1_5_9b_chat, 8–9 llama2_13b_chat); a known profile name maps
/// to itself.
core::Result<std::string> resolve_model_alias(std::string_view trace_name);

}  // namespace aegaeon::sim
