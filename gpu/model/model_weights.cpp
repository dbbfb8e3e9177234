#include "gpu/model/model_weights.hpp"

#include <cstddef>

namespace aegaeon::model {
namespace {

// The weight `elements` elements after `w` (same dtype).
backend::Weight rows_after(backend::Weight w, std::size_t elements) {
  if (w.data == nullptr) return w;
  return backend::Weight{static_cast<const std::byte*>(w.data) + elements * backend::dtype_bytes(w.dtype), w.dtype};
}

}  // namespace

ModelWeights bind_weights(const HostModel& host, const backend::DeviceRegion& region) {
  auto at = [&](const std::string& name) -> backend::Weight {
    const HostTensor* t = host.find(name);
    if (t == nullptr) return backend::Weight{};
    return backend::Weight{region.at(t->offset), t->dtype};
  };
  ModelWeights w;
  w.config = host.config;
  w.embed_tokens = at("model.embed_tokens.weight");
  w.final_norm = at("model.norm.weight");
  w.lm_head = at("lm_head.weight");
  if (w.lm_head.data == nullptr) w.lm_head = w.embed_tokens;  // tied
  for (int l = 0; l < host.config.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights layer;
    layer.input_norm = at(p + "input_layernorm.weight");
    const ModelConfig& c = host.config;
    const auto h = static_cast<std::size_t>(c.hidden_size);
    if (c.fused_projections()) {
      // Phi-3: the fused tensors' row blocks are the projections (q, k, v; gate, up), so each
      // is an address inside the fused one and nothing is copied or split.
      const auto q_rows = static_cast<std::size_t>(c.num_heads) * static_cast<std::size_t>(c.head_dim);
      const auto kv_rows = static_cast<std::size_t>(c.num_kv_heads) * static_cast<std::size_t>(c.head_dim);
      layer.q_proj = at(p + "self_attn.qkv_proj.weight");
      layer.k_proj = rows_after(layer.q_proj, q_rows * h);
      layer.v_proj = rows_after(layer.k_proj, kv_rows * h);
      layer.gate_proj = at(p + "mlp.gate_up_proj.weight");
      layer.up_proj = rows_after(layer.gate_proj, static_cast<std::size_t>(c.intermediate_size) * h);
    } else {
      layer.q_proj = at(p + "self_attn.q_proj.weight");
      layer.k_proj = at(p + "self_attn.k_proj.weight");
      layer.v_proj = at(p + "self_attn.v_proj.weight");
      layer.gate_proj = at(p + "mlp.gate_proj.weight");
      layer.up_proj = at(p + "mlp.up_proj.weight");
    }
    layer.q_bias = at(p + "self_attn.q_proj.bias");
    layer.k_bias = at(p + "self_attn.k_proj.bias");
    layer.v_bias = at(p + "self_attn.v_proj.bias");
    layer.q_norm = at(p + "self_attn.q_norm.weight");
    layer.k_norm = at(p + "self_attn.k_norm.weight");
    layer.o_proj = at(p + "self_attn.o_proj.weight");
    layer.o_bias = at(p + "self_attn.o_proj.bias");
    layer.post_norm = at(p + "post_attention_layernorm.weight");
    layer.down_proj = at(p + "mlp.down_proj.weight");
    w.layers.push_back(layer);
  }
  return w;
}

core::Result<ModelWeights> upload_weights(const HostModel& host, backend::Backend& backend,
                                          const backend::DeviceRegion& region,
                                          backend::Event& done) {
  if (host.weight_bytes > region.bytes) {
    return core::error(core::ErrorCode::kResourceExhausted,
                       "device region '" + region.label + "' has " + std::to_string(region.bytes) +
                           " bytes but the model needs " + std::to_string(host.weight_bytes));
  }
  ModelWeights w = bind_weights(host, region);
  backend.copy(backend::Queue::kCopy, region.data, host.buffer->data(), host.weight_bytes,
               backend::CopyKind::kHostToDevice);
  backend.record(backend::Queue::kCopy, done);
  return w;
}

}  // namespace aegaeon::model
