#include "actors/model_catalog.hpp"

#include <filesystem>

namespace aegaeon::actors {

core::Result<std::shared_ptr<const ModelCatalog>> ModelCatalog::load(
    std::span<const worker::ModelSpec> specs, const worker::HostModelCache& cache) {
  auto catalog = std::make_shared<ModelCatalog>();
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& spec = specs[i];
    auto tokenizer = gpu::Tokenizer::load(spec.path / "tokenizer.json");
    if (!tokenizer.ok()) return tokenizer.error().with_context("model '" + spec.name + "'");
    CatalogEntry entry{static_cast<worker::ModelId>(i), spec.name, *tokenizer, std::nullopt, {}, 0};
    auto config_path = spec.path / "tokenizer_config.json";
    if (std::filesystem::exists(config_path)) {
      auto chat = gpu::ChatTemplate::load(config_path);
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
    entry.max_context_tokens = cache.info(entry.id).max_context_tokens;
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
