// BPE trainer: learns byte-level BPE merges from a text, pre-tokenized exactly as the
// tokenizer that will use them (text/tokenizer), so `aegaeon model synth` can write a real
// tokenizer.json without Python or a model hub.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::text {

/// How to split and how much to learn.
struct BpeTrainerOptions {
  std::string split_regex;     ///< the tokenizer's Split pre-tokenizer pattern (Isolated)
  bool nfc = false;            ///< NFC-normalize the text first (the tokenizer's normalizer)
  std::size_t max_tokens = 0;  ///< stop when the vocabulary (256 bytes + merged) has this many
};

/// A byte-level BPE vocabulary. Tokens are raw bytes (not yet spelled in GPT-2's alphabet).
struct ByteLevelBpe {
  /// The 256 single bytes in byte order, then each merge's new token in rank order.
  std::vector<std::string> tokens;
  /// Merges in rank order (left, right).
  std::vector<std::pair<std::string, std::string>> merges;
};

/// Learns merges on `text` until the vocabulary has options.max_tokens tokens or every word is
/// one token. Deterministic: the most frequent pair wins, ties go to the smaller (left, right)
/// byte strings. kInvalidArgument for a bad regex or max_tokens < 256.
core::Result<ByteLevelBpe> train_byte_level_bpe(std::string_view text, const BpeTrainerOptions& options);

/// `bytes` spelled in GPT-2's byte-level alphabet, as tokenizer.json stores vocab and merges.
std::string to_byte_level_alphabet(std::string_view bytes);

}  // namespace aegaeon::text
