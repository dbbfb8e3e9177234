// ChatTemplate: a model folder's own Jinja chat template — tokenizer_config.json's
// `chat_template` (a string, or a list of named templates), or a chat_template.jinja file beside
// it, which takes precedence as in transformers — rendered by text/jinja as transformers renders
// it (messages, add_generation_prompt, bos_token, eos_token in the context).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/generation.hpp"
#include "core/result.hpp"
#include "text/jinja/template.hpp"
#include "text/tool_calls.hpp"

namespace aegaeon::text {

class ChatTemplate {
 public:
  /// Reads `dir`/tokenizer_config.json and, when present, `dir`/chat_template.jinja.
  /// kNotFound when the folder has no chat template; kInvalidArgument naming the file and key
  /// (and the template line) when it cannot be used.
  static core::Result<ChatTemplate> load(const std::filesystem::path& dir);

  /// The same from the text of a tokenizer_config.json (`source` names it in errors).
  static core::Result<ChatTemplate> from_config_json(std::string_view json_text, std::string_view source);

  /// A template text with the bos/eos strings it may print.
  static core::Result<ChatTemplate> from_template(std::string_view template_text, std::string bos_token,
                                                  std::string eos_token, std::string_view source);

  /// The prompt for `messages` (the template decides which roles it accepts); with
  /// `add_generation_prompt` it ends where the assistant's reply starts. `extra_variables_json`
  /// (a JSON object, or empty) adds template variables such as Qwen3's `enable_thinking`;
  /// `tools_json` (OpenAI's tools array, or empty) is the `tools` variable. Assistant tool calls
  /// reach the template as transformers passes them, `arguments` an object. A template error or
  /// raise_exception() (e.g. "roles must alternate") is kInvalidArgument with the template's
  /// message and line; a bad `extra_variables_json` one with field "chat_template_kwargs".
  [[nodiscard]] core::Result<std::string> render(std::span<const core::ChatTurn> messages, bool add_generation_prompt,
                                                 std::string_view extra_variables_json = {},
                                                 std::string_view tools_json = {}) const;

  /// Whether the template renders the `tools` it is given (else tools would be dropped).
  [[nodiscard]] bool renders_tools() const { return renders_tools_; }

  /// How the template teaches the model to write tool calls (kNone: no format aegaeon parses).
  [[nodiscard]] ToolCallFormat tool_call_format() const { return tool_call_format_; }

  /// Fixes what the template's strftime_now() reads (tests); by default the system clock.
  void set_now(std::chrono::system_clock::time_point now) { options_.now = now; }

 private:
  ChatTemplate(jinja::Template tmpl, ToolCallFormat format, std::string bos, std::string eos, std::string source)
      : template_(std::move(tmpl)), renders_tools_(template_.reads("tools")), tool_call_format_(format),
        bos_(std::move(bos)), eos_(std::move(eos)), source_(std::move(source)) {}

  jinja::Template template_;
  bool renders_tools_;
  ToolCallFormat tool_call_format_;
  std::string bos_;
  std::string eos_;
  std::string source_;  // where the template came from, for errors
  jinja::RenderOptions options_;
};

/// `dir`/tokenizer_config.json's text, with a chat_template.jinja beside it folded in as its
/// `chat_template` (the folder's template, as transformers reads it). kNotFound when there is no
/// tokenizer_config.json; kInvalidArgument naming the file when it is not a JSON object.
core::Result<std::string> read_tokenizer_config(const std::filesystem::path& dir);

}  // namespace aegaeon::text
