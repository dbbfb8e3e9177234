// ModelCatalog: what the front door knows of each served model — its name, tokenizer, chat
// template, end-of-sequence ids and context length. Immutable once loaded; shared by the proxy
// and the HTTP routes.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/cluster_types.hpp"
#include "core/result.hpp"
#include "text/chat_template.hpp"
#include "text/constrained_decoding.hpp"
#include "text/tokenizer.hpp"
#include "gpu/worker/device_worker.hpp"

namespace aegaeon::actors {

/// One served model as the front door sees it.
struct CatalogEntry {
  core::ModelId id = 0;
  std::string name;
  text::Tokenizer tokenizer;
  std::optional<text::ChatTemplate> chat_template;  ///< absent: only /v1/completions
  std::string no_chat_template_reason;              ///< why chat_template is absent
  std::vector<std::int32_t> eos_ids;                 ///< tokens that end a generation
  std::int32_t max_context_tokens = 0;
  /// Structured outputs over this model's vocabulary: CatalogEntry::constrain's schemas.
  std::shared_ptr<text::StructuredOutputs> structured_outputs;

  /// The start of an output that must be `output` (SamplingParams::structured), for a job's
  /// constraint; a schema it cannot enforce is kInvalidArgument naming the field under `path`.
  [[nodiscard]] core::Result<std::shared_ptr<const core::TokenConstraint>> constrain(
      const core::StructuredOutput& output, std::string_view path = "response_format") const {
    return structured_outputs->start(output, path);
  }
};

/// What a worker tells the controller about a model: its tokenizer files' text and context.
core::Result<core::ServedModel> describe_model(const worker::ModelSpec& spec,
                                               std::int32_t max_context_tokens);

/// Every served model, by name and by id.
class ModelCatalog {
 public:
  /// Loads tokenizer.json (+ tokenizer_config.json) of every model; ids follow `specs` order
  /// (the HostModelCache's). Errors name the model and file.
  static core::Result<std::shared_ptr<const ModelCatalog>> load(
      std::span<const worker::ModelSpec> specs, const worker::HostModelCache& cache);

  /// The same from models described in memory (what workers send the controller); ids follow
  /// `models` order. Errors name the model.
  static core::Result<std::shared_ptr<const ModelCatalog>> from_served(
      std::span<const core::ServedModel> models);

  /// The model called `name`, or nullptr.
  [[nodiscard]] const CatalogEntry* find(std::string_view name) const;
  /// The model with id `id`.
  [[nodiscard]] const CatalogEntry& at(core::ModelId id) const { return entries_.at(static_cast<size_t>(id)); }
  /// All models in id order.
  [[nodiscard]] const std::vector<CatalogEntry>& entries() const { return entries_; }

 private:
  std::vector<CatalogEntry> entries_;
};

}  // namespace aegaeon::actors
