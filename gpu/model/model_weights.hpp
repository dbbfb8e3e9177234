// A model's weights resident in a device region: the device addresses the forward pass uses.
#pragma once

#include <vector>

#include "core/result.hpp"
#include "gpu/backend/backend.hpp"
#include "gpu/model/model_loader.hpp"

namespace aegaeon::model {

/// One decoder layer's weights (biases have data == nullptr when absent).
struct LayerWeights {
  backend::Weight input_norm, q_proj, k_proj, v_proj, q_bias, k_bias, v_bias, o_proj, o_bias;
  backend::Weight q_norm, k_norm;  ///< per-head RMSNorm weights (Qwen3); null otherwise
  backend::Weight post_norm, gate_proj, up_proj, down_proj;
};

/// Device addresses of every weight of a model; lm_head aliases embed_tokens when tied.
struct ModelWeights {
  ModelConfig config;
  backend::Weight embed_tokens, final_norm, lm_head;
  std::vector<LayerWeights> layers;
};

/// Device addresses of `host`'s tensors inside `region`, without copying anything (a switch
/// that copies in chunks, or adopts a prefetch, binds addresses this way).
ModelWeights bind_weights(const HostModel& host, const backend::DeviceRegion& region);

/// Starts copying `host` into `region` on the copy queue (one transfer: the switch path) and
/// records `done`; the weights may be used once compute waits on `done`. kResourceExhausted
/// when the region is too small.
core::Result<ModelWeights> upload_weights(const HostModel& host, backend::Backend& backend,
                                          const backend::DeviceRegion& region,
                                          backend::Event& done);

}  // namespace aegaeon::model
