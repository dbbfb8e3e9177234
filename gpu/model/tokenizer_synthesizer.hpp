// The tokenizer files of a synthesized model: a byte-level BPE trained by our own trainer on a
// built-in text, laid out the way the architecture's real models ship theirs (special tokens,
// pre-tokenizer regex, post-processor, chat template), so tests and demos exercise the same
// paths a downloaded model would.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "gpu/model/model_config.hpp"

namespace aegaeon::gpu {

/// tokenizer.json and tokenizer_config.json texts plus the ids config.json and
/// generation_config.json need.
struct SynthTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  std::int32_t bos_id = -1;           ///< the model's beginning-of-text token
  std::vector<std::int32_t> eos_ids;  ///< generation stops at any of these (first: tokenizer eos)
  std::int32_t pad_id = -1;
  std::size_t trained_tokens = 0;     ///< byte and merged tokens (the rest: composed and special)
};

/// Builds the tokenizer of a synthesized `architecture` model with exactly `vocab_size` ids,
/// special tokens included:
///   qwen2:   Qwen2.5 layout: NFC + Qwen2 regex, ChatML template, <|im_end|> ends a turn
///   llama:   Llama-3 layout: Llama-3 regex, ignore_merges, BOS added, Llama-3 template
///   mistral: Mistral NeMo "Tekken" layout (byte-level, not SentencePiece): control tokens
///            <unk> <s> </s> [INST] [/INST] first, Tekken regex, BOS added, [INST] template
/// When the built-in text runs out of pairs before `vocab_size` (it supports ~1,500 merged
/// tokens), the rest are tokens composed of two merged ones, in a fixed order. Deterministic:
/// same arguments, same bytes.
/// kInvalidArgument naming `vocab_size` when it cannot hold 256 bytes + the special tokens,
/// or is too large to fill.
core::Result<SynthTokenizer> synth_tokenizer(model::Architecture architecture, int vocab_size);

/// The smallest vocab_size synth_tokenizer accepts for `architecture`.
int min_synth_vocab_size(model::Architecture architecture);

/// The built-in training text (prose, code, numbers, whitespace, several scripts, emoji).
std::string_view tokenizer_training_text();

/// Writes `tokenizer`'s two files into `dir` (which must exist); errors name the file.
core::Result<void> write_synth_tokenizer(const std::filesystem::path& dir, const SynthTokenizer& tokenizer);

}  // namespace aegaeon::gpu
