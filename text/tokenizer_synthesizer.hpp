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

namespace aegaeon::text {

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

/// How a family's real tokenizer files are laid out (the model synthesizer picks one per
/// architecture).
enum class TokenizerLayout {
  kQwen2,          ///< Qwen2.5: NFC + Qwen2 regex, ChatML template, <|im_end|> ends a turn
  kLlama3,         ///< Llama-3: Llama-3 regex, ignore_merges, BOS added, Llama-3 template
  kMistralTekken,  ///< Mistral NeMo "Tekken" (byte-level, not SentencePiece): control tokens
                   ///< <unk> <s> </s> [INST] [/INST] first, Tekken regex, BOS added, [INST] template
};

/// "qwen2", "llama3", "mistral-tekken".
std::string_view to_string(TokenizerLayout layout);

/// Builds the tokenizer of a synthesized model laid out as `layout`, with exactly `vocab_size`
/// ids, special tokens included.
/// When the built-in text runs out of pairs before `vocab_size` (it supports ~1,500 merged
/// tokens), the rest are tokens composed of two merged ones, in a fixed order. Deterministic:
/// same arguments, same bytes.
/// kInvalidArgument naming `vocab_size` when it cannot hold 256 bytes + the special tokens,
/// or is too large to fill.
core::Result<SynthTokenizer> synth_tokenizer(TokenizerLayout layout, int vocab_size);

/// The smallest vocab_size synth_tokenizer accepts for `layout`.
int min_synth_vocab_size(TokenizerLayout layout);

/// The built-in training text (prose, code, numbers, whitespace, several scripts, emoji).
std::string_view tokenizer_training_text();

/// Writes `tokenizer`'s two files into `dir` (which must exist); errors name the file.
core::Result<void> write_synth_tokenizer(const std::filesystem::path& dir, const SynthTokenizer& tokenizer);

}  // namespace aegaeon::text
