// The tree-walking interpreter. Each rule (operators, filters, tests, methods, scoping) follows
// @huggingface/jinja's runtime, including where it differs from Python's Jinja (booleans print
// "true", `strip()` ignores its argument, a failed test on a missing attribute is false), since
// the prompt must equal the one transformers.js builds.
#include "text/jinja/template.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <functional>

#include "core/utf8.hpp"
#include "text/jinja/parser.hpp"
#include "text/utf8.hpp"

namespace aegaeon::text::jinja {

using Kind = Value::Kind;

/// A scope: names bound here, then the enclosing scope's. Loops, macro calls and call blocks
/// open one; `if` does not (as in Jinja).
class Environment {
 public:
  explicit Environment(Environment* parent) : parent_(parent) {}

  [[nodiscard]] Value lookup(std::string_view name) const {
    for (const Environment* env = this; env; env = env->parent_) {
      if (const Value* v = env->variables_.find(name)) return *v;
    }
    return Value::undefined();
  }
  [[nodiscard]] const Value* find_local(std::string_view name) const { return variables_.find(name); }
  void set(std::string name, Value value) { variables_.set(std::move(name), std::move(value)); }

  bool call_block = false;  ///< the scope a {% call %} opens to call its macro

 private:
  Environment* parent_;
  Object variables_;
};

namespace {

core::Error template_error(int line, const std::string& message) {
  return core::error(core::ErrorCode::kInvalidArgument, "line " + std::to_string(line) + ": " + message);
}
core::Error plain_error(const std::string& message) { return core::error(core::ErrorCode::kInvalidArgument, message); }

// ---- string helpers (UTF-8 in, JavaScript semantics out) -------------------------------------

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = core::utf8_sequence_length(s, i);
    if (n == 0) n = 1;
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// String.length: UTF-16 code units.
std::int64_t js_length(std::string_view s) {
  std::int64_t units = 0;
  for (const auto& cp : code_points(s)) units += cp.size() == 4 ? 2 : 1;
  return units;
}

std::string ascii_upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string ascii_lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
bool is_ascii_word(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// /\b\w/g → upper case: the first ASCII word character after a non-word one.
std::string title_case(std::string s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (is_ascii_word(s[i]) && (i == 0 || !is_ascii_word(s[i - 1]))) {
      s[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
    }
  }
  return s;
}

// parseInt(s, 10) / parseFloat(s): the longest numeric prefix after leading whitespace.
std::optional<double> js_parse_number(std::string_view s, bool integer) {
  s = strip_js_whitespace(s, true, false);
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const std::size_t digits_start = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  bool any_digit = i > digits_start;
  if (!integer) {
    if (i < s.size() && s[i] == '.') {
      const std::size_t frac_start = ++i;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      any_digit = any_digit || i > frac_start;
    }
    if (any_digit && i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      std::size_t j = i + 1;
      if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
      const std::size_t exp_start = j;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      if (j > exp_start) i = j;
    }
  }
  if (!any_digit) return std::nullopt;
  return std::strtod(std::string(s.substr(0, i)).c_str(), nullptr);
}

// str.split(sep, maxsplit) as @huggingface/jinja implements Python's.
Value split(const std::string& s, const Value& sep, std::int64_t maxsplit) {
  std::vector<Value> parts;
  if (sep.is(Kind::kNull) || sep.is_undefined()) {
    std::string_view rest = strip_js_whitespace(s, true, false);
    while (!rest.empty()) {
      std::size_t end = 0;  // the end of the next run of non-whitespace
      while (end < rest.size()) {
        std::size_t next = end;
        if (core::utf8_sequence_length(rest, end) == 0) { ++end; continue; }
        if (is_js_whitespace(utf8::decode(rest, next))) break;
        end = next;
      }
      if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(Value::string(std::string(rest)));
        break;
      }
      parts.push_back(Value::string(std::string(rest.substr(0, end))));
      rest = strip_js_whitespace(rest.substr(end), true, false);
    }
    return Value::array(std::move(parts));
  }
  const std::string& separator = sep.as_string();
  std::vector<std::string> pieces;
  std::size_t start = 0;
  std::size_t found = 0;
  while ((found = s.find(separator, start)) != std::string::npos) {
    pieces.push_back(s.substr(start, found - start));
    start = found + separator.size();
  }
  pieces.push_back(s.substr(start));
  if (maxsplit >= 0 && static_cast<std::int64_t>(pieces.size()) > maxsplit) {
    std::string tail;
    for (std::size_t i = static_cast<std::size_t>(maxsplit); i < pieces.size(); ++i) {
      if (i > static_cast<std::size_t>(maxsplit)) tail += separator;
      tail += pieces[i];
    }
    pieces.resize(static_cast<std::size_t>(maxsplit));
    pieces.push_back(std::move(tail));
  }
  for (auto& p : pieces) parts.push_back(Value::string(std::move(p)));
  return Value::array(std::move(parts));
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, std::int64_t count) {
  if (count == 0) return s;
  std::int64_t remaining = count < 0 ? INT64_MAX : count;
  std::string out;
  if (from.empty()) {  // between every two characters, and at both ends
    const auto chars = code_points(s);
    for (const auto& c : chars) {
      if (remaining > 0) {
        out += to;
        --remaining;
      }
      out += c;
    }
    if (remaining > 0) out += to;
    return out;
  }
  std::size_t start = 0;
  std::size_t found = 0;
  while (remaining > 0 && (found = s.find(from, start)) != std::string::npos) {
    out.append(s, start, found - start);
    out += to;
    start = found + from.size();
    --remaining;
  }
  out.append(s, start, std::string::npos);
  return out;
}

// Python-style slicing (negative indices from the end, a negative step backwards).
template <typename T>
std::vector<T> slice(const std::vector<T>& items, std::optional<std::int64_t> start_opt,
                     std::optional<std::int64_t> stop_opt, std::int64_t step) {
  const auto n = static_cast<std::int64_t>(items.size());
  std::int64_t start = 0;
  std::int64_t stop = 0;
  if (step >= 0) {
    start = start_opt.value_or(0);
    start = start < 0 ? std::max<std::int64_t>(n + start, 0) : std::min(start, n);
    stop = stop_opt.value_or(n);
    stop = stop < 0 ? std::max<std::int64_t>(n + stop, 0) : std::min(stop, n);
  } else {
    start = start_opt.value_or(n - 1);
    start = start < 0 ? std::max<std::int64_t>(n + start, -1) : std::min(start, n - 1);
    stop = stop_opt.value_or(-1);
    stop = stop < -1 ? std::max<std::int64_t>(n + stop, -1) : std::min(stop, n - 1);
  }
  std::vector<T> out;
  const std::int64_t direction = step > 0 ? 1 : (step < 0 ? -1 : 0);
  if (direction == 0) return out;
  for (std::int64_t i = start; direction * i < direction * stop; i += step) out.push_back(items[static_cast<std::size_t>(i)]);
  return out;
}

// Positional arguments, and the keyword arguments a call passed (its last value when kKwargs).
struct SplitArgs {
  std::vector<Value> positional;
  const Object* keywords = nullptr;

  explicit SplitArgs(const Arguments& args) {
    positional = args;
    if (!positional.empty() && positional.back().is(Kind::kKwargs)) {
      kwargs_holder = positional.back();
      positional.pop_back();
      keywords = &kwargs_holder.attributes();
    }
  }
  // Positional `index`, else keyword `name`, else `fallback`.
  [[nodiscard]] Value get(std::size_t index, std::string_view name, Value fallback) const {
    if (index < positional.size()) return positional[index];
    if (keywords) {
      if (const Value* v = keywords->find(name)) return *v;
    }
    return fallback;
  }
  Value kwargs_holder;
};

// compareRuntimeValues: numbers (and booleans) by value, strings (optionally case-folded).
core::Result<int> compare(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is(Kind::kNull) && b.is(Kind::kNull)) return 0;
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (a.is_none_or_undefined() || b.is_none_or_undefined()) {
    return plain_error("Cannot compare " + std::string(a.type_name()) + " with " + std::string(b.type_name()));
  }
  const auto numeric = [](const Value& v) { return v.is_number() || v.is(Kind::kBoolean); };
  if (numeric(a) && numeric(b)) return a.as_number() < b.as_number() ? -1 : (a.as_number() > b.as_number() ? 1 : 0);
  if (a.kind() != b.kind()) {
    return plain_error("Cannot compare different types: " + std::string(a.type_name()) + " and " + std::string(b.type_name()));
  }
  if (!a.is(Kind::kString)) return plain_error("Cannot compare type: " + std::string(a.type_name()));
  const std::string x = case_sensitive ? a.as_string() : ascii_lower(a.as_string());
  const std::string y = case_sensitive ? b.as_string() : ascii_lower(b.as_string());
  return x < y ? -1 : (x > y ? 1 : 0);
}

// Sorts `items` with a comparison that may fail; the first failure is returned.
core::Result<std::monostate> sort_values(std::vector<Value>& items, const std::function<core::Result<int>(const Value&, const Value&)>& cmp) {
  std::optional<core::Error> failure;
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    if (failure) return false;
    auto r = cmp(a, b);
    if (!r.ok()) {
      failure = r.error();
      return false;
    }
    return *r < 0;
  });
  if (failure) return *failure;
  return std::monostate{};
}

// item.attr.path (dots; integers index arrays), undefined where it does not exist.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.is_attribute_container()) {
      const Value* found = v.attributes().find(part);
      v = found ? *found : Value::undefined();
    } else if (v.is_array()) {
      char* end = nullptr;
      const long index = std::strtol(part.c_str(), &end, 10);
      if (end == part.c_str() || index < 0 || static_cast<std::size_t>(index) >= v.items().size()) return Value::undefined();
      v = v.items()[static_cast<std::size_t>(index)];
    } else {
      return Value::undefined();
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// ---- tests (`x is name`) ------------------------------------------------------------------------

core::Result<bool> run_test(std::string_view name, const Value& v, const Value& arg) {
  if (name == "boolean") return v.is(Kind::kBoolean);
  if (name == "callable") return v.is(Kind::kFunction);
  if (name == "odd" || name == "even") {
    if (!v.is(Kind::kInteger)) return plain_error("cannot " + std::string(name) + " on " + std::string(v.type_name()));
    return (v.as_integer() % 2 != 0) == (name == "odd");
  }
  if (name == "false") return v.is(Kind::kBoolean) && !v.as_bool();
  if (name == "true") return v.is(Kind::kBoolean) && v.as_bool();
  if (name == "none") return v.is(Kind::kNull);
  if (name == "string") return v.is(Kind::kString);
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is(Kind::kInteger);
  if (name == "iterable") return v.is(Kind::kArray) || v.is(Kind::kString);
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_object() || v.is(Kind::kString);
  if (name == "lower") return v.is(Kind::kString) && v.as_string() == ascii_lower(v.as_string());
  if (name == "upper") return v.is(Kind::kString) && v.as_string() == ascii_upper(v.as_string());
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "equalto" || name == "eq") return v.same_as(arg);
  return plain_error("Unknown test: " + std::string(name));
}

bool is_known_test(std::string_view name) {
  return run_test(name, Value::null(), Value::null()).ok() || name == "odd" || name == "even";
}

// ---- methods (`value.name(...)`) ------------------------------------------------------------------

Value method(Function fn) { return Value::function(std::move(fn)); }

core::Result<Value> dictsort(const Value& object, const Arguments& args) {
  const SplitArgs a(args);
  const Value case_sensitive = a.get(0, "case_sensitive", Value::boolean(false));
  if (!case_sensitive.is(Kind::kBoolean)) return plain_error("case_sensitive must be a boolean");
  const Value by = a.get(1, "by", Value::string("key"));
  if (!by.is(Kind::kString)) return plain_error("by must be a string");
  if (by.as_string() != "key" && by.as_string() != "value") return plain_error("by must be either 'key' or 'value'");
  const Value reverse = a.get(2, "reverse", Value::boolean(false));
  if (!reverse.is(Kind::kBoolean)) return plain_error("reverse must be a boolean");
  std::vector<Value> pairs;
  for (const auto& [k, v] : object.attributes().entries()) pairs.push_back(Value::array({Value::string(k), v}));
  const std::size_t index = by.as_string() == "key" ? 0 : 1;
  AEGAEON_TRY(sort_values(pairs, [&](const Value& x, const Value& y) -> core::Result<int> {
    auto r = compare(x.items()[index], y.items()[index], case_sensitive.as_bool());
    if (!r.ok()) return r;
    return reverse.as_bool() ? -*r : *r;
  }));
  return Value::array(std::move(pairs));
}

Value object_items(const Value& object) {
  std::vector<Value> pairs;
  for (const auto& [k, v] : object.attributes().entries()) pairs.push_back(Value::array({Value::string(k), v}));
  return Value::array(std::move(pairs));
}

// The built-in attribute `name` of `v` (a method, or a string's/array's length), if any.
std::optional<Value> builtin(const Value& v, std::string_view name) {
  if (v.is_object()) {
    if (name == "get") {
      return method([v](Arguments& args, Environment&) -> core::Result<Value> {
        const Value key = args.empty() ? Value::undefined() : args[0];
        if (!key.is(Kind::kString)) return plain_error("Object key must be a string: got " + std::string(key.type_name()));
        if (const Value* found = v.attributes().find(key.as_string())) return *found;
        return args.size() > 1 ? args[1] : Value::null();
      });
    }
    if (name == "items") return method([v](Arguments&, Environment&) -> core::Result<Value> { return object_items(v); });
    if (name == "keys" || name == "values") {
      const bool keys = name == "keys";
      return method([v, keys](Arguments&, Environment&) -> core::Result<Value> {
        std::vector<Value> out;
        for (const auto& [k, x] : v.attributes().entries()) out.push_back(keys ? Value::string(k) : x);
        return Value::array(std::move(out));
      });
    }
    if (name == "dictsort") return method([v](Arguments& args, Environment&) { return dictsort(v, args); });
    return std::nullopt;
  }
  if (v.is_array()) {
    if (name == "length") return Value::integer(static_cast<std::int64_t>(v.items().size()));
    return std::nullopt;
  }
  if (!v.is(Kind::kString)) return std::nullopt;
  const std::string& s = v.as_string();
  using Transform = std::string (*)(const std::string&);
  static const std::pair<std::string_view, Transform> kNoArgument[] = {
      {"upper", [](const std::string& x) { return ascii_upper(x); }},
      {"lower", [](const std::string& x) { return ascii_lower(x); }},
      {"strip", [](const std::string& x) { return std::string(strip_js_whitespace(x, true, true)); }},
      {"lstrip", [](const std::string& x) { return std::string(strip_js_whitespace(x, true, false)); }},
      {"rstrip", [](const std::string& x) { return std::string(strip_js_whitespace(x, false, true)); }},
      {"title", [](const std::string& x) { return title_case(x); }},
      {"capitalize", [](const std::string& x) { return x.empty() ? x : ascii_upper(x.substr(0, 1)) + x.substr(1); }},
  };
  for (const auto& [method_name, transform] : kNoArgument) {
    if (name == method_name) {
      return method([s, transform = transform](Arguments&, Environment&) -> core::Result<Value> {
        return Value::string(transform(s));  // like @huggingface/jinja, arguments are ignored
      });
    }
  }
  if (name == "length") return Value::integer(js_length(s));
  if (name == "startswith" || name == "endswith") {
    const bool starts = name == "startswith";
    return method([s, starts](Arguments& args, Environment&) -> core::Result<Value> {
      const char* fn = starts ? "startswith" : "endswith";
      if (args.empty()) return plain_error(std::string(fn) + "() requires at least one argument");
      auto matches = [&](const std::string& p) {
        return p.size() <= s.size() && (starts ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
      };
      if (args[0].is(Kind::kString)) return Value::boolean(matches(args[0].as_string()));
      if (args[0].is_array()) {
        for (const auto& item : args[0].items()) {
          if (!item.is(Kind::kString)) return plain_error(std::string(fn) + "() tuple elements must be strings");
          if (matches(item.as_string())) return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      return plain_error(std::string(fn) + "() argument must be a string or tuple of strings");
    });
  }
  if (name == "split") {
    return method([s](Arguments& args, Environment&) -> core::Result<Value> {
      const Value sep = args.empty() ? Value::null() : args[0];
      if (!sep.is(Kind::kString) && !sep.is(Kind::kNull)) return plain_error("sep argument must be a string or null");
      const Value maxsplit = args.size() > 1 ? args[1] : Value::integer(-1);
      if (!maxsplit.is(Kind::kInteger)) return plain_error("maxsplit argument must be a number");
      if (sep.is(Kind::kString) && sep.as_string().empty()) return plain_error("empty separator");
      return split(s, sep, maxsplit.as_integer());
    });
  }
  if (name == "replace") {
    return method([s](Arguments& args, Environment&) -> core::Result<Value> {
      if (args.size() < 2) return plain_error("replace() requires at least two arguments");
      if (!args[0].is(Kind::kString) || !args[1].is(Kind::kString)) return plain_error("replace() arguments must be strings");
      Value count = Value::null();
      if (args.size() > 2) {
        if (args[2].is(Kind::kKwargs)) {
          const Value* c = args[2].attributes().find("count");
          count = c ? *c : Value::null();
        } else {
          count = args[2];
        }
      }
      if (!count.is(Kind::kInteger) && !count.is(Kind::kNull)) return plain_error("replace() count argument must be a number or null");
      return Value::string(replace(s, args[0].as_string(), args[1].as_string(), count.is(Kind::kNull) ? -1 : count.as_integer()));
    });
  }
  return std::nullopt;
}

// ---- globals --------------------------------------------------------------------------------------

// strftime with the directives @huggingface/jinja knows (%Y %m %d %b %B %H %M %%), in UTC.
std::string strftime_subset(std::chrono::system_clock::time_point now, const std::string& format) {
  static const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                  "July",    "August",   "September", "October", "November", "December"};
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  auto pad2 = [](int n) { return (n < 10 ? "0" : "") + std::to_string(n); };
  std::string out;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      out += format[i];
      continue;
    }
    const char d = format[i + 1];
    switch (d) {
      case 'Y': out += std::to_string(tm.tm_year + 1900); break;
      case 'm': out += pad2(tm.tm_mon + 1); break;
      case 'd': out += pad2(tm.tm_mday); break;
      case 'b': out += std::string(kMonths[tm.tm_mon]).substr(0, 3); break;
      case 'B': out += kMonths[tm.tm_mon]; break;
      case 'H': out += pad2(tm.tm_hour); break;
      case 'M': out += pad2(tm.tm_min); break;
      case '%': out += '%'; break;
      default: out += format.substr(i, 2);
    }
    ++i;
  }
  return out;
}

Value namespace_function() {
  return method([](Arguments& args, Environment&) -> core::Result<Value> {
    const SplitArgs a(args);
    if (a.positional.size() > 1) {
      return plain_error("namespace expected at most 1 argument, got " + std::to_string(a.positional.size()));
    }
    Object entries;
    if (a.positional.size() == 1) {
      const Value& source = a.positional[0];
      if (source.is_object()) {
        for (const auto& [k, v] : source.attributes().entries()) entries.set(k, v);
      } else if (source.is_array()) {
        for (const auto& pair : source.items()) {
          if (!pair.is_array() || pair.items().size() != 2 || !pair.items()[0].is(Kind::kString)) {
            return plain_error("namespace expected an object or an iterable of [key, value] pairs");
          }
          entries.set(pair.items()[0].as_string(), pair.items()[1]);
        }
      } else {
        return plain_error("'" + std::string(source.type_name()) + "' object is not iterable");
      }
    }
    if (a.keywords) {
      for (const auto& [k, v] : a.keywords->entries()) entries.set(k, v);
    }
    for (const auto& [k, v] : entries.entries()) {
      if (v.depth() > Value::kMaxNamespaceDepth) {
        return plain_error("namespace attribute '" + k + "' nests deeper than " + std::to_string(Value::kMaxNamespaceDepth));
      }
    }
    return Value::object(std::move(entries), Kind::kNamespace);
  });
}

Value range_function() {
  return method([](Arguments& args, Environment&) -> core::Result<Value> {
    for (const auto& a : args) {
      if (!a.is(Kind::kInteger)) return plain_error("range() arguments must be integers");
    }
    if (args.empty() || args.size() > 3) return plain_error("range() takes 1 to 3 arguments");
    std::int64_t start = 0;
    std::int64_t stop = args[0].as_integer();
    std::int64_t step = 1;
    if (args.size() > 1) {
      start = args[0].as_integer();
      stop = args[1].as_integer();
    }
    if (args.size() > 2) step = args[2].as_integer();
    if (step == 0) return plain_error("range() step must not be zero");
    std::vector<Value> out;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() > 1'000'000) return plain_error("range() is too long");
      out.push_back(Value::integer(i));
    }
    return Value::array(std::move(out));
  });
}

// ---- the interpreter ------------------------------------------------------------------------------

enum class Jump { kNone, kBreak, kContinue };

class Interpreter {
 public:
  explicit Interpreter(const RenderOptions& options) : options_(options) {}

  core::Result<std::string> run(const Body& body, const Value& context) {
    Environment& globals = new_scope(nullptr);
    globals.set("namespace", namespace_function());
    for (const char* name : {"true", "True"}) globals.set(name, Value::boolean(true));
    for (const char* name : {"false", "False"}) globals.set(name, Value::boolean(false));
    for (const char* name : {"none", "None"}) globals.set(name, Value::null());
    globals.set("raise_exception", method([](Arguments& args, Environment&) -> core::Result<Value> {
                  const std::string message = args.empty() ? "" : args[0].to_concat_string();
                  return plain_error("raise_exception: " + message);
                }));
    globals.set("range", range_function());
    const auto now = options_.now.value_or(std::chrono::system_clock::now());
    globals.set("strftime_now", method([now](Arguments& args, Environment&) -> core::Result<Value> {
                  if (args.empty() || !args[0].is(Kind::kString)) return plain_error("strftime_now() needs a format string");
                  return Value::string(strftime_subset(now, args[0].as_string()));
                }));
    if (context.is_attribute_container()) {
      for (const auto& [k, v] : context.attributes().entries()) globals.set(k, v);
    }
    return render(body, globals);
  }

 private:
  Environment& new_scope(Environment* parent) { return scopes_.emplace_back(parent); }

  // Counts one step (a statement or a loop iteration) against the budget.
  core::Result<std::monostate> step(int line) {
    if (++steps_ > options_.max_steps) {
      return template_error(line, "the template ran more than " + std::to_string(options_.max_steps) +
                                      " steps (a loop without end?)");
    }
    return std::monostate{};
  }

  // Fails when `v` (a string or a list) is larger, or nests deeper, than a render may build
  // (deep values would overflow the stack when printed or freed).
  core::Result<Value> bounded(core::Result<Value> v, int line) const {
    if (!v.ok()) return v;
    if (v->depth() > kMaxValueDepth) return template_error(line, "a value nests deeper than " + std::to_string(kMaxValueDepth));
    const std::size_t size = v->is(Kind::kString) ? v->as_string().size() : (v->is_array() ? v->items().size() : 0);
    if (size > options_.max_value_size) {
      return template_error(line, "a value grew past " + std::to_string(options_.max_value_size) + " bytes or items");
    }
    return v;
  }

  // ---- statements
  core::Result<std::string> render(const Body& body, Environment& env) {
    std::string out;
    for (const Stmt& stmt : body) {
      AEGAEON_TRY(step(stmt.line));
      AEGAEON_TRY(render_statement(stmt, env, out));
      if (out.size() > options_.max_value_size) {
        return template_error(stmt.line, "the output grew past " + std::to_string(options_.max_value_size) + " bytes");
      }
      if (jump_ != Jump::kNone) break;
    }
    return out;
  }

  core::Result<std::monostate> render_statement(const Stmt& stmt, Environment& env, std::string& out) {
    return std::visit(
        [&](const auto& node) -> core::Result<std::monostate> {
          using T = std::decay_t<decltype(node)>;
          if constexpr (std::is_same_v<T, ast::Text>) {
            out += node.text;
          } else if constexpr (std::is_same_v<T, ast::Output>) {
            AEGAEON_TRY_ASSIGN(v, eval(*node.expr, env));
            out += v.to_output();
          } else if constexpr (std::is_same_v<T, ast::If>) {
            AEGAEON_TRY_ASSIGN(test, eval(*node.test, env));
            AEGAEON_TRY_ASSIGN(text, render(test.truthy() ? node.body : node.otherwise, env));
            out += text;
          } else if constexpr (std::is_same_v<T, ast::For>) {
            AEGAEON_TRY_ASSIGN(text, render_for(node, env));
            out += text;
          } else if constexpr (std::is_same_v<T, ast::Set>) {
            AEGAEON_TRY(execute_set(node, env, stmt.line));
          } else if constexpr (std::is_same_v<T, ast::Macro>) {
            define_macro(node, env);
          } else if constexpr (std::is_same_v<T, ast::CallBlock>) {
            AEGAEON_TRY_ASSIGN(v, call_block(node, env, stmt.line));
            out += v.to_output();
          } else if constexpr (std::is_same_v<T, ast::FilterBlock>) {
            AEGAEON_TRY_ASSIGN(text, render(node.body, env));
            const auto& filter = std::get<ast::Filter>(node.filter->node);
            AEGAEON_TRY_ASSIGN(v, apply_filter(Value::string(text), filter, env, node.filter->line));
            out += v.to_output();
          } else if constexpr (std::is_same_v<T, ast::Break>) {
            jump_ = Jump::kBreak;
          } else if constexpr (std::is_same_v<T, ast::Continue>) {
            jump_ = Jump::kContinue;
          }
          return std::monostate{};
        },
        stmt.node);
  }

  core::Result<std::monostate> bind_target(const Expr& target, const Value& value, Environment& scope) {
    if (const auto* name = std::get_if<ast::Name>(&target.node)) {
      scope.set(name->name, value);
      return std::monostate{};
    }
    const auto& names = std::get<ast::ArrayLiteral>(target.node).items;
    for (std::size_t j = 0; j < names.size(); ++j) {
      const auto* name = std::get_if<ast::Name>(&names[j]->node);
      if (!name) return template_error(target.line, "cannot unpack into something that is not a name");
      scope.set(name->name, j < value.items().size() ? value.items()[j] : Value::undefined());
    }
    return std::monostate{};
  }

  core::Result<std::string> render_for(const ast::For& node, Environment& env) {
    Environment& scope = new_scope(&env);
    AEGAEON_TRY_ASSIGN(iterable, eval(*node.iterable, scope));
    if (iterable.is_object()) {
      std::vector<Value> keys;
      for (const auto& entry : iterable.attributes().entries()) keys.push_back(Value::string(entry.first));
      iterable = Value::array(std::move(keys));
    }
    if (!iterable.is_array()) {
      return template_error(node.iterable->line, "Expected iterable or object type in for loop: got " +
                                                     std::string(iterable.type_name()));
    }
    const auto* tuple = std::get_if<ast::ArrayLiteral>(&node.target->node);
    std::vector<Value> items;
    for (const Value& item : iterable.items()) {
      if (tuple) {
        if (!item.is_array()) return template_error(node.target->line, "Cannot unpack non-iterable type: " + std::string(item.type_name()));
        if (item.items().size() != tuple->items.size()) {
          return template_error(node.target->line, std::string("Too ") + (tuple->items.size() > item.items().size() ? "few" : "many") +
                                                       " items to unpack");
        }
      }
      if (node.condition) {
        Environment& test_scope = new_scope(&scope);
        AEGAEON_TRY(bind_target(*node.target, item, test_scope));
        AEGAEON_TRY_ASSIGN(keep, eval(*node.condition, test_scope));
        if (!keep.truthy()) continue;
      }
      items.push_back(item);
    }
    std::string out;
    bool rendered_any = false;
    for (std::size_t i = 0; i < items.size(); ++i) {
      Object loop;
      const auto n = static_cast<std::int64_t>(items.size());
      const auto index = static_cast<std::int64_t>(i);
      loop.set("index", Value::integer(index + 1));
      loop.set("index0", Value::integer(index));
      loop.set("revindex", Value::integer(n - index));
      loop.set("revindex0", Value::integer(n - index - 1));
      loop.set("first", Value::boolean(i == 0));
      loop.set("last", Value::boolean(index == n - 1));
      loop.set("length", Value::integer(n));
      loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined());
      loop.set("nextitem", i + 1 < items.size() ? items[i + 1] : Value::undefined());
      scope.set("loop", Value::object(std::move(loop)));
      AEGAEON_TRY(step(node.target->line));
      AEGAEON_TRY(bind_target(*node.target, items[i], scope));
      AEGAEON_TRY_ASSIGN(text, render(node.body, scope));
      if (jump_ != Jump::kNone) {  // an iteration that breaks or continues adds nothing
        const Jump jump = jump_;
        jump_ = Jump::kNone;
        if (jump == Jump::kBreak) break;
        continue;
      }
      out += text;
      rendered_any = true;
    }
    if (!rendered_any) {
      AEGAEON_TRY_ASSIGN(text, render(node.otherwise, scope));
      out += text;
    }
    return out;
  }

  core::Result<std::monostate> execute_set(const ast::Set& node, Environment& env, int line) {
    Value value;
    if (node.value) {
      AEGAEON_TRY_ASSIGN(v, eval(*node.value, env));
      value = std::move(v);
    } else {
      AEGAEON_TRY_ASSIGN(text, render(node.body, env));
      value = Value::string(std::move(text));
    }
    const Expr& target = *node.target;
    if (const auto* name = std::get_if<ast::Name>(&target.node)) {
      env.set(name->name, std::move(value));
      return std::monostate{};
    }
    if (const auto* tuple = std::get_if<ast::ArrayLiteral>(&target.node)) {
      if (!value.is_array()) return template_error(line, "Cannot unpack non-iterable type in set: " + std::string(value.type_name()));
      if (value.items().size() != tuple->items.size()) {
        return template_error(line, std::string("Too ") + (tuple->items.size() > value.items().size() ? "few" : "many") +
                                        " items to unpack in set");
      }
      return bind_target(target, value, env);
    }
    if (const auto* member = std::get_if<ast::Member>(&target.node)) {
      AEGAEON_TRY_ASSIGN(object, eval(*member->object, env));
      if (!object.is(Kind::kNamespace)) return template_error(line, "cannot assign attribute on non-namespace object");
      const auto* property = std::get_if<ast::Name>(&member->property->node);
      if (member->computed || !property) return template_error(line, "Cannot assign to member with non-identifier property");
      // A namespace that reached itself would be a cycle: never freed, and endless to print.
      if (reaches(value, object, 0)) return template_error(line, "a namespace cannot contain itself");
      if (value.depth() > Value::kMaxNamespaceDepth) {
        return template_error(line, "a namespace attribute nests deeper than " + std::to_string(Value::kMaxNamespaceDepth));
      }
      object.mutable_attributes().set(property->name, std::move(value));
      return std::monostate{};
    }
    return template_error(line, "invalid target of a set");
  }

  // Binds a call's arguments to `params` in `scope` (defaults evaluated there afterwards).
  core::Result<std::monostate> bind_arguments(const std::string& display_name, const std::vector<ExprPtr>& params,
                                              const ast::SpecialNames& special, const Arguments& args,
                                              Environment& scope) {
    SplitArgs a(args);
    Object keywords = a.keywords ? *a.keywords : Object{};
    std::vector<std::pair<std::string, const Expr*>> pending_defaults;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Expr& p = *params[i];
      const auto* keyword = std::get_if<ast::KeywordArg>(&p.node);
      const std::string name = keyword ? keyword->name : std::get<ast::Name>(p.node).name;
      std::optional<Value> value;
      if (i < a.positional.size()) value = a.positional[i];
      if (!value) {
        if (const Value* k = keywords.find(name)) {
          value = *k;
          keywords.erase(name);
        }
      }
      if (!value && keyword) pending_defaults.emplace_back(name, keyword->value.get());
      scope.set(name, value.value_or(Value::undefined()));
    }
    if (special.kwargs) {
      scope.set("kwargs", Value::object(keywords));
    } else if (keywords.size() > 0) {
      return plain_error("macro " + display_name + " takes no keyword argument '" + keywords.entries().front().first + "'");
    }
    if (special.varargs) {
      std::vector<Value> rest;
      for (std::size_t i = params.size(); i < a.positional.size(); ++i) rest.push_back(a.positional[i]);
      scope.set("varargs", Value::array(std::move(rest)));
    } else if (a.positional.size() > params.size()) {
      return plain_error("macro " + display_name + " takes not more than " + std::to_string(params.size()) + " argument(s)");
    }
    for (const auto& [name, default_expr] : pending_defaults) {
      AEGAEON_TRY_ASSIGN(v, eval(*default_expr, scope));
      scope.set(name, std::move(v));
    }
    return std::monostate{};
  }

  // Whether `target` (a namespace) can be reached from `v` through lists, objects and namespaces.
  static bool reaches(const Value& v, const Value& target, int depth) {
    if (v.same_as(target)) return true;
    if (depth > 64) return true;  // deeper than any template builds: refuse rather than recurse
    if (v.is_array()) {
      return std::any_of(v.items().begin(), v.items().end(), [&](const Value& x) { return reaches(x, target, depth + 1); });
    }
    if (v.is_attribute_container()) {
      const auto& entries = v.attributes().entries();
      return std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return reaches(e.second, target, depth + 1); });
    }
    return false;
  }

  void define_macro(const ast::Macro& node, Environment& env) {
    Environment* definition = &env;
    const ast::Macro* macro = &node;
    env.set(node.name, method([this, definition, macro](Arguments& args, Environment& call_site) -> core::Result<Value> {
              if (macro_depth_ >= kMaxMacroDepth) {
                return plain_error("macro '" + macro->name + "' nests deeper than " + std::to_string(kMaxMacroDepth) +
                                   " calls (endless recursion?)");
              }
              ++macro_depth_;
              struct Leave {
                int& depth;
                ~Leave() { --depth; }
              } leave{macro_depth_};
              Environment* parent = definition;
              if (macro->special.caller) {
                const Value* caller = call_site.call_block ? call_site.find_local("caller") : nullptr;
                parent = &new_scope(definition);
                parent->set("caller", caller ? *caller : Value::undefined());
              }
              Environment& scope = new_scope(parent);
              AEGAEON_TRY(bind_arguments("'" + macro->name + "'", macro->params, macro->special, args, scope));
              AEGAEON_TRY_ASSIGN(text, render(macro->body, scope));
              return Value::string(std::move(text));
            }));
  }

  core::Result<Value> call_block(const ast::CallBlock& node, Environment& env, int line) {
    Environment* definition = &env;
    const ast::CallBlock* block = &node;
    Value caller = method([this, definition, block](Arguments& args, Environment&) -> core::Result<Value> {
      Environment& scope = new_scope(definition);
      AEGAEON_TRY(bind_arguments("None", block->caller_params, block->special, args, scope));
      AEGAEON_TRY_ASSIGN(text, render(block->body, scope));
      return Value::string(std::move(text));
    });
    const auto& call = std::get<ast::Call>(node.call->node);
    AEGAEON_TRY_ASSIGN(args, evaluate_arguments(call.args, env, /*always_keywords=*/true));
    AEGAEON_TRY_ASSIGN(fn, eval(*call.callee, env));
    if (!fn.is(Kind::kFunction)) {
      return template_error(line, "Cannot call something that is not a function: got " + std::string(fn.type_name()));
    }
    Environment& site = new_scope(&env);
    site.call_block = true;
    site.set("caller", std::move(caller));
    auto result = fn.as_function()(args, site);
    if (!result.ok()) return template_error(line, result.error().message);
    return result;
  }

  // ---- expressions
  core::Result<Arguments> evaluate_arguments(const std::vector<ExprPtr>& exprs, Environment& env, bool always_keywords) {
    Arguments positional;
    Object keywords;
    bool any_keyword = false;
    for (const auto& e : exprs) {
      if (const auto* spread = std::get_if<ast::Spread>(&e->node); spread && !spread->keywords) {
        AEGAEON_TRY_ASSIGN(v, eval(*spread->value, env));
        if (!v.is_array()) return template_error(e->line, "Cannot unpack non-iterable type: " + std::string(v.type_name()));
        for (const auto& item : v.items()) positional.push_back(item);
      } else if (!std::holds_alternative<ast::KeywordArg>(e->node) && !std::holds_alternative<ast::Spread>(e->node)) {
        AEGAEON_TRY_ASSIGN(v, eval(*e, env));
        positional.push_back(std::move(v));
      }
    }
    for (const auto& e : exprs) {
      auto add = [&](const std::string& key, Value v) -> core::Result<std::monostate> {
        if (keywords.contains(key)) return template_error(e->line, "Got multiple values for keyword argument '" + key + "'");
        keywords.set(key, std::move(v));
        any_keyword = true;
        return std::monostate{};
      };
      if (const auto* kw = std::get_if<ast::KeywordArg>(&e->node)) {
        AEGAEON_TRY_ASSIGN(v, eval(*kw->value, env));
        AEGAEON_TRY(add(kw->name, std::move(v)));
      } else if (const auto* spread = std::get_if<ast::Spread>(&e->node); spread && spread->keywords) {
        AEGAEON_TRY_ASSIGN(v, eval(*spread->value, env));
        if (!v.is_object()) return template_error(e->line, "Argument after ** must be a mapping, not " + std::string(v.type_name()));
        for (const auto& [k, x] : v.attributes().entries()) AEGAEON_TRY(add(k, x));
      }
    }
    if (any_keyword || always_keywords) positional.push_back(Value::object(std::move(keywords), Kind::kKwargs));
    return positional;
  }

  core::Result<Value> eval(const Expr& expr, Environment& env) {
    return std::visit([&](const auto& node) { return eval_node(node, expr.line, env); }, expr.node);
  }

  core::Result<Value> eval_node(const ast::Literal& node, int, Environment&) { return node.value; }
  core::Result<Value> eval_node(const ast::Name& node, int, Environment& env) { return env.lookup(node.name); }
  core::Result<Value> eval_node(const ast::KeywordArg&, int line, Environment&) {
    return template_error(line, "a keyword argument outside a call");
  }
  core::Result<Value> eval_node(const ast::Spread&, int line, Environment&) {
    return template_error(line, "argument unpacking outside a call");
  }

  core::Result<Value> eval_node(const ast::ArrayLiteral& node, int line, Environment& env) {
    std::vector<Value> items;
    for (const auto& e : node.items) {
      AEGAEON_TRY_ASSIGN(v, eval(*e, env));
      items.push_back(std::move(v));
    }
    return bounded(Value::array(std::move(items), node.tuple ? Kind::kTuple : Kind::kArray), line);
  }

  core::Result<Value> eval_node(const ast::ObjectLiteral& node, int line, Environment& env) {
    Object object;
    for (const auto& [key_expr, value_expr] : node.entries) {
      AEGAEON_TRY_ASSIGN(key, eval(*key_expr, env));
      if (!key.is(Kind::kString)) return template_error(line, "Object keys must be strings: got " + std::string(key.type_name()));
      AEGAEON_TRY_ASSIGN(value, eval(*value_expr, env));
      object.set(key.as_string(), std::move(value));
    }
    return bounded(Value::object(std::move(object)), line);
  }

  core::Result<Value> eval_node(const ast::Member& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(object, eval(*node.object, env));
    Value property;
    if (node.computed) {
      AEGAEON_TRY_ASSIGN(p, eval(*node.property, env));
      property = std::move(p);
    } else if (const auto* literal = std::get_if<ast::Literal>(&node.property->node)) {
      property = literal->value;
    } else {
      property = Value::string(std::get<ast::Name>(node.property->node).name);
    }
    if (object.is_attribute_container()) {
      if (!property.is(Kind::kString)) {
        return template_error(line, "Cannot access property with non-string: got " + std::string(property.type_name()));
      }
      if (const Value* found = object.attributes().find(property.as_string())) return *found;
      if (object.is_object()) return builtin(object, property.as_string()).value_or(Value::undefined());
      return Value::undefined();
    }
    if (object.is_array() || object.is(Kind::kString)) {
      if (property.is(Kind::kInteger)) {
        if (object.is(Kind::kString)) {
          const auto chars = code_points(object.as_string());
          auto i = property.as_integer();
          if (i < 0) i += static_cast<std::int64_t>(chars.size());
          if (i < 0 || i >= static_cast<std::int64_t>(chars.size())) return Value::undefined();
          return Value::string(chars[static_cast<std::size_t>(i)]);
        }
        auto i = property.as_integer();
        const auto n = static_cast<std::int64_t>(object.items().size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined();
        return object.items()[static_cast<std::size_t>(i)];
      }
      if (property.is(Kind::kString)) return builtin(object, property.as_string()).value_or(Value::undefined());
      return template_error(line, "Cannot access property with non-string/non-number: got " + std::string(property.type_name()));
    }
    if (!property.is(Kind::kString)) {
      return template_error(line, "Cannot access property with non-string: got " + std::string(property.type_name()));
    }
    return Value::undefined();
  }

  core::Result<Value> eval_node(const ast::Slice& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(object, eval(*node.object, env));
    if (!object.is_array() && !object.is(Kind::kString)) return template_error(line, "Slice object must be an array or string");
    std::optional<std::int64_t> bounds[3];
    const ExprPtr* parts[3] = {&node.start, &node.stop, &node.step};
    for (int i = 0; i < 3; ++i) {
      if (!*parts[i]) continue;
      AEGAEON_TRY_ASSIGN(v, eval(**parts[i], env));
      if (v.is_undefined()) continue;
      if (!v.is(Kind::kInteger)) return template_error(line, "Slice indices must be integers or undefined");
      bounds[i] = v.as_integer();
    }
    const std::int64_t step = bounds[2].value_or(1);
    if (object.is_array()) return Value::array(slice(object.items(), bounds[0], bounds[1], step));
    std::string out;
    for (const auto& c : slice(code_points(object.as_string()), bounds[0], bounds[1], step)) out += c;
    return Value::string(std::move(out));
  }

  core::Result<Value> eval_node(const ast::Call& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(args, evaluate_arguments(node.args, env, false));
    AEGAEON_TRY_ASSIGN(fn, eval(*node.callee, env));
    if (!fn.is(Kind::kFunction)) {
      return template_error(line, "Cannot call something that is not a function: got " + std::string(fn.type_name()));
    }
    auto result = fn.as_function()(args, env);
    if (!result.ok() && result.error().message.rfind("line ", 0) != 0) return template_error(line, result.error().message);
    return bounded(std::move(result), line);
  }

  core::Result<Value> eval_node(const ast::Filter& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(operand, eval(*node.operand, env));
    return apply_filter(std::move(operand), node, env, line);
  }

  core::Result<Value> eval_node(const ast::Test& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(operand, eval(*node.operand, env));
    auto result = run_test(node.name, operand, Value::undefined());
    if (!result.ok()) return template_error(line, result.error().message);
    return Value::boolean(node.negate ? !*result : *result);
  }

  core::Result<Value> eval_node(const ast::Select& node, int, Environment& env) {
    AEGAEON_TRY_ASSIGN(condition, eval(*node.condition, env));
    if (!condition.truthy()) return Value::undefined();
    return eval(*node.value, env);
  }

  core::Result<Value> eval_node(const ast::Ternary& node, int, Environment& env) {
    AEGAEON_TRY_ASSIGN(condition, eval(*node.condition, env));
    return eval(condition.truthy() ? *node.if_true : *node.if_false, env);
  }

  core::Result<Value> eval_node(const ast::Unary& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(v, eval(*node.operand, env));
    if (node.op == "not") return Value::boolean(!v.truthy());
    const double sign = node.op == "-" ? -1.0 : 1.0;
    if (v.is(Kind::kFloat)) return Value::floating(sign * v.as_float());
    if (v.is(Kind::kInteger)) return Value::integer(node.op == "-" ? -v.as_integer() : v.as_integer());
    if (v.is(Kind::kBoolean)) return Value::integer(static_cast<std::int64_t>(sign) * (v.as_bool() ? 1 : 0));
    return template_error(line, "Unknown operator \"" + node.op + "\" for " + std::string(v.type_name()));
  }

  core::Result<Value> eval_node(const ast::Binary& node, int line, Environment& env) {
    AEGAEON_TRY_ASSIGN(left, eval(*node.left, env));
    const std::string& op = node.op;
    if (op == "and") return left.truthy() ? eval(*node.right, env) : core::Result<Value>(left);
    if (op == "or") return left.truthy() ? core::Result<Value>(left) : eval(*node.right, env);
    AEGAEON_TRY_ASSIGN(right, eval(*node.right, env));
    auto result = binary(op, left, right);
    if (!result.ok()) return template_error(line, result.error().message);
    return bounded(std::move(result), line);
  }

  static core::Result<Value> binary(const std::string& op, const Value& left, const Value& right) {
    if (op == "==") return Value::boolean(left.loosely_equals(right));
    if (op == "!=") return Value::boolean(!left.loosely_equals(right));
    if (left.is_number() && right.is_number() && op != "~" && op != "**") {
      const bool is_float = left.is(Kind::kFloat) || right.is(Kind::kFloat);
      const double a = left.as_number();
      const double b = right.as_number();
      auto number = [&](double d) {
        return is_float || !std::isfinite(d) ? Value::floating(d) : Value::integer(static_cast<std::int64_t>(d));
      };
      if (op == "+") return is_float ? Value::floating(a + b) : Value::integer(left.as_integer() + right.as_integer());
      if (op == "-") return is_float ? Value::floating(a - b) : Value::integer(left.as_integer() - right.as_integer());
      if (op == "*") return is_float ? Value::floating(a * b) : Value::integer(left.as_integer() * right.as_integer());
      if (op == "/") return Value::floating(a / b);
      if (op == "//") return number(std::floor(a / b));
      if (op == "%") return number(std::fmod(a, b));
      if (op == "<") return Value::boolean(a < b);
      if (op == ">") return Value::boolean(a > b);
      if (op == ">=") return Value::boolean(a >= b);
      if (op == "<=") return Value::boolean(a <= b);
    } else if (left.is_undefined() || right.is_undefined()) {
      if (right.is_undefined() && (op == "in" || op == "not in")) return Value::boolean(op == "not in");
      if (op == "~" && !left.is(Kind::kNull) && !right.is(Kind::kNull)) {
        return Value::string((left.is_undefined() ? "" : left.to_concat_string()) +
                             (right.is_undefined() ? "" : right.to_concat_string()));
      }
      return plain_error("Cannot perform operation " + op + " on undefined values");
    } else if (left.is(Kind::kNull) || right.is(Kind::kNull)) {
      return plain_error("Cannot perform operation on null values");
    } else if (op == "~") {
      return Value::string(left.to_concat_string() + right.to_concat_string());
    } else if (op == "**" && (left.is_number() || left.is(Kind::kBoolean)) && (right.is_number() || right.is(Kind::kBoolean))) {
      const double a = left.as_number();
      const double b = right.as_number();
      if (a == 0 && b < 0) return plain_error("0.0 cannot be raised to a negative power");
      const double r = std::pow(a, b);
      if (!std::isfinite(r)) return plain_error("Exponentiation result is not a finite real number");
      if (left.is(Kind::kFloat) || right.is(Kind::kFloat) || b < 0) return Value::floating(r);
      return Value::integer(static_cast<std::int64_t>(r));
    } else if (left.is_array() && right.is_array()) {
      if (op == "+") {
        std::vector<Value> joined = left.items();
        joined.insert(joined.end(), right.items().begin(), right.items().end());
        return Value::array(std::move(joined));
      }
    } else if (right.is_array()) {
      const bool member = std::any_of(right.items().begin(), right.items().end(), [&](const Value& x) { return x.same_as(left); });
      if (op == "in") return Value::boolean(member);
      if (op == "not in") return Value::boolean(!member);
    }
    if ((left.is(Kind::kString) || right.is(Kind::kString)) && op == "+") {
      return Value::string(left.to_concat_string() + right.to_concat_string());
    }
    if (left.is(Kind::kString) && right.is(Kind::kString) && (op == "in" || op == "not in")) {
      const bool found = right.as_string().find(left.as_string()) != std::string::npos;
      return Value::boolean(op == "in" ? found : !found);
    }
    if (left.is(Kind::kString) && right.is_object() && (op == "in" || op == "not in")) {
      const bool found = right.attributes().contains(left.as_string());
      return Value::boolean(op == "in" ? found : !found);
    }
    return plain_error("Unknown operator \"" + op + "\" between " + std::string(left.type_name()) + " and " +
                       std::string(right.type_name()));
  }

  // ---- filters
  core::Result<Value> apply_filter(Value operand, const ast::Filter& filter, Environment& env, int line) {
    auto result = filter.called ? call_filter(operand, filter, env) : plain_filter(operand, filter.name, env);
    if (!result.ok() && result.error().message.rfind("line ", 0) != 0) return template_error(line, result.error().message);
    return bounded(std::move(result), line);
  }

  // `value | name` without arguments.
  core::Result<Value> plain_filter(const Value& v, const std::string& name, Environment& env) {
    if (name == "safe") return v;
    if (name == "tojson") {
      AEGAEON_TRY_ASSIGN(text, to_json(v));
      return Value::string(std::move(text));
    }
    if (v.is_array()) {
      const auto& items = v.items();
      if (name == "list") return v;
      if (name == "first") return items.empty() ? Value::undefined() : items.front();
      if (name == "last") return items.empty() ? Value::undefined() : items.back();
      if (name == "length") return Value::integer(static_cast<std::int64_t>(items.size()));
      if (name == "reverse") return Value::array(std::vector<Value>(items.rbegin(), items.rend()));
      if (name == "sort") {
        std::vector<Value> sorted = items;
        AEGAEON_TRY(sort_values(sorted, [](const Value& a, const Value& b) { return compare(a, b, false); }));
        return Value::array(std::move(sorted));
      }
      if (name == "join") return Value::string(join(items, ""));
      if (name == "string") {
        JsonOptions options;
        options.undefined_as_null = false;
        AEGAEON_TRY_ASSIGN(text, to_json(v, options));
        return Value::string(std::move(text));
      }
      if (name == "unique") {
        std::vector<Value> out;
        for (const auto& item : items) {
          if (std::none_of(out.begin(), out.end(), [&](const Value& seen) { return seen.same_as(item); })) out.push_back(item);
        }
        return Value::array(std::move(out));
      }
      return plain_error("Unknown ArrayValue filter: " + name);
    }
    if (v.is(Kind::kString)) {
      const std::string& s = v.as_string();
      if (name == "length" || name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
        Value b = *builtin(v, name);
        if (b.is(Kind::kFunction)) {
          Arguments none;
          return b.as_function()(none, env);
        }
        return b;
      }
      if (name == "trim") return Value::string(std::string(strip_js_whitespace(s, true, true)));
      if (name == "indent") return Value::string(indent(s, "    ", false, false));
      if (name == "join" || name == "string") return v;
      if (name == "int") {
        const auto n = js_parse_number(s, true);
        return Value::integer(n ? static_cast<std::int64_t>(*n) : 0);
      }
      if (name == "float") return Value::floating(js_parse_number(s, false).value_or(0.0));
      return plain_error("Unknown StringValue filter: " + name);
    }
    if (v.is_number()) {
      if (name == "abs") return v.is(Kind::kInteger) ? Value::integer(std::llabs(v.as_integer())) : Value::floating(std::fabs(v.as_float()));
      if (name == "int") return Value::integer(static_cast<std::int64_t>(std::trunc(v.as_number())));
      if (name == "float") return Value::floating(v.as_number());
      if (name == "string") return Value::string(v.to_output());
      return plain_error("Unknown NumericValue filter: " + name);
    }
    if (v.is_object()) {
      if (name == "items") return object_items(v);
      if (name == "length") return Value::integer(static_cast<std::int64_t>(v.attributes().size()));
      if (auto b = builtin(v, name)) {
        if (!b->is(Kind::kFunction)) return *b;
        Arguments none;
        return b->as_function()(none, env);
      }
      return plain_error("Unknown ObjectValue filter: " + name);
    }
    if (v.is(Kind::kBoolean)) {
      if (name == "bool") return v;
      if (name == "int") return Value::integer(v.as_bool() ? 1 : 0);
      if (name == "float") return Value::floating(v.as_bool() ? 1.0 : 0.0);
      if (name == "string") return Value::string(v.as_bool() ? "true" : "false");
      return plain_error("Unknown BooleanValue filter: " + name);
    }
    return plain_error("Cannot apply filter \"" + name + "\" to type: " + std::string(v.type_name()));
  }

  // Array.join of the items' values: none and undefined join as empty strings.
  static std::string join(const std::vector<Value>& items, const std::string& separator) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += separator;
      if (!items[i].is_none_or_undefined()) out += items[i].to_concat_string();
    }
    return out;
  }

  static std::string indent(const std::string& s, const std::string& prefix, bool first, bool blank) {
    std::string out;
    std::size_t start = 0;
    for (std::size_t i = 0;; ++i) {
      const std::size_t end = s.find('\n', start);
      const std::string line = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (i > 0) out += '\n';
      out += ((!first && i == 0) || (!blank && line.empty())) ? line : prefix + line;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return out;
  }

  // `value | name(args)`.
  core::Result<Value> call_filter(const Value& v, const ast::Filter& filter, Environment& env) {
    const std::string& name = filter.name;
    AEGAEON_TRY_ASSIGN(args, evaluate_arguments(filter.args, env, false));
    const SplitArgs a(args);
    if (name == "tojson") {
      const Value indent_arg = a.keywords && a.keywords->find("indent") ? *a.keywords->find("indent") : Value::null();
      if (!indent_arg.is(Kind::kInteger) && !indent_arg.is(Kind::kNull)) return plain_error("If set, indent must be a number");
      const Value ascii = a.keywords && a.keywords->find("ensure_ascii") ? *a.keywords->find("ensure_ascii") : Value::boolean(false);
      if (!ascii.is(Kind::kBoolean)) return plain_error("If set, ensure_ascii must be a boolean");
      const Value sort = a.keywords && a.keywords->find("sort_keys") ? *a.keywords->find("sort_keys") : Value::boolean(false);
      if (!sort.is(Kind::kBoolean)) return plain_error("If set, sort_keys must be a boolean");
      JsonOptions options;
      options.indent = indent_arg.is(Kind::kInteger) ? static_cast<int>(indent_arg.as_integer()) : -1;
      options.ensure_ascii = ascii.as_bool();
      options.sort_keys = sort.as_bool();
      if (const Value* separators = a.keywords ? a.keywords->find("separators") : nullptr; separators && !separators->is(Kind::kNull)) {
        if (!separators->is_array() || separators->items().size() != 2 || !separators->items()[0].is(Kind::kString) ||
            !separators->items()[1].is(Kind::kString)) {
          return plain_error("separators must be a tuple of two strings");
        }
        options.separators.emplace(separators->items()[0].as_string(), separators->items()[1].as_string());
      }
      AEGAEON_TRY_ASSIGN(text, to_json(v, options));
      return Value::string(std::move(text));
    }
    if (name == "join") {
      const Value separator = a.get(0, "separator", Value::string(""));
      if (!separator.is(Kind::kString)) return plain_error("separator must be a string");
      if (v.is(Kind::kString)) {
        std::string out;
        const auto chars = code_points(v.as_string());
        for (std::size_t i = 0; i < chars.size(); ++i) out += (i > 0 ? separator.as_string() : "") + chars[i];
        return Value::string(std::move(out));
      }
      if (v.is_array()) return Value::string(join(v.items(), separator.as_string()));
      return plain_error("Cannot apply filter \"join\" to type: " + std::string(v.type_name()));
    }
    if (name == "int" || name == "float") {
      const bool integer = name == "int";
      const Value fallback = a.get(0, "default", integer ? Value::integer(0) : Value::floating(0.0));
      if (v.is(Kind::kString)) {
        const auto n = js_parse_number(v.as_string(), integer);
        if (!n) return fallback;
        return integer ? Value::integer(static_cast<std::int64_t>(*n)) : Value::floating(*n);
      }
      if (v.is_number()) return integer ? Value::integer(static_cast<std::int64_t>(std::trunc(v.as_number()))) : Value::floating(v.as_number());
      if (v.is(Kind::kBoolean)) return integer ? Value::integer(v.as_bool() ? 1 : 0) : Value::floating(v.as_bool() ? 1.0 : 0.0);
      return plain_error("Cannot apply filter \"" + name + "\" to type: " + std::string(v.type_name()));
    }
    if (name == "default") {
      const Value fallback = a.positional.empty() ? Value::string("") : a.positional[0];
      const Value boolean = a.get(1, "boolean", Value::boolean(false));
      if (!boolean.is(Kind::kBoolean)) return plain_error("`default` filter flag must be a boolean");
      if (v.is_undefined() || (boolean.as_bool() && !v.truthy())) return fallback;
      return v;
    }
    if (v.is_array()) {
      if (name == "sort") {
        const Value reverse = a.get(0, "reverse", Value::boolean(false));
        if (!reverse.is(Kind::kBoolean)) return plain_error("reverse must be a boolean");
        const Value case_sensitive = a.get(1, "case_sensitive", Value::boolean(false));
        if (!case_sensitive.is(Kind::kBoolean)) return plain_error("case_sensitive must be a boolean");
        const Value attribute = a.get(2, "attribute", Value::null());
        if (!attribute.is(Kind::kString) && !attribute.is(Kind::kInteger) && !attribute.is(Kind::kNull)) {
          return plain_error("attribute must be a string, integer, or null");
        }
        auto key = [&](const Value& item) {
          if (attribute.is(Kind::kNull)) return item;
          return attribute_path(item, attribute.is(Kind::kInteger) ? std::to_string(attribute.as_integer()) : attribute.as_string());
        };
        std::vector<Value> sorted = v.items();
        AEGAEON_TRY(sort_values(sorted, [&](const Value& x, const Value& y) -> core::Result<int> {
          auto r = compare(key(x), key(y), case_sensitive.as_bool());
          if (!r.ok()) return r;
          return reverse.as_bool() ? -*r : *r;
        }));
        return Value::array(std::move(sorted));
      }
      if (name == "selectattr" || name == "rejectattr") {
        const bool select = name == "selectattr";
        for (const auto& item : v.items()) {
          if (!item.is_attribute_container()) return plain_error("`" + name + "` can only be applied to array of objects");
        }
        for (const auto& e : filter.args) {
          const auto* literal = std::get_if<ast::Literal>(&e->node);
          if (!literal || !literal->value.is(Kind::kString)) return plain_error("arguments of `" + name + "` must be strings");
        }
        if (a.positional.empty()) return plain_error("`" + name + "` needs an attribute name");
        const std::string attr = a.positional[0].as_string();
        const std::string test = a.positional.size() > 1 ? a.positional[1].as_string() : "";
        const Value test_arg = a.positional.size() > 2 ? a.positional[2] : Value::undefined();
        if (!test.empty() && !is_known_test(test)) return plain_error("Unknown test: " + test);
        std::vector<Value> out;
        for (const auto& item : v.items()) {
          const Value* attribute = item.attributes().find(attr);
          bool passed = false;
          if (attribute) {  // present, whatever its value
            if (test.empty()) {
              passed = attribute->truthy();
            } else {
              AEGAEON_TRY_ASSIGN(r, run_test(test, *attribute, test_arg));
              passed = r;
            }
          }
          if (passed == select) out.push_back(item);
        }
        return Value::array(std::move(out));
      }
      if (name == "map") {
        const Value* attribute = a.keywords ? a.keywords->find("attribute") : nullptr;
        if (!attribute) return plain_error("`map` expressions without `attribute` set are not currently supported.");
        if (!attribute->is(Kind::kString)) return plain_error("attribute must be a string");
        const Value* fallback = a.keywords->find("default");
        std::vector<Value> out;
        for (const auto& item : v.items()) {
          if (!item.is_attribute_container()) return plain_error("items in map must be an object");
          Value mapped = attribute_path(item, attribute->as_string());
          out.push_back(mapped.is_undefined() && fallback ? *fallback : mapped);
        }
        return Value::array(std::move(out));
      }
      return plain_error("Unknown ArrayValue filter: " + name);
    }
    if (v.is(Kind::kString)) {
      if (name == "indent") {
        const Value width = a.get(0, "width", Value::integer(4));
        if (!width.is(Kind::kInteger) && !width.is(Kind::kString)) return plain_error("width must be an integer or a string");
        const std::string prefix = width.is(Kind::kString) ? width.as_string()
                                                           : std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, width.as_integer())), ' ');
        return Value::string(indent(v.as_string(), prefix, a.get(1, "first", Value::boolean(false)).truthy(),
                                    a.get(2, "blank", Value::boolean(false)).truthy()));
      }
      if (name == "replace") {
        Arguments forwarded = a.positional;
        forwarded.push_back(Value::object(a.keywords ? *a.keywords : Object{}, Kind::kKwargs));
        return builtin(v, "replace")->as_function()(forwarded, env);
      }
      return plain_error("Unknown StringValue filter: " + name);
    }
    if (v.is_object()) {
      if (auto b = builtin(v, name); b && b->is(Kind::kFunction)) return b->as_function()(args, env);
      return plain_error("Unknown ObjectValue filter: " + name);
    }
    return plain_error("Cannot apply filter \"" + name + "\" to type: " + std::string(v.type_name()));
  }

  static constexpr int kMaxMacroDepth = 64;
  static constexpr int kMaxValueDepth = 256;

  const RenderOptions& options_;
  std::deque<Environment> scopes_;  // every scope of one render: macros may refer to any of them
  Jump jump_ = Jump::kNone;
  std::int64_t steps_ = 0;
  int macro_depth_ = 0;
};

}  // namespace

namespace {

// Whether any Name node under `stmts` or `expr` is `name`.
bool reads_name(const Expr* expr, std::string_view name);
bool reads_name(const Body& body, std::string_view name);

bool reads_any(const std::vector<ExprPtr>& exprs, std::string_view name) {
  return std::any_of(exprs.begin(), exprs.end(), [&](const ExprPtr& e) { return reads_name(e.get(), name); });
}

bool reads_name(const Expr* expr, std::string_view name) {
  if (expr == nullptr) return false;
  return std::visit(
      [&](const auto& node) -> bool {
        using T = std::decay_t<decltype(node)>;
        if constexpr (std::is_same_v<T, ast::Name>) return node.name == name;
        if constexpr (std::is_same_v<T, ast::Member>) return reads_name(node.object.get(), name) || (node.computed && reads_name(node.property.get(), name));
        if constexpr (std::is_same_v<T, ast::Slice>) {
          return reads_name(node.object.get(), name) || reads_name(node.start.get(), name) ||
                 reads_name(node.stop.get(), name) || reads_name(node.step.get(), name);
        }
        if constexpr (std::is_same_v<T, ast::Call>) return reads_name(node.callee.get(), name) || reads_any(node.args, name);
        if constexpr (std::is_same_v<T, ast::Filter>) return reads_name(node.operand.get(), name) || reads_any(node.args, name);
        if constexpr (std::is_same_v<T, ast::Test> || std::is_same_v<T, ast::Unary>) return reads_name(node.operand.get(), name);
        if constexpr (std::is_same_v<T, ast::Binary>) return reads_name(node.left.get(), name) || reads_name(node.right.get(), name);
        if constexpr (std::is_same_v<T, ast::Ternary>) {
          return reads_name(node.condition.get(), name) || reads_name(node.if_true.get(), name) ||
                 reads_name(node.if_false.get(), name);
        }
        if constexpr (std::is_same_v<T, ast::Select>) return reads_name(node.value.get(), name) || reads_name(node.condition.get(), name);
        if constexpr (std::is_same_v<T, ast::ArrayLiteral>) return reads_any(node.items, name);
        if constexpr (std::is_same_v<T, ast::ObjectLiteral>) {
          return std::any_of(node.entries.begin(), node.entries.end(), [&](const auto& e) {
            return reads_name(e.first.get(), name) || reads_name(e.second.get(), name);
          });
        }
        if constexpr (std::is_same_v<T, ast::KeywordArg> || std::is_same_v<T, ast::Spread>) return reads_name(node.value.get(), name);
        return false;  // literals
      },
      expr->node);
}

bool reads_name(const Body& body, std::string_view name) {
  return std::any_of(body.begin(), body.end(), [&](const Stmt& stmt) {
    return std::visit(
        [&](const auto& node) -> bool {
          using T = std::decay_t<decltype(node)>;
          if constexpr (std::is_same_v<T, ast::Output>) return reads_name(node.expr.get(), name);
          if constexpr (std::is_same_v<T, ast::If>) {
            return reads_name(node.test.get(), name) || reads_name(node.body, name) || reads_name(node.otherwise, name);
          }
          if constexpr (std::is_same_v<T, ast::For>) {
            return reads_name(node.iterable.get(), name) || reads_name(node.condition.get(), name) ||
                   reads_name(node.body, name) || reads_name(node.otherwise, name);
          }
          if constexpr (std::is_same_v<T, ast::Set>) return reads_name(node.value.get(), name) || reads_name(node.body, name);
          if constexpr (std::is_same_v<T, ast::Macro>) return reads_any(node.params, name) || reads_name(node.body, name);
          if constexpr (std::is_same_v<T, ast::CallBlock>) {
            return reads_name(node.call.get(), name) || reads_any(node.caller_params, name) || reads_name(node.body, name);
          }
          if constexpr (std::is_same_v<T, ast::FilterBlock>) return reads_name(node.filter.get(), name) || reads_name(node.body, name);
          return false;  // text, break, continue
        },
        stmt.node);
  });
}

}  // namespace

bool Template::reads(std::string_view name) const { return reads_name(*body_, name); }

core::Result<Template> Template::parse(std::string_view source) {
  auto body = jinja::parse(source);
  if (!body.ok()) return body.error();
  return Template(std::make_shared<const Body>(std::move(body).value()));
}

core::Result<std::string> Template::render(const Value& context, const RenderOptions& options) const {
  if (!context.is_attribute_container()) return plain_error("the render context must be an object");
  return Interpreter(options).run(*body_, context);
}

}  // namespace aegaeon::text::jinja
