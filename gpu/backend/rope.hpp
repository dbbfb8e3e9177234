// Rotary position embedding parameters and the inverse frequencies they define (HF semantics,
// including the "linear" and "llama3" rope_scaling variants).
#pragma once

#include <vector>

namespace aegaeon::backend {

/// Which rope_scaling a model's config.json asks for.
enum class RopeScaling { kNone, kLinear, kLlama3 };

/// Everything the rope op needs besides positions; mirrors config.json's rope keys.
struct RopeParams {
  float theta = 10000.0f;
  RopeScaling scaling = RopeScaling::kNone;
  float factor = 1.0f;                   ///< linear and llama3
  float low_freq_factor = 1.0f;          ///< llama3
  float high_freq_factor = 4.0f;         ///< llama3
  int original_max_position = 8192;      ///< llama3 original_max_position_embeddings

  // Spelled out: CUDA sources include this header as C++17.
  bool operator==(const RopeParams& o) const {
    return theta == o.theta && scaling == o.scaling && factor == o.factor && low_freq_factor == o.low_freq_factor &&
           high_freq_factor == o.high_freq_factor && original_max_position == o.original_max_position;
  }
};

/// The head_dim/2 inverse frequencies, computed as transformers'
/// ROPE_INIT_FUNCTIONS do (float32 arithmetic).
std::vector<float> rope_inv_freq(const RopeParams& params, int head_dim);

}  // namespace aegaeon::backend
