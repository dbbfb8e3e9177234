#include "gpu/model/model_synthesizer.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu/model/model_loader.hpp"
#include "gpu/model/safetensors.hpp"

namespace aegaeon::model {

namespace {

// splitmix64: a tiny, well-mixed generator whose stream depends only on the seed.
std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char ch : text) hash = (hash ^ ch) * 0x100000001b3ull;
  return hash;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

float round_to(backend::DType dtype, float v) {
  if (dtype == backend::DType::kBF16) return backend::bf16_to_f32(backend::f32_to_bf16(v));
  if (dtype == backend::DType::kF16) return backend::f16_to_f32(backend::f32_to_f16(v));
  return v;
}

}  // namespace

ModelConfig synth_config(Architecture architecture, int hidden_size, int num_layers,
                         int vocab_size) {
  ModelConfig c;
  c.architecture = architecture;
  c.hidden_size = hidden_size;
  c.num_layers = num_layers;
  c.vocab_size = vocab_size;
  c.head_dim = hidden_size >= 512 ? 64 : 16;
  c.num_heads = std::max(2, hidden_size / c.head_dim);
  c.num_kv_heads = std::max(1, c.num_heads / 2);
  c.intermediate_size = (hidden_size * 8 / 3 + 15) / 16 * 16;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-6f;
  c.rope.theta = 10000.0f;
  c.tie_word_embeddings = architecture == Architecture::kQwen2 || architecture == Architecture::kQwen3;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  if (architecture == Architecture::kQwen2 || architecture == Architecture::kQwen3) c.rope.theta = 1000000.0f;
  return c;
}

std::vector<float> synth_tensor_values(const SynthSpec& spec, const std::string& name,
                                       std::size_t count) {
  std::uint64_t state = spec.seed ^ fnv1a(name);
  const ModelConfig& c = spec.config;
  // Uniform in [-a, a]; projections get std 1/sqrt(fan_in) so activations neither vanish nor
  // explode, embeddings std 1 so logits spread and greedy continuations vary.
  float center = 0.0f;
  float half_width;
  if (ends_with(name, "norm.weight")) {
    center = 1.0f;
    half_width = 0.2f;
  } else if (ends_with(name, ".bias")) {
    half_width = 0.1f;
  } else if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
    // Tied: a token's own embedding would dominate its logits and greedy decoding would repeat
    // it forever, so keep embeddings small next to what the layers add to the residual.
    half_width = std::sqrt(3.0f) * (c.tie_word_embeddings ? 0.25f : 1.0f);
  } else {
    const int fan_in = ends_with(name, "down_proj.weight") ? c.intermediate_size
                       : ends_with(name, "o_proj.weight")  ? c.num_heads * c.head_dim
                                                           : c.hidden_size;
    half_width = std::sqrt(3.0f / static_cast<float>(fan_in));
    // Tied: the layers' token-specific output must outweigh the token's own embedding in the
    // residual, or its logit wins every step.
    if (c.tie_word_embeddings && fan_in != c.hidden_size) half_width *= 4.0f;
  }
  std::vector<float> values(count);
  for (float& v : values) {
    const double u = static_cast<double>(splitmix(state) >> 11) * 0x1.0p-53;  // [0, 1)
    v = round_to(spec.dtype, center + half_width * static_cast<float>(2.0 * u - 1.0));
  }
  return values;
}

core::Result<void> write_synthetic_model(const std::filesystem::path& dir, const SynthSpec& spec) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return core::error(core::ErrorCode::kUnavailable,
                       dir.string() + ": cannot create directory (" + ec.message() + ")");
  }
  ModelConfig config = spec.config;
  config.torch_dtype = spec.dtype;
  {
    std::ofstream out(dir / "config.json", std::ios::trunc);
    out << model_config_to_json(config);
    if (!out) {
      return core::error(core::ErrorCode::kUnavailable,
                         (dir / "config.json").string() + ": write failed");
    }
  }
  const int shards = std::max(spec.num_shards, 1);
  std::vector<std::vector<SafetensorsTensor>> per_shard(static_cast<std::size_t>(shards));
  const auto expected = expected_tensors(config);
  std::size_t total_bytes = 0;
  for (const auto& e : expected) {
    if (e.optional) continue;
    std::size_t count = backend::dtype_bytes(spec.dtype);
    for (auto d : e.shape) count *= static_cast<std::size_t>(d);
    total_bytes += count;
  }
  std::size_t done_bytes = 0;
  std::size_t index = 0;
  for (const auto& e : expected) {
    if (e.optional) continue;  // tied lm_head is not stored, as HF does
    std::size_t count = 1;
    for (auto d : e.shape) count *= static_cast<std::size_t>(d);
    const std::vector<float> values = synth_tensor_values(spec, e.name, count);
    SafetensorsTensor t{e.name, spec.dtype, e.shape, {}};
    t.data.resize(count * backend::dtype_bytes(spec.dtype));
    if (spec.dtype == backend::DType::kF32) {
      std::memcpy(t.data.data(), values.data(), t.data.size());
    } else {
      auto* bits = reinterpret_cast<std::uint16_t*>(t.data.data());
      for (std::size_t i = 0; i < count; ++i) {
        bits[i] = spec.dtype == backend::DType::kBF16 ? backend::f32_to_bf16(values[i])
                                                      : backend::f32_to_f16(values[i]);
      }
    }
    done_bytes += t.data.size();
    per_shard[index++ * static_cast<std::size_t>(shards) / expected.size()].push_back(std::move(t));
    if (spec.progress) spec.progress(done_bytes, total_bytes);
  }
  if (shards == 1) return write_safetensors(dir / "model.safetensors", per_shard[0]);
  nlohmann::json weight_map = nlohmann::json::object();
  for (int s = 0; s < shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
    for (const auto& t : per_shard[static_cast<std::size_t>(s)]) weight_map[t.name] = name;
    AEGAEON_TRY(write_safetensors(dir / name, per_shard[static_cast<std::size_t>(s)]));
  }
  std::ofstream out(dir / "model.safetensors.index.json", std::ios::trunc);
  out << nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump(2);
  if (!out) {
    return core::error(core::ErrorCode::kUnavailable,
                       (dir / "model.safetensors.index.json").string() + ": write failed");
  }
  return core::ok();
}

}  // namespace aegaeon::model
