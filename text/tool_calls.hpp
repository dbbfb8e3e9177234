// Tool calls in generated text: which format a model writes them in (read from its chat
// template) and a scanner that separates them from the content as the text streams in.
// Hermes / Qwen2.5 / Qwen3 / QwQ write
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// once per call, after any content. Llama 3.1 / 3.2 / 4 answer with nothing but
//   {"name": "get_weather", "parameters": {"city": "Paris"}}
// (calls separated by ";"), after the special <|python_tag|> the decoder leaves out.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/generation.hpp"
#include "core/result.hpp"

namespace aegaeon::text {

enum class ToolCallFormat {
  kNone,    ///< the template shows no tool-call format aegaeon parses
  kHermes,     ///< <tool_call>{"name": ..., "arguments": {...}}</tool_call>
  kLlama3Json,  ///< the whole answer {"name": ..., "parameters": {...}} (";" between calls)
};

/// The format a chat template teaches its model (kNone when it has none we parse).
ToolCallFormat tool_call_format(std::string_view chat_template);

/// What the answer must be when a request forces a tool call (OpenAI's tool_choice "required",
/// or a named function): one call in `format`, to `function` or, when it is empty, to any of
/// `tools` (the request's OpenAI tools array as JSON), its arguments satisfying the function's
/// `parameters`. Errors (kInvalidArgument): no such function, a format aegaeon cannot force,
/// or parameters the grammar cannot enforce (the field names them, under "tools[i]").
core::Result<core::StructuredOutput> forced_tool_call(ToolCallFormat format, std::string_view tools,
                                                      std::string_view function);

/// Length of the longest suffix of `text` that is a proper prefix of `pattern`: streamed text
/// to hold back while the next tokens may still complete `pattern` (a tool-call tag here, a stop
/// string in the proxy).
std::size_t partial_match_length(std::string_view text, std::string_view pattern);

/// One parsed call: the function's name and its arguments as JSON text (an object).
struct ParsedToolCall {
  std::string name;
  std::string arguments;
};

/// Separates content from tool calls in text that arrives piece by piece. Content before the
/// first call is released as soon as it cannot be the start of one; everything from the first
/// call on is held until finish(). Nothing is lost: text that does not parse as calls comes
/// back as content.
class ToolCallScanner {
 public:
  explicit ToolCallScanner(ToolCallFormat format) : format_(format) {}

  /// Adds `piece`; returns the content that can be released now.
  std::string feed(std::string_view piece);

  struct Result {
    std::string content;                ///< held content not released by feed()
    std::vector<ParsedToolCall> calls;  ///< empty when the text held no (well-formed) call
  };
  /// The end of the text: what was held, as content and calls.
  Result finish();

 private:
  // The next call's text at the start of `rest` (after separators), taken off `rest`; nullopt
  // when only separators are left, an empty view when what follows is not a call.
  std::optional<std::string_view> next_call_body(std::string_view& rest) const;

  ToolCallFormat format_;
  std::string held_;
  bool in_call_ = false;  // kHermes: the first call's opening tag was seen; kLlama3Json: the answer starts with '{'
  bool decided_ = false;  // kLlama3Json: the answer's first character was seen
};

}  // namespace aegaeon::text
