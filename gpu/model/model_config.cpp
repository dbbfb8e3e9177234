#include "gpu/model/model_config.hpp"
#include "core/file.hpp"

#include <nlohmann/json.hpp>

#include <limits>

namespace aegaeon::model {

namespace {

using nlohmann::json;
using core::ErrorCode;

core::Error key_error(std::string_view file, std::string_view key, std::string_view expected) {
  return core::error(ErrorCode::kInvalidArgument, std::string(file) + ": key '" +
                                                      std::string(key) + "': expected " +
                                                      std::string(expected));
}

// Reads a required positive integer key.
core::Result<int> positive_int(const json& j, std::string_view file, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) {
    return core::error(ErrorCode::kInvalidArgument,
                       std::string(file) + ": missing key '" + key + "'");
  }
  if (!it->is_number_integer() || it->get<long long>() <= 0 ||
      it->get<long long>() > (1LL << 30)) {
    return key_error(file, key, "a positive integer");
  }
  return static_cast<int>(it->get<long long>());
}

core::Result<float> positive_float(const json& j, std::string_view file, const char* key,
                                   float fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  // Checked as the float it becomes: 1e-52 would turn into 0, and 1e300 does not fit at all.
  const double value = it->is_number() ? it->get<double>() : 0.0;
  if (!(value > 0.0 && value <= std::numeric_limits<float>::max()) || static_cast<float>(value) <= 0.0f) {
    return key_error(file, key, "a positive number a 32-bit float can hold");
  }
  return static_cast<float>(value);
}

core::Result<bool> boolean(const json& j, std::string_view file, const char* key, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return key_error(file, key, "true or false");
  return it->get<bool>();
}

core::Result<backend::RopeParams> parse_rope(const json& j, std::string_view file) {
  backend::RopeParams rope;
  auto theta = positive_float(j, file, "rope_theta", 10000.0f);
  if (!theta.ok()) return theta.error();
  rope.theta = *theta;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return rope;
  if (!it->is_object()) return key_error(file, "rope_scaling", "an object or null");
  const json& s = *it;
  std::string type;
  if (auto t = s.find("rope_type"); t != s.end() && t->is_string()) {
    type = t->get<std::string>();
  } else if (auto t2 = s.find("type"); t2 != s.end() && t2->is_string()) {
    type = t2->get<std::string>();
  } else {
    return key_error(file, "rope_scaling.rope_type", "a string");
  }
  if (type == "default") return rope;
  if (type != "linear" && type != "llama3") {  // before the keys a type we do not run would need
    return key_error(file, "rope_scaling.rope_type", "one of default, linear, llama3 (got '" + type + "')");
  }
  auto factor = positive_float(s, file, "factor", 0.0f);
  if (!factor.ok()) return factor.error();
  if (*factor <= 0.0f) return key_error(file, "rope_scaling.factor", "a positive number");
  rope.factor = *factor;
  if (type == "linear") {
    rope.scaling = backend::RopeScaling::kLinear;
    return rope;
  }
  // llama3
  rope.scaling = backend::RopeScaling::kLlama3;
  auto low = positive_float(s, file, "low_freq_factor", 1.0f);
  auto high = positive_float(s, file, "high_freq_factor", 4.0f);
  if (!low.ok()) return low.error();
  if (!high.ok()) return high.error();
  if (*high <= *low) {
    return key_error(file, "rope_scaling.high_freq_factor", "a number above low_freq_factor");
  }
  rope.low_freq_factor = *low;
  rope.high_freq_factor = *high;
  auto original = positive_int(s, file, "original_max_position_embeddings");
  if (!original.ok()) return original.error();
  rope.original_max_position = *original;
  return rope;
}

// Reads an optional integer key in [0, 2^30].
core::Result<int> non_negative_int(const json& j, std::string_view file, const char* key,
                                   int fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<long long>() < 0 ||
      it->get<long long>() > (1LL << 30)) {
    return key_error(file, key, "a non-negative integer");
  }
  return static_cast<int>(it->get<long long>());
}

// Sets c.sliding_window and c.max_window_layers as transformers' configs define them:
// MistralConfig windows every layer (sliding_window defaults to 4096, null turns it off), and
// so does Phi3Config when it has one (no default);
// Qwen2Config and Qwen3Config only with use_sliding_window, and then only the layers from
// max_window_layers (default 28) on, or those its layer_types list marks "sliding_attention".
// Llama has none.
core::Result<void> parse_sliding_window(const json& j, std::string_view file, ModelConfig& c) {
  if (c.architecture == Architecture::kLlama) return core::ok();
  const bool qwen2 = c.qwen_sliding_window();
  if (qwen2) {
    auto use = boolean(j, file, "use_sliding_window", false);
    if (!use.ok()) return use.error();
    if (!*use) return core::ok();
  }
  int window = c.architecture == Architecture::kMistral ? 4096 : 0;
  if (auto it = j.find("sliding_window"); it != j.end()) {
    if (it->is_null()) return core::ok();
    auto value = positive_int(j, file, "sliding_window");
    if (!value.ok()) return key_error(file, "sliding_window", "a positive integer or null");
    window = *value;
  }
  if (window == 0) return core::ok();
  c.sliding_window = window;
  if (!qwen2) return core::ok();
  auto first_windowed = non_negative_int(j, file, "max_window_layers", 28);
  if (!first_windowed.ok()) return first_windowed.error();
  c.max_window_layers = *first_windowed;
  auto types = j.find("layer_types");
  if (types == j.end() || types->is_null()) return core::ok();
  // Newer transformers write the per-layer result of max_window_layers out; we run the
  // windowed layers as a suffix, which is every list Qwen2Config itself produces.
  const char* expected =
      "a list of num_hidden_layers entries: \"full_attention\" layers, then "
      "\"sliding_attention\" layers";
  if (!types->is_array() || types->size() != static_cast<std::size_t>(c.num_layers)) {
    return key_error(file, "layer_types", expected);
  }
  c.max_window_layers = c.num_layers;
  for (int l = c.num_layers - 1; l >= 0; --l) {
    const json& type = (*types)[static_cast<std::size_t>(l)];
    if (type == "sliding_attention" && c.max_window_layers == l + 1) {
      c.max_window_layers = l;
    } else if (type != "full_attention") {
      return key_error(file, "layer_types", expected);
    }
  }
  return core::ok();
}

}  // namespace

std::string_view to_string(Architecture architecture) {
  switch (architecture) {
    case Architecture::kLlama: return "LlamaForCausalLM";
    case Architecture::kQwen2: return "Qwen2ForCausalLM";
    case Architecture::kMistral: return "MistralForCausalLM";
    case Architecture::kQwen3: return "Qwen3ForCausalLM";
    case Architecture::kPhi3: return "Phi3ForCausalLM";
  }
  return "?";
}

std::size_t ModelConfig::num_parameters() const {
  const auto h = static_cast<std::size_t>(hidden_size);
  // Widen before multiplying: heads (up to 2^30) times head_dim overflows int.
  const auto q = static_cast<std::size_t>(num_heads) * static_cast<std::size_t>(head_dim);
  const auto kv = static_cast<std::size_t>(num_kv_heads) * static_cast<std::size_t>(head_dim);
  const auto inter = static_cast<std::size_t>(intermediate_size);
  const auto vocab = static_cast<std::size_t>(vocab_size);
  std::size_t layer = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * inter;
  if (qkv_bias()) layer += q + 2 * kv;
  if (qk_norm()) layer += 2 * static_cast<std::size_t>(head_dim);
  if (o_proj_bias()) layer += h;
  std::size_t total = static_cast<std::size_t>(num_layers) * layer + vocab * h + h;
  if (!tie_word_embeddings) total += vocab * h;
  return total;
}

core::Result<ModelConfig> parse_model_config(std::string_view json_text, std::string_view file) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return core::error(ErrorCode::kInvalidArgument,
                       std::string(file) + ": not a JSON object (malformed JSON?)");
  }
  ModelConfig c;
  auto arch_it = j.find("architectures");
  if (arch_it == j.end() || !arch_it->is_array() || arch_it->empty() ||
      !(*arch_it)[0].is_string()) {
    return key_error(file, "architectures", "a list with the model class name");
  }
  const std::string arch = (*arch_it)[0].get<std::string>();
  if (arch == "LlamaForCausalLM") {
    c.architecture = Architecture::kLlama;
  } else if (arch == "Qwen2ForCausalLM") {
    c.architecture = Architecture::kQwen2;
  } else if (arch == "MistralForCausalLM") {
    c.architecture = Architecture::kMistral;
  } else if (arch == "Qwen3ForCausalLM") {
    c.architecture = Architecture::kQwen3;
  } else if (arch == "Phi3ForCausalLM") {
    c.architecture = Architecture::kPhi3;
  } else {
    return core::error(ErrorCode::kInvalidArgument,
                       std::string(file) + ": key 'architectures': unsupported architecture '" +
                           arch + "' (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                                  "Qwen3ForCausalLM, MistralForCausalLM, Phi3ForCausalLM)");
  }
#define AEGAEON_READ_INT(field, key)                 \
  do {                                               \
    auto value_ = positive_int(j, file, key);        \
    if (!value_.ok()) return value_.error();         \
    c.field = *value_;                               \
  } while (false)
  AEGAEON_READ_INT(hidden_size, "hidden_size");
  AEGAEON_READ_INT(intermediate_size, "intermediate_size");
  AEGAEON_READ_INT(num_layers, "num_hidden_layers");
  AEGAEON_READ_INT(num_heads, "num_attention_heads");
  AEGAEON_READ_INT(vocab_size, "vocab_size");
  AEGAEON_READ_INT(max_position_embeddings, "max_position_embeddings");
#undef AEGAEON_READ_INT
  c.num_kv_heads = c.num_heads;
  if (j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()) {
    auto kv = positive_int(j, file, "num_key_value_heads");
    if (!kv.ok()) return kv.error();
    c.num_kv_heads = *kv;
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return key_error(file, "num_key_value_heads", "a divisor of num_attention_heads");
  }
  c.head_dim = c.hidden_size / c.num_heads;
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    auto hd = positive_int(j, file, "head_dim");
    if (!hd.ok()) return hd.error();
    c.head_dim = *hd;
  } else if (c.hidden_size % c.num_heads != 0) {
    return key_error(file, "hidden_size", "a multiple of num_attention_heads");
  }
  if (c.head_dim % 2 != 0 || c.head_dim > 512) {
    return key_error(file, "head_dim", "an even number up to 512");
  }
  auto eps = positive_float(j, file, "rms_norm_eps", 1e-6f);
  if (!eps.ok()) return eps.error();
  c.rms_norm_eps = *eps;
  auto rope = parse_rope(j, file);
  if (!rope.ok()) return rope.error();
  c.rope = *rope;
  auto tie = boolean(j, file, "tie_word_embeddings", false);
  if (!tie.ok()) return tie.error();
  c.tie_word_embeddings = *tie;
  // LlamaAttention and Qwen3Attention read attention_bias (bias on q/k/v and o_proj);
  // Qwen2Attention always has q/k/v biases and Mistral never has any, whatever the key says.
  // Only LlamaMLP reads mlp_bias, which we refuse rather than run without the biases.
  if (c.reads_attention_bias()) {
    auto bias = boolean(j, file, "attention_bias", false);
    if (!bias.ok()) return bias.error();
    c.attention_bias = *bias;
  }
  if (c.architecture == Architecture::kLlama) {
    auto mlp_bias = boolean(j, file, "mlp_bias", false);
    if (!mlp_bias.ok()) return mlp_bias.error();
    if (*mlp_bias) return key_error(file, "mlp_bias", "false (MLP biases are not supported)");
  }
  if (auto act = j.find("hidden_act"); act != j.end() && !act->is_null()) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      return key_error(file, "hidden_act", "\"silu\"");
    }
  }
  auto window = parse_sliding_window(j, file, c);
  if (!window.ok()) return window.error();
  // Phi-4-mini rotates only part of each head; our RoPE rotates all of it.
  if (auto partial = j.find("partial_rotary_factor"); partial != j.end() && !partial->is_null()) {
    if (!partial->is_number() || partial->get<double>() != 1.0) {
      return key_error(file, "partial_rotary_factor", "1.0 (partial rotary embeddings are not supported)");
    }
  }
  if (auto dt = j.find("torch_dtype"); dt != j.end() && dt->is_string()) {
    const std::string name = dt->get<std::string>();
    if (name == "bfloat16") c.torch_dtype = backend::DType::kBF16;
    if (name == "float16") c.torch_dtype = backend::DType::kF16;
  }
  if (auto bos = j.find("bos_token_id"); bos != j.end() && bos->is_number_integer()) {
    c.bos_token_id = bos->get<int>();
  }
  if (auto eos = j.find("eos_token_id"); eos != j.end()) {
    if (eos->is_number_integer()) {
      c.eos_token_ids.push_back(eos->get<int>());
    } else if (eos->is_array()) {
      for (const auto& id : *eos) {
        if (!id.is_number_integer()) return key_error(file, "eos_token_id", "integers");
        c.eos_token_ids.push_back(id.get<int>());
      }
    }
  }
  return c;
}

core::Result<ModelConfig> load_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  AEGAEON_TRY_ASSIGN(text, core::read_file(path));
  return parse_model_config(text, path.string());
}

std::string model_config_to_json(const ModelConfig& c) {
  json j;
  j["architectures"] = {std::string(to_string(c.architecture))};
  j["model_type"] = c.architecture == Architecture::kLlama   ? "llama"
                    : c.architecture == Architecture::kQwen2 ? "qwen2"
                    : c.architecture == Architecture::kQwen3 ? "qwen3"
                    : c.architecture == Architecture::kPhi3  ? "phi3"
                                                             : "mistral";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope.theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.reads_attention_bias()) j["attention_bias"] = c.attention_bias;
  if (c.architecture != Architecture::kLlama) {
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
  }
  if (c.qwen_sliding_window()) {
    j["use_sliding_window"] = c.sliding_window > 0;
    j["max_window_layers"] = c.max_window_layers;
  }
  switch (c.rope.scaling) {
    case backend::RopeScaling::kNone: j["rope_scaling"] = nullptr; break;
    case backend::RopeScaling::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope.factor}};
      break;
    case backend::RopeScaling::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope.factor},
                           {"low_freq_factor", c.rope.low_freq_factor},
                           {"high_freq_factor", c.rope.high_freq_factor},
                           {"original_max_position_embeddings", c.rope.original_max_position}};
      break;
  }
  j["torch_dtype"] = c.torch_dtype == backend::DType::kBF16  ? "bfloat16"
                     : c.torch_dtype == backend::DType::kF16 ? "float16"
                                                             : "float32";
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  return j.dump(2);
}

}  // namespace aegaeon::model
