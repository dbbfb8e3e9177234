#include "gpu/backend/rope.hpp"

#include <cmath>
#include <numbers>

namespace aegaeon::backend {

std::vector<float> rope_inv_freq(const RopeParams& params, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[static_cast<std::size_t>(i)] = 1.0f / std::pow(params.theta, exponent);
  }
  if (params.scaling == RopeScaling::kLinear) {
    // transformers divides positions by the factor; dividing the frequency is the same product.
    for (float& f : inv_freq) f /= params.factor;
  } else if (params.scaling == RopeScaling::kLlama3) {
    // transformers.modeling_rope_utils._compute_llama3_parameters.
    const float old_context = static_cast<float>(params.original_max_position);
    const float low_wavelen = old_context / params.low_freq_factor;
    const float high_wavelen = old_context / params.high_freq_factor;
    for (float& f : inv_freq) {
      const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
      if (wavelen > low_wavelen) {
        f = f / params.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (old_context / wavelen - params.low_freq_factor) /
                             (params.high_freq_factor - params.low_freq_factor);
        f = (1.0f - smooth) * f / params.factor + smooth * f;
      }
    }
  }
  return inv_freq;
}

}  // namespace aegaeon::backend
