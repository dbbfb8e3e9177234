// Constrained decoding: a model's vocabulary indexed by its tokens' bytes, and per request a
// core::TokenConstraint that allows exactly the tokens whose bytes keep the text inside a JSON
// Schema's grammar (text/json_grammar.hpp). OpenAI's response_format json_object and
// json_schema run through it.
//
// A mask is computed by reading every token's bytes from the current grammar state, tokens
// sorted by bytes so a shared prefix is read once and a rejected prefix rejects every token
// that starts with it. Masks are cached per grammar state and shared by every request with the
// same schema, so a long string or a repeated structure costs one computation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/generation.hpp"
#include "core/result.hpp"
#include "core/token_constraint.hpp"
#include "text/tokenizer.hpp"

namespace aegaeon::text {

/// One model's vocabulary, ready for constrained decoding, with the schemas compiled for it.
/// Thread-safe.
class StructuredOutputs {
 public:
  /// For `tokenizer`'s vocabulary: every token but the special ones, by the bytes it stands for
  /// (Tokenizer::token_bytes), indexed on the first start() (a 150k vocabulary takes ~0.1 s).
  explicit StructuredOutputs(Tokenizer tokenizer);
  ~StructuredOutputs();

  /// The start of an output that must be `output`: its `before` text, JSON satisfying its
  /// schema, its `after` text. Errors: the schema is invalid or uses what JsonGrammar does not
  /// support (kInvalidArgument, its field under `path`). The last kCachedSchemas outputs stay
  /// compiled, with their masks.
  core::Result<std::shared_ptr<const core::TokenConstraint>> start(const core::StructuredOutput& output,
                                                                   std::string_view path = "schema");

  static constexpr std::size_t kCachedSchemas = 16;
  /// Masks kept per schema, in bytes (a 150k-token vocabulary's mask is 19 KiB).
  static constexpr std::size_t kMaskCacheBytes = std::size_t{8} << 20;

  struct Vocabulary;
  struct Compiled;

 private:
  Tokenizer tokenizer_;
  std::shared_ptr<const Vocabulary> vocabulary_;  // once indexed
  std::mutex mutex_;
  std::vector<std::pair<core::StructuredOutput, std::shared_ptr<Compiled>>> schemas_;  // most recent last
};

}  // namespace aegaeon::text
