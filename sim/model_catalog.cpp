#include "sim/model_catalog.hpp"

#include <charconv>

namespace aegaeon::sim {

std::int64_t ModelShape::parameters() const {
  const std::int64_t head_dim = hidden / heads;
  const std::int64_t kv_dim = kv_heads * head_dim;
  std::int64_t attn = hidden * hidden /*q*/ + 2 * hidden * kv_dim /*k,v*/ + hidden * hidden /*o*/;
  if (qkv_bias) attn += hidden + 2 * kv_dim;
  const std::int64_t mlp = 3 * hidden * intermediate;  // gate, up, down
  const std::int64_t norms = 2 * hidden;
  const std::int64_t embed = vocab * hidden * (tied_embeddings ? 1 : 2);
  return embed + layers * (attn + mlp + norms) + hidden;
}

std::int64_t ModelShape::kv_bytes_per_token() const {
  return 2 * layers * kv_heads * (hidden / heads) * dtype_bytes;
}

const std::vector<ModelShape>& model_shapes() {
  // name, layers, hidden, heads, kv_heads, intermediate, vocab, tied, qkv_bias (config.json).
  static const std::vector<ModelShape> shapes{
      {"qwen2_5_7b", 28, 3584, 28, 4, 18944, 152064, false, true},
      {"yi1_5_9b_chat", 48, 4096, 32, 4, 11008, 64000, false, false},
      {"llama2_13b_chat", 40, 5120, 40, 40, 13824, 32000, false, false},
      {"llama2_7b", 32, 4096, 32, 32, 11008, 32000, false, false},
      {"yi1_5_6b_chat", 32, 4096, 32, 4, 11008, 64000, false, false},
      {"internlm2_5_7b_chat", 32, 4096, 32, 8, 14336, 92544, false, false},
      {"qwen_7b", 32, 4096, 32, 32, 11008, 151936, false, true},
      {"qwen_7b_chat", 32, 4096, 32, 32, 11008, 151936, false, true},
      {"qwen_14b_chat", 40, 5120, 40, 40, 13696, 152064, false, true},
      {"qwen1_5_14b_chat", 40, 5120, 40, 40, 13696, 152064, false, true},
      {"baichuan2_13b_chat", 40, 5120, 40, 40, 13696, 125696, false, false},
      {"baichuan_7b", 32, 4096, 32, 32, 11008, 64000, false, false},
  };
  return shapes;
}

core::Result<ModelShape> find_model_shape(std::string_view name) {
  for (const auto& s : model_shapes()) {
    if (s.name == name) return s;
  }
  return core::error(core::ErrorCode::kNotFound,
                     "unknown model '" + std::string(name) +
                         "': expected one of qwen2_5_7b, yi1_5_9b_chat, llama2_13b_chat, llama2_7b, "
                         "yi1_5_6b_chat, internlm2_5_7b_chat, qwen_7b, qwen_7b_chat, qwen_14b_chat, "
                         "qwen1_5_14b_chat, baichuan2_13b_chat, baichuan_7b or synth_model_<i>");
}

const std::vector<DeviceSpec>& device_specs() {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  // Host→device: PCIe Gen5 x16 on H800 (64 GiB/s), Gen4-class 32 GiB/s on the others
  // (PAPER-NOTES "Host→device bandwidth").
  static const std::vector<DeviceSpec> specs{
      {"H100", 80 * kGiB, 32 * kGiB}, {"H800", 80 * kGiB, 64 * kGiB}, {"H20", 96 * kGiB, 32 * kGiB},
      {"A100", 80 * kGiB, 32 * kGiB}, {"A10", 24 * kGiB, 32 * kGiB},
  };
  return specs;
}

core::Result<DeviceSpec> find_device(std::string_view name) {
  for (const auto& d : device_specs()) {
    if (d.name == name) return d;
  }
  return core::error(core::ErrorCode::kNotFound,
                     "unknown device '" + std::string(name) + "': expected H100, H800, H20, A100 or A10");
}

core::Result<std::string> resolve_model_alias(std::string_view trace_name) {
  constexpr std::string_view kSynth = "synth_model_";
  if (trace_name.substr(0, kSynth.size()) == kSynth) {
    const std::string_view digits = trace_name.substr(kSynth.size());
    int index = -1;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || index < 0) {
      return core::error(core::ErrorCode::kInvalidArgument,
                         "model name '" + std::string(trace_name) + "': expected synth_model_<number>");
    }
    const int alias = index % 10;
    return std::string(alias <= 5 ? "qwen2_5_7b" : alias <= 7 ? "yi1_5_9b_chat" : "llama2_13b_chat");
  }
  AEGAEON_TRY(find_model_shape(trace_name));
  return std::string(trace_name);
}

}  // namespace aegaeon::sim
