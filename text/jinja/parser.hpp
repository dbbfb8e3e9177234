// Template source → syntax tree. Whitespace handling is the one transformers renders chat
// templates with (trim_blocks and lstrip_blocks on, one trailing newline dropped, `{%-`/`-%}`
// control, the `{% generation %}` marker removed), as @huggingface/jinja applies it.
#pragma once

#include <string_view>

#include "core/result.hpp"
#include "text/jinja/ast.hpp"

namespace aegaeon::text::jinja {

/// The statements of `source`, or kInvalidArgument naming the line and what was expected.
core::Result<Body> parse(std::string_view source);

}  // namespace aegaeon::text::jinja
