// jinja::Template: the subset of Jinja that Hugging Face chat templates are written in, rendered
// byte for byte as @huggingface/jinja (transformers.js) renders it:
//   statements  if/elif/else, for (with `if` filter, else, loop.*, break/continue), set (also
//               tuples, namespace attributes and block set), macro (with defaults, caller,
//               varargs, kwargs), call blocks, filter blocks, comments, `{%-`/`-%}` control;
//   expressions literals, lists, dicts, tuples, attribute/index/slice access, calls with keyword
//               and * / ** arguments, arithmetic, `~`, comparisons, in/not in, and/or/not,
//               `x if c else y`, tests (`is defined`, `is string`, ...), filters;
//   methods     strings: strip/lstrip/rstrip, split, replace, startswith/endswith, upper, lower,
//               title, capitalize; dicts: get, items, keys, values, dictsort;
//   filters     tojson (indent, ensure_ascii, sort_keys, separators), trim, upper, lower, title,
//               capitalize, length, first, last, join, default, indent, int, float, string,
//               list, reverse, sort, unique, items, map(attribute=), selectattr, rejectattr,
//               replace, abs, safe, dictsort;
//   globals     raise_exception, range, namespace, strftime_now, true/false/none (any case).
// Strings are UTF-8; `upper`/`lower` change ASCII letters only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "text/jinja/ast.hpp"
#include "text/jinja/value.hpp"

namespace aegaeon::text::jinja {

struct RenderOptions {
  /// What strftime_now() reads (UTC); unset: the system clock.
  std::optional<std::chrono::system_clock::time_point> now;
  /// Statements and loop iterations one render may run before it fails (a template that loops
  /// without end is an error, not a hung request).
  std::int64_t max_steps = 2'000'000;
  /// The largest string or list a render may build.
  std::size_t max_value_size = 16u << 20;
};

class Template {
 public:
  /// Parses `source`; kInvalidArgument naming the line on a syntax error.
  static core::Result<Template> parse(std::string_view source);

  /// Renders with `context`'s attributes as variables (it must be an object). A template error
  /// or raise_exception() is kInvalidArgument naming the line.
  [[nodiscard]] core::Result<std::string> render(const Value& context, const RenderOptions& options = {}) const;

  /// Whether the template reads a variable called `name` anywhere (e.g. whether a chat
  /// template renders `tools` at all).
  [[nodiscard]] bool reads(std::string_view name) const;

 private:
  explicit Template(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;  // shared: a Template is cheap to copy
};

}  // namespace aegaeon::text::jinja
