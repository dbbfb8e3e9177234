// What a sequence may generate next, token by token: the hook structured outputs use. The
// sampler asks which tokens are allowed and tells which one it drew; text/ implements it (a
// JSON Schema's grammar over the vocabulary's bytes, text/constrained_decoding.hpp), so the
// device side knows nothing of grammars or tokenizers.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace aegaeon::core {

/// One sequence's position in a constraint. A request carries its start state as a
/// `shared_ptr<const TokenConstraint>`; the sequence's sampler works on its own clone().
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;

  /// A copy in the same state (a sampler copied with its sequence carries on independently).
  [[nodiscard]] virtual std::unique_ptr<TokenConstraint> clone() const = 0;

  /// The tokens allowed next, one bit per vocabulary id (bit id % 64 of word id / 64; ids past
  /// the span are not allowed). Stop tokens are not among them: see complete().
  virtual std::span<const std::uint64_t> allowed() = 0;

  /// True when the text so far is whole: the sequence may end here (its stop tokens are allowed).
  [[nodiscard]] virtual bool complete() const = 0;

  /// Takes `token` as the next one generated; false (the state unchanged) when it is not allowed.
  virtual bool advance(std::int32_t token) = 0;
};

/// True when bit `id` is set in a TokenConstraint::allowed() mask.
inline bool mask_allows(std::span<const std::uint64_t> mask, std::int32_t id) {
  const auto word = static_cast<std::size_t>(id) / 64;
  return id >= 0 && word < mask.size() && ((mask[word] >> (static_cast<unsigned>(id) % 64)) & 1U) != 0;
}

}  // namespace aegaeon::core
