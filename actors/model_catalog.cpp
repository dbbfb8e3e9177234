#include "actors/model_catalog.hpp"
#include "core/file.hpp"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace aegaeon::actors {
namespace {

using nlohmann::json;

// `eos_token_id` of a config.json or generation_config.json (an id or a list of ids) added to
// `ids`; the file may be absent or lack the key.
core::Result<void> add_eos_token_ids(const std::filesystem::path& path, std::vector<std::int32_t>& ids) {
  if (!std::filesystem::exists(path)) return core::ok();
  auto text = core::read_file(path);
  if (!text.ok()) return text.error();
  const json config = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return core::error(core::ErrorCode::kInvalidArgument, path.string() + ": not a JSON object");
  }
  auto it = config.find("eos_token_id");
  if (it == config.end() || it->is_null()) return core::ok();
  const json list = it->is_array() ? *it : json::array({*it});
  for (const auto& id : list) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > INT32_MAX) {
      return core::error(core::ErrorCode::kInvalidArgument,
                         path.string() + ": key 'eos_token_id': expected a token id or a list of token ids");
    }
    const auto value = id.get<std::int32_t>();
    if (std::find(ids.begin(), ids.end(), value) == ids.end()) ids.push_back(value);
  }
  return core::ok();
}

}  // namespace

core::Result<core::ServedModel> describe_model(const worker::ModelSpec& spec,
                                               std::int32_t max_context_tokens) {
  core::ServedModel model{spec.name, max_context_tokens, {}, {}, 0, {}};
  auto tokenizer = core::read_file(spec.path / "tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.error().with_context("model '" + spec.name + "'");
  model.tokenizer_json = std::move(*tokenizer);
  auto config_path = spec.path / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    // With a chat_template.jinja beside it folded in: one text carries the template.
    auto config = text::read_tokenizer_config(spec.path);
    if (!config.ok()) return config.error().with_context("model '" + spec.name + "'");
    model.tokenizer_config_json = std::move(*config);
  }
  // Where generation stops: generation_config.json's ids, then config.json's.
  for (const char* file : {"generation_config.json", "config.json"}) {
    if (auto added = add_eos_token_ids(spec.path / file, model.eos_token_ids); !added.ok()) {
      return added.error().with_context("model '" + spec.name + "'");
    }
  }
  return model;
}

core::Result<std::shared_ptr<const ModelCatalog>> ModelCatalog::load(
    std::span<const worker::ModelSpec> specs, const worker::HostModelCache& cache) {
  std::vector<core::ServedModel> models;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto model = describe_model(specs[i], cache.info(static_cast<core::ModelId>(i)).max_context_tokens);
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
    auto tokenizer = text::Tokenizer::from_json(model.tokenizer_json, model.name + "/tokenizer.json",
                                               model.tokenizer_config_json);
    if (!tokenizer.ok()) return tokenizer.error().with_context("model '" + model.name + "'");
    CatalogEntry entry{static_cast<core::ModelId>(i), model.name, *tokenizer, std::nullopt, {}, {}, 0,
                       std::make_shared<text::StructuredOutputs>(*tokenizer)};
    if (model.tokenizer_config_json.empty()) {
      entry.no_chat_template_reason = "the model has no tokenizer_config.json";
    } else {
      // A model without a usable template still serves /v1/completions; chat says why not.
      auto chat = text::ChatTemplate::from_config_json(model.tokenizer_config_json,
                                                      model.name + "/tokenizer_config.json");
      if (chat.ok()) {
        entry.chat_template = std::move(*chat);
      } else {
        entry.no_chat_template_reason = chat.error().message;
      }
    }
    // Generation stops at the folder's eos ids (generation_config.json, config.json) and the
    // tokenizer's eos token.
    entry.eos_ids = model.eos_token_ids;
    if (auto eos = entry.tokenizer.eos_id();
        eos && std::find(entry.eos_ids.begin(), entry.eos_ids.end(), *eos) == entry.eos_ids.end()) {
      entry.eos_ids.push_back(*eos);
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
