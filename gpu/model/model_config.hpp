// A Hugging Face model's config.json, reduced to what the Llama-family forward pass needs.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "gpu/backend/dtype.hpp"
#include "gpu/backend/rope.hpp"

namespace aegaeon::model {

/// The decoder families we run; all are pre-norm RMSNorm + RoPE + GQA + SwiGLU transformers
/// (Qwen3 adds an RMSNorm over each query and key head before RoPE; Phi-3 stores q/k/v and
/// gate/up each as one fused tensor).
enum class Architecture { kLlama, kQwen2, kMistral, kQwen3, kPhi3 };

/// HF class name of `architecture` ("LlamaForCausalLM", ...).
std::string_view to_string(Architecture architecture);

/// The shape and numerics of a model, validated.
struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  backend::RopeParams rope;
  bool tie_word_embeddings = false;
  /// HF Llama's and Qwen3's attention_bias: q/k/v and o_proj all have biases (Qwen2's and
  /// Mistral's biases follow from the architecture; the key is ignored for them).
  bool attention_bias = false;
  /// Sliding-window attention (Mistral, Qwen2 with use_sliding_window): a query in a windowed
  /// layer sees only the last `sliding_window` positions, itself included; 0: none.
  int sliding_window = 0;
  /// HF Qwen2's max_window_layers: layers below this index attend to everything even when
  /// sliding_window is set; 0 (Mistral) windows every layer.
  int max_window_layers = 0;
  backend::DType torch_dtype = backend::DType::kF32;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  /// Positions a query of `layer` attends to (itself included); 0: the whole context.
  [[nodiscard]] int attention_window(int layer) const {
    return layer >= max_window_layers ? sliding_window : 0;
  }

  /// The architecture reads config.json's attention_bias (LlamaAttention, Qwen3Attention).
  [[nodiscard]] bool reads_attention_bias() const {
    return architecture == Architecture::kLlama || architecture == Architecture::kQwen3;
  }
  /// q/k/v projections have biases: always in Qwen2 (Qwen2Attention), with attention_bias in
  /// Llama and Qwen3.
  [[nodiscard]] bool qkv_bias() const {
    return architecture == Architecture::kQwen2 || (reads_attention_bias() && attention_bias);
  }
  /// o_proj has a bias: only with attention_bias (Qwen2's o_proj has none).
  [[nodiscard]] bool o_proj_bias() const { return reads_attention_bias() && attention_bias; }
  /// Each query and key head is RMS-normalized (weights of head_dim) before RoPE: Qwen3.
  [[nodiscard]] bool qk_norm() const { return architecture == Architecture::kQwen3; }
  /// q/k/v are one `qkv_proj` tensor and gate/up one `gate_up_proj` (Phi3Attention, Phi3MLP).
  [[nodiscard]] bool fused_projections() const { return architecture == Architecture::kPhi3; }
  /// The Qwen2 family's sliding-window keys (use_sliding_window, max_window_layers, layer_types).
  [[nodiscard]] bool qwen_sliding_window() const {
    return architecture == Architecture::kQwen2 || architecture == Architecture::kQwen3;
  }

  /// Parameters of the whole model (embeddings counted once when tied).
  [[nodiscard]] std::size_t num_parameters() const;

  bool operator==(const ModelConfig&) const = default;
};

/// Parses config.json text; `file` names the source in error messages.
core::Result<ModelConfig> parse_model_config(std::string_view json_text, std::string_view file);

/// Reads and parses `dir`/config.json.
core::Result<ModelConfig> load_model_config(const std::filesystem::path& dir);

/// Writes `config` as an HF config.json (used by the synthesizer).
std::string model_config_to_json(const ModelConfig& config);

}  // namespace aegaeon::model
