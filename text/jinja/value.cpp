#include "text/jinja/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/utf8.hpp"
#include "text/utf8.hpp"

namespace aegaeon::text::jinja {

// ---- Object ---------------------------------------------------------------------------------

const Value* Object::find(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Object::set(std::string key, Value value) {
  for (auto& [k, v] : entries_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

bool Object::erase(std::string_view key) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const auto& entry) { return entry.first == key; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

// ---- JavaScript string semantics ----------------------------------------------------------------

bool is_js_whitespace(char32_t cp) {
  if (cp <= 32) return cp == 32 || (cp >= 9 && cp <= 13);
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

std::string_view strip_js_whitespace(std::string_view s, bool leading, bool trailing) {
  if (leading) {
    std::size_t i = 0;
    while (i < s.size() && core::utf8_sequence_length(s, i) != 0) {
      std::size_t next = i;
      if (!is_js_whitespace(utf8::decode(s, next))) break;
      i = next;
    }
    s.remove_prefix(i);
  }
  if (trailing) {
    while (!s.empty()) {
      std::size_t start = s.size() - 1;  // back up to the last character's first byte
      while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      if (core::utf8_sequence_length(s, start) != s.size() - start) break;
      std::size_t pos = start;
      if (!is_js_whitespace(utf8::decode(s, pos))) break;
      s.remove_suffix(s.size() - start);
    }
  }
  return s;
}

// ---- Value ----------------------------------------------------------------------------------

Value Value::array(std::vector<Value> items, Kind kind) {
  int deepest = 0;
  for (const auto& item : items) deepest = std::max(deepest, item.depth());
  return Value(kind, std::make_shared<std::vector<Value>>(std::move(items)), deepest + 1);
}

Value Value::object(Object entries, Kind kind) {
  int deepest = 0;
  for (const auto& entry : entries.entries()) deepest = std::max(deepest, entry.second.depth());
  const int depth = kind == Kind::kNamespace ? kMaxNamespaceDepth + 1 : deepest + 1;
  return Value(kind, std::make_shared<Object>(std::move(entries)), depth);
}

Value Value::function(Function fn) {
  return Value(Kind::kFunction, std::make_shared<const Function>(std::move(fn)));
}

double Value::as_number() const {
  switch (kind_) {
    case Kind::kInteger: return static_cast<double>(as_integer());
    case Kind::kFloat: return as_float();
    case Kind::kBoolean: return as_bool() ? 1.0 : 0.0;
    default: return std::nan("");
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNull: return false;
    case Kind::kBoolean: return as_bool();
    case Kind::kInteger: return as_integer() != 0;
    case Kind::kFloat: return as_float() != 0.0 && !std::isnan(as_float());
    case Kind::kString: return !as_string().empty();
    case Kind::kArray:
    case Kind::kTuple: return !items().empty();
    case Kind::kObject:
    case Kind::kKwargs: return attributes().size() > 0;
    case Kind::kNamespace:  // @huggingface/jinja: a namespace is always true
    case Kind::kFunction: return true;
  }
  return false;
}

std::string format_js_number(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0) return "0";
  // The shortest digits that round-trip, then ECMAScript's Number::toString layout.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, std::fabs(d), std::chars_format::scientific);
  (void)ec;
  std::string_view sci(buf, static_cast<std::size_t>(end - buf));
  const auto e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  const int exponent = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  const int k = static_cast<int>(digits.size());
  const int n = exponent + 1;
  std::string out = d < 0 ? "-" : "";
  if (k <= n && n <= 21) {
    out += digits + std::string(static_cast<std::size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, static_cast<std::size_t>(n)) + "." + digits.substr(static_cast<std::size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0." + std::string(static_cast<std::size_t>(-n), '0') + digits;
  } else {
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += (n - 1 >= 0 ? "e+" : "e-") + std::to_string(std::abs(n - 1));
  }
  return out;
}

namespace {

std::string format_float_output(double d) {
  if (d == 0 && std::signbit(d)) return "-0.0";
  if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 1e21) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", d);
    return buf;
  }
  return format_js_number(d);
}

// RuntimeValue.toString() in @huggingface/jinja: what an array element turns into when the
// array is concatenated as a string (none is "null" there, unlike in output).
std::string runtime_to_string(const Value& v) {
  if (v.is(Value::Kind::kNull)) return "null";
  if (v.is_undefined()) return "undefined";
  return v.to_output();
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto append_unit = [&](std::uint32_t unit) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(unit >> shift) & 0xF];
  };
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || (ensure_ascii && c == 0x7F)) {
            append_unit(c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const std::size_t start = i;
    if (core::utf8_sequence_length(s, i) == 0) {  // not UTF-8: passed through as it is
      out += s[i++];
      continue;
    }
    const std::uint32_t cp = utf8::decode(s, i);
    if (!ensure_ascii) {
      out.append(s.substr(start, i - start));
    } else if (cp >= 0x10000) {  // JavaScript escapes each UTF-16 half of an astral character
      append_unit(0xD800 + ((cp - 0x10000) >> 10));
      append_unit(0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      append_unit(cp);
    }
  }
  out += '"';
}

// Key order for sort_keys: JavaScript's localeCompare puts letters before case (a < B < b).
bool locale_less(const std::string& a, const std::string& b) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const auto la = lower(a);
  const auto lb = lower(b);
  if (la != lb) return la < lb;
  return a > b;  // lowercase first
}

core::Result<std::monostate> write_json(std::string& out, const Value& v, const JsonOptions& o, int depth) {
  using Kind = Value::Kind;
  const bool indented = o.indent > 0;
  const std::string item_sep = o.separators ? o.separators->first : (indented ? "," : ", ");
  const std::string key_sep = o.separators ? o.separators->second : ": ";
  switch (v.kind()) {
    case Kind::kNull: out += "null"; return std::monostate{};
    case Kind::kUndefined: out += o.undefined_as_null ? "null" : "undefined"; return std::monostate{};
    case Kind::kBoolean: out += v.as_bool() ? "true" : "false"; return std::monostate{};
    case Kind::kInteger: out += std::to_string(v.as_integer()); return std::monostate{};
    case Kind::kFloat: out += std::isfinite(v.as_float()) ? format_js_number(v.as_float()) : "null"; return std::monostate{};
    case Kind::kString: append_json_string(out, v.as_string(), o.ensure_ascii); return std::monostate{};
    case Kind::kFunction: return core::error(core::ErrorCode::kInvalidArgument, "Cannot convert to JSON: FunctionValue");
    default: break;
  }
  const std::string indent_unit = indented ? std::string(static_cast<std::size_t>(o.indent), ' ') : "";
  std::string base_padding = "\n";
  for (int i = 0; i < depth; ++i) base_padding += indent_unit;
  const std::string child_padding = base_padding + indent_unit;
  if (v.is_array()) {
    out += '[';
    const auto& items = v.items();
    for (std::size_t i = 0; i < items.size(); ++i) {
      out += i == 0 ? (indented ? child_padding : "") : (indented ? item_sep + child_padding : item_sep);
      AEGAEON_TRY(write_json(out, items[i], o, depth + 1));
    }
    if (indented && !items.empty()) out += base_padding;
    out += ']';
    return std::monostate{};
  }
  std::vector<const std::pair<std::string, Value>*> entries;
  for (const auto& entry : v.attributes().entries()) entries.push_back(&entry);
  if (o.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto* a, const auto* b) { return locale_less(a->first, b->first); });
  }
  out += '{';
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out += item_sep;
    if (indented) out += child_padding;
    append_json_string(out, entries[i]->first, o.ensure_ascii);
    out += key_sep;
    AEGAEON_TRY(write_json(out, entries[i]->second, o, depth + 1));
  }
  if (indented && !entries.empty()) out += base_padding;
  out += '}';
  return std::monostate{};
}

}  // namespace

std::string Value::to_output() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNull: return "";
    case Kind::kBoolean: return as_bool() ? "true" : "false";
    case Kind::kInteger: return std::to_string(as_integer());
    case Kind::kFloat: return format_float_output(as_float());
    case Kind::kString: return as_string();
    case Kind::kFunction: return "[function]";
    default: {
      JsonOptions options;
      options.undefined_as_null = false;
      auto json = to_json(*this, options);
      return json.ok() ? *json : std::string("[object]");
    }
  }
}

std::string Value::to_concat_string() const {
  switch (kind_) {
    case Kind::kInteger: return std::to_string(as_integer());
    case Kind::kFloat: return format_js_number(as_float());
    case Kind::kArray:
    case Kind::kTuple: {
      std::string out;
      for (std::size_t i = 0; i < items().size(); ++i) {
        if (i > 0) out += ',';
        out += runtime_to_string(items()[i]);
      }
      return out;
    }
    case Kind::kObject:
    case Kind::kKwargs:
    case Kind::kNamespace: return "[object Map]";
    case Kind::kNull: return "null";
    case Kind::kUndefined: return "undefined";
    default: return to_output();
  }
}

bool Value::same_as(const Value& other) const {
  if (is_number() && other.is_number()) return as_number() == other.as_number();
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNull: return true;
    case Kind::kBoolean: return as_bool() == other.as_bool();
    case Kind::kString: return as_string() == other.as_string();
    default: return data_ == other.data_;  // the same array, object or function
  }
}

namespace {
// JavaScript's ToNumber of a string: surrounding whitespace ignored, "" is 0, junk is NaN.
double js_string_to_number(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\n\r\v\f");
  if (first == std::string::npos) return 0.0;
  const auto last = s.find_last_not_of(" \t\n\r\v\f");
  const std::string trimmed = s.substr(first, last - first + 1);
  char* end = nullptr;
  const double d = std::strtod(trimmed.c_str(), &end);
  return end == trimmed.c_str() + trimmed.size() ? d : std::nan("");
}
}  // namespace

bool Value::loosely_equals(const Value& other) const {
  const auto numeric = [](const Value& v) { return v.is_number() || v.is(Kind::kBoolean); };
  if (is_none_or_undefined() || other.is_none_or_undefined()) {
    return is_none_or_undefined() && other.is_none_or_undefined();
  }
  if (numeric(*this) && numeric(other)) return as_number() == other.as_number();
  if (numeric(*this) && other.is(Kind::kString)) return as_number() == js_string_to_number(other.as_string());
  if (is(Kind::kString) && numeric(other)) return js_string_to_number(as_string()) == other.as_number();
  return same_as(other);
}

std::string_view Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "UndefinedValue";
    case Kind::kNull: return "NullValue";
    case Kind::kBoolean: return "BooleanValue";
    case Kind::kInteger: return "IntegerValue";
    case Kind::kFloat: return "FloatValue";
    case Kind::kString: return "StringValue";
    case Kind::kArray: return "ArrayValue";
    case Kind::kTuple: return "TupleValue";
    case Kind::kObject: return "ObjectValue";
    case Kind::kNamespace: return "NamespaceValue";
    case Kind::kKwargs: return "KeywordArgumentsValue";
    case Kind::kFunction: return "FunctionValue";
  }
  return "Value";
}

core::Result<std::string> to_json(const Value& value, const JsonOptions& options) {
  std::string out;
  AEGAEON_TRY(write_json(out, value, options, 0));
  return out;
}

namespace {
Value from_json(const nlohmann::ordered_json& j, int depth_left, bool& too_deep) {
  if (depth_left < 0) {
    too_deep = true;
    return Value::null();
  }
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::null();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::integer(static_cast<std::int64_t>(j.get<std::uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: {
      // JavaScript has one number type: a whole float is an integer there (1.0 prints "1").
      const double d = j.get<double>();
      if (d == std::trunc(d) && std::fabs(d) < 9.007199254740992e15) return Value::integer(static_cast<std::int64_t>(d));
      return Value::floating(d);
    }
    case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json(item, depth_left - 1, too_deep));
      return Value::array(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object object;
      for (auto it = j.begin(); it != j.end(); ++it) object.set(it.key(), from_json(it.value(), depth_left - 1, too_deep));
      return Value::object(std::move(object));
    }
    default: return Value::undefined();
  }
}
}  // namespace

core::Result<Value> parse_json(std::string_view json_text, int max_depth) {
  auto j = nlohmann::ordered_json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return core::error(core::ErrorCode::kInvalidArgument, "not valid JSON");
  bool too_deep = false;
  Value v = from_json(j, max_depth, too_deep);
  if (too_deep) return core::error(core::ErrorCode::kInvalidArgument, "JSON nests deeper than " + std::to_string(max_depth));
  return v;
}

}  // namespace aegaeon::text::jinja
