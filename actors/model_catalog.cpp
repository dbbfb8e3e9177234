#include "actors/model_catalog.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace aegaeon::actors {
namespace {

core::Result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::error(core::ErrorCode::kNotFound, "cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

core::Result<core::ServedModel> describe_model(const worker::ModelSpec& spec,
                                               std::int32_t max_context_tokens) {
  core::ServedModel model{spec.name, max_context_tokens, {}, {}};
  auto tokenizer = read_text(spec.path / "tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.error().with_context("model '" + spec.name + "'");
  model.tokenizer_json = std::move(*tokenizer);
  auto config_path = spec.path / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    auto config = read_text(config_path);
    if (!config.ok()) return config.error().with_context("model '" + spec.name + "'");
    model.tokenizer_config_json = std::move(*config);
  }
  return model;
}

core::Result<std::shared_ptr<const ModelCatalog>> ModelCatalog::load(
    std::span<const worker::ModelSpec> specs, const worker::HostModelCache& cache) {
  std::vector<core::ServedModel> models;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto model = describe_model(specs[i], cache.info(static_cast<worker::ModelId>(i)).max_context_tokens);
    if (!model.ok()) return model.error();
    models.push_back(std::move(*model));
  }
  return from_served(models);
}

core::Result<std::shared_ptr<const ModelCatalog>> ModelCatalog::from_served(
    std::span<const core::ServedModel> models) {
  auto catalog = std::make_shared<ModelCatalog>();
  for (size_t i = 0; i < models.size(); ++i) {
    const auto& model = models[i];
    auto tokenizer = gpu::Tokenizer::from_json(model.tokenizer_json, model.name + "/tokenizer.json",
                                               model.tokenizer_config_json);
    if (!tokenizer.ok()) return tokenizer.error().with_context("model '" + model.name + "'");
    CatalogEntry entry{static_cast<worker::ModelId>(i), model.name, *tokenizer, std::nullopt, {}, 0};
    if (!model.tokenizer_config_json.empty()) {
      auto chat = gpu::ChatTemplate::from_config_json(model.tokenizer_config_json,
                                                      model.name + "/tokenizer_config.json");
      if (chat.ok()) entry.chat_template = std::move(*chat);  // absent or unknown: completions only
    }
    if (auto eos = entry.tokenizer.eos_id()) entry.eos_ids.push_back(*eos);
    // Chat models end a turn with their template's end-of-turn token.
    for (const char* end_of_turn : {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "</s>"}) {
      if (auto id = entry.tokenizer.token_to_id(end_of_turn)) {
        if (std::find(entry.eos_ids.begin(), entry.eos_ids.end(), *id) == entry.eos_ids.end()) {
          entry.eos_ids.push_back(*id);
        }
      }
    }
    entry.max_context_tokens = model.max_context_tokens;
    catalog->entries_.push_back(std::move(entry));
  }
  return std::shared_ptr<const ModelCatalog>(std::move(catalog));
}

const CatalogEntry* ModelCatalog::find(std::string_view name) const {
  for (const auto& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace aegaeon::actors
