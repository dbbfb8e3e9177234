// Internal representation of a loaded tokenizer.json, shared by tokenizer_load.cpp (JSON →
// Impl), tokenizer_bpe.cpp (the BPE model) and tokenizer.cpp (the encode/decode pipelines).
// Not included outside text/tokenizer*.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/tokenizer.hpp"

namespace aegaeon::text::tokenizer_detail {

/// A compiled PCRE2 pattern (UTF + UCP, JIT when available); owned, immutable, shareable.
class Regex {
 public:
  /// Compiles `pattern`; `literal` matches it as plain text. Error text names the offset.
  static core::Result<std::shared_ptr<const Regex>> compile(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Byte ranges [begin, end) of the successive non-overlapping matches in valid UTF-8 `text`.
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so PCRE2 stays out of this header
  bool jit_ = false;
};

/// One normalizer step (a "Sequence" is flattened into a list of these).
struct Normalizer {
  enum class Kind { kNfc, kPrepend, kReplace, kStrip };
  Kind kind = Kind::kNfc;
  std::string text;     // kPrepend: prepended; kReplace: pattern
  std::string content;  // kReplace: replacement
  bool strip_left = false, strip_right = false;
};

/// How Split keeps the pattern matches (tokenizers' SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

/// One pre-tokenizer step (a "Sequence" is flattened into a list of these).
struct PreTokenizer {
  enum class Kind { kSplit, kByteLevel, kMetaspace, kDigits };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;  // kSplit, kByteLevel with use_regex, kDigits
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // kByteLevel
  std::string replacement;        // kMetaspace
  enum class PrependScheme { kAlways, kFirst, kNever } prepend_scheme = PrependScheme::kAlways;
  bool split = false;             // kMetaspace
};

/// One decoder step (a "Sequence" is flattened into a list of these).
struct Decoder {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kByteLevel;
  std::string pattern, content;  // kReplace; kStrip content; kMetaspace replacement
  std::size_t start = 0, stop = 0;  // kStrip
  bool prepend = true;              // kMetaspace: strip the first token's leading space
};

/// A token added on top of the model vocabulary (special tokens, chat markers).
struct AddedToken {
  std::int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

/// Finds added tokens in text, leftmost-longest, like tokenizers' AddedVocabulary.
struct AddedTokenMatcher {
  std::vector<std::string> patterns;           // what is searched for
  std::vector<const AddedToken*> tokens;       // parallel to patterns
  std::array<std::vector<std::size_t>, 256> by_first_byte;  // pattern indices, longest first
};

/// Item of a TemplateProcessing "single" template.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<std::int32_t> ids;  // for a special token
};

/// The BPE model: vocabulary, merges by id pair, and the options that shape a word's split.
struct BpeModel {
  // Vocabulary keyed by what the model sees: raw bytes for byte-level tokenizers (the ByteLevel
  // alphabet is undone at load), the token text otherwise.
  std::unordered_map<std::string, std::int32_t> vocab;
  struct PairHash {
    std::size_t operator()(std::uint64_t key) const { return std::hash<std::uint64_t>()(key); }
  };
  // (left id << 32 | right id) → (rank, merged id).
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::int32_t>, PairHash> merges;
  bool byte_level = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  bool fuse_unk = false;
  std::optional<std::int32_t> unk_id;
  std::array<std::int32_t, 256> byte_ids{};      // byte-level: id of each single byte, -1 if none
  std::array<std::int32_t, 256> fallback_ids{};  // byte_fallback: id of <0xNN>, -1 if none

  /// Appends the ids of one pre-tokenized word to `out` (merging, unk and byte fallback).
  void encode_word(std::string_view word, std::vector<std::int32_t>& out) const;
};

/// A per-word cache of BPE results; bounded, shared by threads.
struct WordCache {
  static constexpr std::size_t kCapacity = 20000;
  static constexpr std::size_t kMaxWordBytes = 256;
  mutable std::shared_mutex mutex;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> entries;
};

/// GPT-2's bytes_to_unicode(): the character each byte is spelled with in byte-level
/// vocabularies (read by the loader, written by the BPE trainer).
std::array<char32_t, 256> byte_level_chars();

/// Applies the normalizer steps to one piece of text (between added tokens).
std::string normalize_text(const std::vector<Normalizer>& normalizers, std::string text);

}  // namespace aegaeon::text::tokenizer_detail

namespace aegaeon::text {

/// Everything a tokenizer.json describes, resolved to ids and compiled patterns.
struct Tokenizer::Impl {
  std::string source;  // file name for messages
  std::vector<tokenizer_detail::Normalizer> normalizers;
  std::vector<tokenizer_detail::PreTokenizer> pre_tokenizers;
  std::vector<tokenizer_detail::Decoder> decoders;
  bool has_decoder = false;
  tokenizer_detail::BpeModel model;
  std::vector<tokenizer_detail::AddedToken> added_tokens;
  tokenizer_detail::AddedTokenMatcher raw_matcher;         // non-normalized added tokens
  tokenizer_detail::AddedTokenMatcher normalized_matcher;  // normalized added tokens
  std::vector<tokenizer_detail::TemplateItem> post_template;  // empty: nothing added
  std::vector<std::string> id_to_token;    // token text by id ("" for holes)
  std::vector<std::uint8_t> id_exists;     // 1 when id_to_token[id] is a token
  std::vector<std::uint8_t> id_special;    // 1 for special added tokens
  std::unordered_map<std::string, std::int32_t> token_to_id;
  std::optional<std::int32_t> bos_id, eos_id;
  tokenizer_detail::WordCache cache;

  /// Decoder chain over token strings, as tokenizers' Decoder::decode_chain + join.
  /// The decoder pipeline over `tokens`. With `token_bytes`, the raw bytes the tokens stand for
  /// in the middle of a text: no UTF-8 repair, and no first-token stripping (Strip, Metaspace).
  std::string run_decoders(std::vector<std::string> tokens, bool token_bytes = false) const;
};

}  // namespace aegaeon::text
