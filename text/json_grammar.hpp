// A JSON Schema compiled into the grammar of the JSON texts that satisfy it, read one byte at a
// time: the recognizer constrained decoding runs (text/constrained_decoding.hpp).
//
// Supported keywords: `type` (one or a list), `properties`, `required`, `additionalProperties`,
// `items`, `minItems`, `maxItems`, `minLength`, `maxLength`, `enum`, `const`, `anyOf`, `$ref`
// into `$defs` / `definitions` (recursion included), and the annotations (`title`,
// `description`, `default`, `examples`, `$schema`, `$id`, `$comment`, `deprecated`, `readOnly`,
// `writeOnly`). Any other keyword is refused, naming where it is, so a schema is never
// half-enforced. What the grammar lets a model write is a subset of what the schema allows, so
// output always validates:
// - an object with declared properties lists them in their declared order, any optional one
//   may be left out, and no other key is written; one without (`{"type": "object"}`, OpenAI's
//   json_object) takes any keys, its values following `additionalProperties` (any JSON when
//   absent);
// - whitespace between tokens is allowed in runs of at most kMaxSpaces bytes and nowhere after
//   the value, so a model cannot pad forever;
// - numbers have at most kMaxIntegerDigits integer digits, kMaxFractionDigits fraction digits
//   and two exponent digits (a double holds any such number); strings are valid UTF-8 (escapes
//   included, UTF-16 surrogates only in pairs);
// - nesting is at most kMaxDepth values deep.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::text {

class JsonGrammar {
 public:
  static constexpr int kMaxDepth = 32;
  static constexpr int kMaxSpaces = 24;
  static constexpr int kMaxIntegerDigits = 16;
  static constexpr int kMaxFractionDigits = 16;

  /// Compiles a JSON Schema given as JSON text; the text read is exactly `before`, the JSON,
  /// then exactly `after` (a forced tool call's tags; whitespace may precede each). Errors are
  /// kInvalidArgument; their field is the path of what was refused under `path` (e.g.
  /// "schema.properties.age.minimum").
  static core::Result<std::shared_ptr<const JsonGrammar>> compile(std::string_view schema_json,
                                                                  std::string_view path = "schema",
                                                                  std::string_view before = {},
                                                                  std::string_view after = {});

  /// One value being read: its grammar node, how far into it (`phase`), the whitespace run so
  /// far and two counters whose meaning depends on the node (property and key position,
  /// items, code points and escape state, literal and position, digits).
  struct Frame {
    std::uint16_t node = 0;
    std::uint8_t phase = 0;
    std::uint8_t spaces = 0;
    std::uint16_t a = 0;
    std::uint16_t b = 0;
  };

  /// A parse position: the values open around the next byte, innermost last. Empty once the
  /// whole value has been read.
  struct Stack {
    std::uint8_t depth = 0;
    std::array<Frame, kMaxDepth> frames{};

    [[nodiscard]] Frame& top() { return frames[depth - 1]; }
    [[nodiscard]] const Frame& top() const { return frames[depth - 1]; }
    bool operator==(const Stack& other) const;
    bool operator<(const Stack& other) const;
  };

  /// The positions a text may be at (alternatives of anyOf, enum values, keys that share a
  /// prefix are read side by side). Sorted, without duplicates; empty: the text cannot go on.
  using State = std::vector<Stack>;

  /// Before the first byte.
  [[nodiscard]] State start() const;

  /// `state` after `byte`, into `next` (cleared first).
  void step(const State& state, std::uint8_t byte, State& next) const;

  /// True when the text read so far is a whole value that satisfies the schema.
  [[nodiscard]] bool complete(const State& state) const;

  /// A byte string naming `state` (equal states, equal keys): what mask caches are keyed by.
  static void append_key(const State& state, std::string& key);

  struct Node;
  JsonGrammar(std::vector<Node> nodes, std::uint16_t key_node);
  ~JsonGrammar();

 private:
  void feed(Stack stack, std::uint8_t byte, State& out) const;
  // Pops the value on top of `stack`, now complete, and moves its container past it.
  static void finish_value(Stack& stack, const std::vector<Node>& nodes);

  std::vector<Node> nodes_;
  std::uint16_t key_node_;  // an unbounded string: the keys of objects without declared properties
};

}  // namespace aegaeon::text
