#include "gpu/model/model_loader.hpp"

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "core/file.hpp"
#include "gpu/model/safetensors.hpp"

namespace aegaeon::model {

namespace {

using core::ErrorCode;
constexpr std::size_t kTensorAlignment = 256;

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

// Maps each tensor name to the shard file holding it.
core::Result<std::map<std::string, std::filesystem::path>> weight_files(
    const std::filesystem::path& dir) {
  std::map<std::string, std::filesystem::path> files;
  const auto single = dir / "model.safetensors";
  const auto index_path = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(index_path)) {
    AEGAEON_TRY_ASSIGN(text, core::read_file(index_path));
    auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
        !j["weight_map"].is_object()) {
      return core::error(ErrorCode::kInvalidArgument,
                         index_path.string() + ": key 'weight_map': expected an object of "
                                               "tensor name → shard file");
    }
    for (const auto& [name, shard] : j["weight_map"].items()) {
      if (!shard.is_string()) {
        return core::error(ErrorCode::kInvalidArgument, index_path.string() + ": key 'weight_map." +
                                                            name + "': expected a file name");
      }
      const std::string shard_name = shard.get<std::string>();
      if (shard_name.find('/') != std::string::npos || shard_name.find("..") != std::string::npos) {
        return core::error(ErrorCode::kInvalidArgument, index_path.string() + ": key 'weight_map." +
                                                            name + "': shard '" + shard_name +
                                                            "' must be a plain file name");
      }
      files[name] = dir / shard_name;
    }
    return files;
  }
  if (!std::filesystem::exists(single)) {
    return core::error(ErrorCode::kNotFound,
                       dir.string() + ": neither model.safetensors nor "
                                      "model.safetensors.index.json exists");
  }
  auto entries = read_safetensors_header(single);
  if (!entries.ok()) return entries.error();
  for (const auto& e : *entries) files[e.name] = single;
  return files;
}

}  // namespace

const HostTensor* HostModel::find(const std::string& name) const {
  auto it = index.find(name);
  return it == index.end() ? nullptr : &tensors[it->second];
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const std::int64_t h = c.hidden_size;
  const std::int64_t q = static_cast<std::int64_t>(c.num_heads) * c.head_dim;
  const std::int64_t kv = static_cast<std::int64_t>(c.num_kv_heads) * c.head_dim;
  const std::int64_t inter = c.intermediate_size;
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {h}});
    if (c.fused_projections()) {
      out.push_back({p + "self_attn.qkv_proj.weight", {q + 2 * kv, h}});
    } else {
      out.push_back({p + "self_attn.q_proj.weight", {q, h}});
      out.push_back({p + "self_attn.k_proj.weight", {kv, h}});
      out.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    }
    if (c.qkv_bias()) {
      out.push_back({p + "self_attn.q_proj.bias", {q}});
      out.push_back({p + "self_attn.k_proj.bias", {kv}});
      out.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    if (c.qk_norm()) {
      out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
      out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    }
    out.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (c.o_proj_bias()) out.push_back({p + "self_attn.o_proj.bias", {h}});
    out.push_back({p + "post_attention_layernorm.weight", {h}});
    if (c.fused_projections()) {
      out.push_back({p + "mlp.gate_up_proj.weight", {2 * inter, h}});
    } else {
      out.push_back({p + "mlp.gate_proj.weight", {inter, h}});
      out.push_back({p + "mlp.up_proj.weight", {inter, h}});
    }
    out.push_back({p + "mlp.down_proj.weight", {h, inter}});
  }
  out.push_back({"model.norm.weight", {h}});
  out.push_back({"lm_head.weight", {c.vocab_size, h}, c.tie_word_embeddings});
  return out;
}

core::Result<HostModel> load_host_model(const std::filesystem::path& dir,
                                        backend::Backend& backend, bool read_weights) {
  auto config = load_model_config(dir);
  if (!config.ok()) return config.error();
  auto files = weight_files(dir);
  if (!files.ok()) return files.error();

  // Read each shard's header once.
  std::map<std::filesystem::path, std::map<std::string, SafetensorsEntry>> headers;
  for (const auto& [name, file] : *files) {
    if (headers.count(file) != 0) continue;
    auto entries = read_safetensors_header(file);
    if (!entries.ok()) return entries.error();
    auto& by_name = headers[file];
    for (auto& e : *entries) by_name.emplace(e.name, std::move(e));
  }

  // A tensor the forward pass does not use means config.json and the weights disagree (say,
  // biases without attention_bias): running without it would compute wrong logits silently.
  // Only the RoPE frequencies that transformers before 4.31 saved as a persistent buffer are
  // skipped; they follow from config.json and are recomputed.
  const auto wanted = expected_tensors(*config);
  std::set<std::string_view> wanted_names;
  for (const auto& e : wanted) wanted_names.insert(e.name);
  for (const auto& [file, by_name] : headers) {
    for (const auto& [name, entry] : by_name) {
      if (wanted_names.contains(name) || name.ends_with(".self_attn.rotary_emb.inv_freq")) {
        continue;
      }
      return core::error(ErrorCode::kInvalidArgument,
                         file.string() + ": unexpected tensor '" + name +
                             "' (config.json implies no such tensor: a bias without "
                             "attention_bias? a layer beyond num_hidden_layers?)");
    }
  }

  HostModel model;
  model.config = *config;
  std::vector<std::pair<const SafetensorsEntry*, std::filesystem::path>> sources;
  std::size_t total = 0;
  for (const auto& expected : wanted) {
    auto file_it = files->find(expected.name);
    const SafetensorsEntry* entry = nullptr;
    std::filesystem::path file;
    if (file_it != files->end()) {
      file = file_it->second;
      auto& by_name = headers[file];
      auto it = by_name.find(expected.name);
      if (it == by_name.end()) {
        return core::error(ErrorCode::kNotFound,
                           file.string() + ": missing tensor '" + expected.name +
                               "' (the index lists it in this shard)");
      }
      entry = &it->second;
    }
    if (entry == nullptr) {
      if (expected.optional) continue;
      const auto where = files->empty() ? dir / "model.safetensors" : files->begin()->second;
      return core::error(ErrorCode::kNotFound,
                         where.string() + ": missing tensor '" + expected.name + "' of shape " +
                             shape_string(expected.shape));
    }
    if (entry->shape != expected.shape) {
      return core::error(ErrorCode::kInvalidArgument,
                         file.string() + ": tensor '" + expected.name + "': shape " +
                             shape_string(entry->shape) + ", expected " +
                             shape_string(expected.shape) + " from config.json");
    }
    if (entry->dtype == backend::DType::kI32) {
      return core::error(ErrorCode::kInvalidArgument,
                         file.string() + ": tensor '" + expected.name +
                             "': dtype I32, expected F32, BF16 or F16");
    }
    HostTensor tensor{expected.name, entry->dtype, entry->shape, total, entry->bytes};
    total += (entry->bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    model.index.emplace(tensor.name, model.tensors.size());
    model.tensors.push_back(std::move(tensor));
    sources.emplace_back(entry, file);
  }
  model.weight_bytes = total;
  if (!read_weights) return model;

  auto buffer = backend.allocate_pinned(total);
  if (!buffer.ok()) return buffer.error();
  model.buffer = std::move(buffer).value();
  // Zero the alignment padding so the buffer's bytes depend only on the model.
  std::memset(model.buffer->data(), 0, total);
  std::map<std::filesystem::path, std::ifstream> streams;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    const auto& [entry, file] = sources[i];
    auto& in = streams[file];
    if (!in.is_open()) in.open(file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(entry->file_offset));
    in.read(reinterpret_cast<char*>(model.buffer->data() + model.tensors[i].offset),
            static_cast<std::streamsize>(entry->bytes));
    if (!in) {
      return core::error(ErrorCode::kDataLoss, file.string() + ": tensor '" + entry->name +
                                                   "': read failed (file changed or truncated)");
    }
  }
  return model;
}

}  // namespace aegaeon::model
