// IncrementalDecoder: turns generated token ids into text one id at a time for streaming
// (SSE) responses, never emitting half a character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.hpp"

namespace aegaeon::text {

/// Streaming detokenizer: feed generated ids one at a time, get back the text they complete.
/// Holds back text while it ends in an incomplete UTF-8 sequence (or a partial run of
/// byte-fallback tokens), the way Hugging Face's DecodeStream does, so no client ever sees a
/// broken character. Keeps only a short window of ids; text that stays broken for more than
/// kMaxHeldIds ids (invalid bytes, not a partial character) is emitted with U+FFFD.
class IncrementalDecoder {
 public:
  /// A UTF-8 character spans at most 4 byte tokens; holding more means the bytes are invalid.
  static constexpr std::size_t kMaxHeldIds = 8;

  /// Decodes with `tokenizer` (shares it; tokenizers are immutable).
  IncrementalDecoder(Tokenizer tokenizer, bool skip_special_tokens);

  /// Adds one id; returns the newly completed text (often empty while a character is partial).
  std::string step(std::int32_t id);

  /// Returns whatever is still held back (incomplete bytes appear as U+FFFD) and resets.
  std::string flush();

 private:
  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  std::vector<std::int32_t> ids_;
  std::string prefix_;
  std::size_t prefix_index_ = 0;
};

}  // namespace aegaeon::text
