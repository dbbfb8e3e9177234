// jinja::Value: what a chat template computes with. The kinds and their behaviour (truthiness,
// printing, JSON) follow @huggingface/jinja, the implementation transformers.js renders chat
// templates with, so that a prompt is byte-identical to the one the model's own tooling builds.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/result.hpp"

namespace aegaeon::text::jinja {

class Value;
class Environment;

class Object;

/// Arguments a call receives: positional ones, then the keyword ones (if any) as one kKwargs
/// value at the end, as @huggingface/jinja passes them.
using Arguments = std::vector<Value>;
using Function = std::function<core::Result<Value>(Arguments& args, Environment& call_site)>;

class Value {
 public:
  enum class Kind {
    kUndefined,  ///< a name or attribute that does not exist; prints as nothing
    kNull,       ///< none / None / JSON null
    kBoolean,
    kInteger,
    kFloat,
    kString,     ///< UTF-8
    kArray,
    kTuple,      ///< an array written (a, b): behaves as one
    kObject,
    kNamespace,  ///< namespace(...): the one object a `set` may assign attributes of
    kKwargs,     ///< keyword arguments of a call (an object)
    kFunction,
  };

  Value() = default;
  static Value undefined() { return {}; }
  static Value null() { return Value(Kind::kNull, std::monostate{}); }
  static Value boolean(bool b) { return Value(Kind::kBoolean, b); }
  static Value integer(std::int64_t i) { return Value(Kind::kInteger, i); }
  static Value floating(double d) { return Value(Kind::kFloat, d); }
  static Value string(std::string s) { return Value(Kind::kString, std::move(s)); }
  static Value array(std::vector<Value> items, Kind kind = Kind::kArray);
  static Value object(Object entries, Kind kind = Kind::kObject);
  static Value function(Function fn);

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool is(Kind k) const { return kind_ == k; }
  [[nodiscard]] bool is_undefined() const { return kind_ == Kind::kUndefined; }
  [[nodiscard]] bool is_none_or_undefined() const { return kind_ == Kind::kNull || kind_ == Kind::kUndefined; }
  [[nodiscard]] bool is_number() const { return kind_ == Kind::kInteger || kind_ == Kind::kFloat; }
  [[nodiscard]] bool is_array() const { return kind_ == Kind::kArray || kind_ == Kind::kTuple; }
  /// Objects whose attributes `.x` reads: objects, keyword arguments and namespaces.
  [[nodiscard]] bool is_attribute_container() const {
    return kind_ == Kind::kObject || kind_ == Kind::kKwargs || kind_ == Kind::kNamespace;
  }
  /// Objects (`is mapping`): plain and keyword-argument objects, not namespaces.
  [[nodiscard]] bool is_object() const { return kind_ == Kind::kObject || kind_ == Kind::kKwargs; }

  [[nodiscard]] bool as_bool() const { return std::get<bool>(data_); }
  [[nodiscard]] std::int64_t as_integer() const { return std::get<std::int64_t>(data_); }
  [[nodiscard]] double as_float() const { return std::get<double>(data_); }
  /// An integer, float or boolean as a double.
  [[nodiscard]] double as_number() const;
  [[nodiscard]] const std::string& as_string() const { return std::get<std::string>(data_); }
  [[nodiscard]] const std::vector<Value>& items() const { return *std::get<std::shared_ptr<std::vector<Value>>>(data_); }
  [[nodiscard]] const Object& attributes() const { return *std::get<std::shared_ptr<Object>>(data_); }
  /// A namespace's attributes, shared by every copy of it (`set ns.x = ...` is seen by all).
  [[nodiscard]] Object& mutable_attributes() const { return *std::get<std::shared_ptr<Object>>(data_); }
  [[nodiscard]] const Function& as_function() const { return *std::get<std::shared_ptr<const Function>>(data_); }

  /// Jinja truthiness: empty strings, arrays and objects, 0, none and undefined are false.
  [[nodiscard]] bool truthy() const;

  /// The text `{{ value }}` prints: strings as they are, floats with a ".0" when whole, booleans
  /// "true"/"false", arrays and objects as JSON; none and undefined print nothing.
  [[nodiscard]] std::string to_output() const;

  /// The text the `~` and string `+` operators concatenate (JavaScript's String(value)).
  [[nodiscard]] std::string to_concat_string() const;

  /// Strict equality as `in` uses it: the same kind of scalar with the same value, or the same
  /// array/object.
  [[nodiscard]] bool same_as(const Value& other) const;

  /// Loose equality as `==` uses it: numbers and booleans compare by value, none equals
  /// undefined, arrays and objects only themselves.
  [[nodiscard]] bool loosely_equals(const Value& other) const;

  /// "StringValue", "ArrayValue", ...: the names @huggingface/jinja's errors use.
  [[nodiscard]] std::string_view type_name() const;

  /// How deeply lists and objects nest inside this value (0 for a scalar). A namespace counts
  /// as kMaxNamespaceDepth + 1, whatever it holds now, since it changes after it is built.
  [[nodiscard]] int depth() const { return depth_; }
  static constexpr int kMaxNamespaceDepth = 64;

 private:
  using Data = std::variant<std::monostate, bool, std::int64_t, double, std::string,
                            std::shared_ptr<std::vector<Value>>, std::shared_ptr<Object>,
                            std::shared_ptr<const Function>>;
  Value(Kind kind, Data data, int depth = 0) : kind_(kind), data_(std::move(data)), depth_(depth) {}

  Kind kind_ = Kind::kUndefined;
  Data data_;
  int depth_ = 0;
};

/// An insertion-ordered string-keyed map (templates print dicts in the order they were built).
class Object {
 public:
  [[nodiscard]] const Value* find(std::string_view key) const;
  [[nodiscard]] bool contains(std::string_view key) const { return find(key) != nullptr; }
  void set(std::string key, Value value);
  bool erase(std::string_view key);
  [[nodiscard]] const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> entries_;
};

/// How tojson writes: Python's json.dumps options as the template passes them.
struct JsonOptions {
  int indent = -1;  ///< < 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  /// Item and key separators; unset: ", " and ": " on one line, "," and ": " when indented.
  std::optional<std::pair<std::string, std::string>> separators;
  bool undefined_as_null = true;  ///< false: undefined prints as `undefined` (how values print)
};

/// `value` as JSON text, byte-identical to @huggingface/jinja's toJSON. Errors on functions.
core::Result<std::string> to_json(const Value& value, const JsonOptions& options = {});

/// Parses JSON text into a Value (objects keep their key order; whole numbers are integers);
/// kInvalidArgument when it is not JSON or nests deeper than `max_depth`.
core::Result<Value> parse_json(std::string_view json_text, int max_depth = 128);

/// JavaScript's \s: ASCII whitespace, line separators and the Unicode spaces (U+00A0, U+1680,
/// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF).
bool is_js_whitespace(char32_t cp);

/// `s` without its leading and/or trailing JavaScript whitespace (String trim/trimStart/trimEnd).
std::string_view strip_js_whitespace(std::string_view s, bool leading, bool trailing);

/// A double as JavaScript prints it (shortest round trip; "1e+21", "NaN", "-0" → "0").
std::string format_js_number(double d);

}  // namespace aegaeon::text::jinja
