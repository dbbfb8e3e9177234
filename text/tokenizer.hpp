// Tokenizer: a Hugging Face tokenizer.json (byte-level BPE as GPT-2 / Llama-3 / Qwen2 ship it,
// and SentencePiece-style byte-fallback BPE as Llama-2 / Mistral ship it) in C++, so the proxy
// and the CLI can turn text into token ids and back without Python.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::text {

/// An immutable, thread-safe tokenizer loaded from a tokenizer.json. Cheap to copy (shared).
class Tokenizer {
 public:
  /// Loads `tokenizer_json`; also reads bos/eos from a tokenizer_config.json next to it, if any.
  static core::Result<Tokenizer> load(const std::filesystem::path& tokenizer_json);

  /// Builds a tokenizer from the text of a tokenizer.json; `source` names it in error messages.
  /// `config_json_text` is the optional text of the tokenizer_config.json beside it.
  static core::Result<Tokenizer> from_json(std::string_view json_text, std::string_view source,
                                           std::string_view config_json_text = {});

  /// Token ids of `text` (invalid UTF-8 is first repaired with U+FFFD). With
  /// `add_special_tokens` the post-processor's template (e.g. a leading BOS) is applied.
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens) const;

  /// Text of `ids`; unknown ids are skipped, special added tokens too when `skip_special_tokens`.
  [[nodiscard]] std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const;

  /// The bytes token `id` stands for inside a text (" pre" for byte-level "Ġpre", "\xE2" for a
  /// byte token, " Hello" for SentencePiece "▁Hello"): what logprobs report. May be partial
  /// UTF-8; empty for an unknown id.
  [[nodiscard]] std::string token_bytes(std::int32_t id) const;

  /// Id of a vocabulary or added token, by its token string (e.g. "Ġhello", "<|im_end|>").
  [[nodiscard]] std::optional<std::int32_t> token_to_id(std::string_view token) const;

  /// Token string of an id, as tokenizer.json spells it; nullopt when no token has that id.
  [[nodiscard]] std::optional<std::string_view> id_to_token(std::int32_t id) const;

  /// Size of the id space: the highest token id (vocabulary or added) plus one.
  [[nodiscard]] std::size_t vocab_size() const;

  /// True when `id` is an added token marked special (skipped by decode with skip_special).
  [[nodiscard]] bool is_special(std::int32_t id) const;

  /// Beginning-of-sequence id from tokenizer_config.json, when it names one.
  [[nodiscard]] std::optional<std::int32_t> bos_id() const;
  /// End-of-sequence id from tokenizer_config.json, when it names one.
  [[nodiscard]] std::optional<std::int32_t> eos_id() const;

  /// The resolved tables (tokenizer_impl.hpp); named here only so the loader can build one.
  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace aegaeon::text
